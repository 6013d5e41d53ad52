# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HSM-side procedures behind hsm_keygen and byok_wrap.

Pure decisions (regenerate policy, is an existing .byok still valid) are separate functions so
they can be tested without a token; the procedures take an opened HsmToken.  wrap_request() is
byok_wrap's whole run: its input shapes (one key, keys, keys with keks), the items and KEKs checked
without the HSM, then every key wrapped under one login.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import contextlib
import datetime
import os

from ansible_collections.byok.keyvault.plugins.module_utils import bundle
from ansible_collections.byok.keyvault.plugins.module_utils import byok_file
from ansible_collections.byok.keyvault.plugins.module_utils import decisions
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import record
from ansible_collections.byok.keyvault.plugins.module_utils import rotation
from ansible_collections.byok.keyvault.plugins.module_utils.progress import Progress
from ansible_collections.byok.keyvault.plugins.module_utils import vendors
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError
from ansible_collections.byok.keyvault.plugins.module_utils.module_base import repeated
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_keys import seal
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_session import HsmError
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import VaultTarget

REGENERATE_CHOICES = decisions.REGENERATE_CHOICES
COLLECTION_VERSION = '1.0.0'
GENERATOR = 'byok.keyvault %s' % COLLECTION_VERSION


def key_id_of(item):
    """The CKA_ID (bytes) a keys[] item gives in hex, or None; HsmError naming the item when it is not hex."""
    id_hex = item.get('id')
    try:
        return bytes.fromhex(id_hex) if id_hex else None
    except ValueError:
        raise HsmError("id '%s' of key '%s' is not hex; give the CKA_ID as hex digits, e.g. 0a1b2c" % (id_hex, item.get('label')))


def key_spec(item):
    """Normalized target spec of a keys[] item or of the module's top-level options."""
    if not isinstance(item, dict) or not item.get('label'):
        raise ki.KeySpecError('every item of keys needs a label (the CKA_LABEL of the key); got %r' % (item,))
    key_id = key_id_of(item)
    spec = ki.validate_target(item.get('key_type') or 'RSA', item.get('key_size'), item.get('curve'))
    spec.update(label=item['label'], key_id=key_id)
    return spec


def ensure_key(token, spec, regenerate, check_mode, wrap_method='auto', known=None):
    """Make sure the token holds the target key; returns a result dict (changed, action, key facts, diff; under 'found'
    the HsmKey itself, for a wrap in the same session).

    A key is generated only where the token lists its generation mechanism and a wrap path was proved for its type
    (the known-answer tests of pkcs11_wrap): a key that could never reach Azure is never made.  known: the objects
    under the label from an index() of this session; in check mode they are all there is to look at, otherwise a label
    they do not hold is searched again under the lock (another run may have made its key since), so a key is never
    generated twice.
    """
    vendors.check_firmware(token.profile, token.info_basic()['firmware_version'], spec['key_type'], spec['key_size'])
    with (_no_lock() if check_mode else token.lock()):  # a look that changes nothing needs no lock
        objects = known if known or (check_mode and known is not None) else token.labelled(spec['label'], spec['key_id'])
        existing = token.find(spec['label'], spec['key_id'], objects)
        if existing is None and spec['key_id']:
            # the label with another CKA_ID is still the key of that label: never "no key", never a second one beside it
            other = token.find(spec['label'])
            if other is not None:
                held = (other.key_id or b'').hex()
                raise HsmError("key '%s' on token '%s' has id %s, not %s as its entry gives; give id: %s (or remove id), or "
                               "choose another label (one HSM label is one key)"
                               % (spec['label'], token.info()['label'], held or 'none', bytes(spec['key_id']).hex(),
                                  held or '""'))
        before = existing.as_dict() if existing else None
        diffs = existing.matches(spec) if existing else []
        action, reason = decisions.regeneration_decision(diffs, existing is not None, regenerate)
        result = {'label': spec['label'], 'action': action, 'reason': reason}
        if action == 'fail':
            raise HsmError("key '%s' exists on token '%s' but differs: %s; it was left alone. Choose another label, or set "
                           "regenerate: full_idempotence to replace it (this destroys the existing HSM key)"
                           % (spec['label'], token.info()['label'], reason))
        if action == 'keep':
            if diffs:
                result['warning'] = "key '%s' differs from the request (%s) but regenerate is never; it was kept" % (
                    spec['label'], reason)
            result.update(changed=False, key=before, diff={'before': before, 'after': before}, found=existing)
            return result
        token.check_generation(spec)
        path = token.wrap_path(spec['key_type'], wrap_method)
        result['wrap_mechanism'] = path['mechanism_name']
        if existing is not None and not check_mode:
            token.destroy(existing)
            objects = None  # searched again below, without the destroyed pair
        # A run killed during C_GenerateKeyPair can leave a public object without its private key; generating beside
        # it would leave two public objects for one label.  It is public material only, so it is removed first.
        orphans = token.lone_public_objects(spec['label'], spec['key_id'], objects)
        if orphans:
            result['warning'] = ("token '%s' held %d public key object(s) labelled '%s' without a private key (left by an "
                                 "interrupted generation); %s before generating" % (
                                     token.info()['label'], len(orphans), spec['label'],
                                     'they would be removed' if check_mode else 'they were removed'))
            result['removed_public_objects'] = len(orphans)
        if check_mode:
            after = {'label': spec['label'], 'key_type': spec['key_type'], 'key_size': spec['key_size'],
                     'curve': spec['curve'], 'fingerprint': None}
            result.update(changed=True, key=after, diff={'before': before, 'after': after})
            return result
        if orphans:
            token.remove_lone_public_objects(orphans, spec['label'])
        key = token.generate(spec, spec['label'], spec['key_id'] or (existing.key_id if existing else None))
        after = key.as_dict()
        result.update(changed=True, key=after, diff={'before': before, 'after': after}, found=key)
        return result


def listing(token, count):
    """known(spec) for ensure_key: for more than one key the token is listed once (index()) and each key's objects taken
    from the listing; for one key, None (ensure_key searches the label itself)."""
    index = token.index() if count > 1 else None
    return lambda spec: None if index is None else token.indexed(index, spec['label'], spec['key_id'])


@contextlib.contextmanager
def _no_lock():
    yield


def byok_is_current(dest, kek_kid, key_fingerprint, kek_fingerprint):
    """True when dest is a valid .byok whose sidecar says it wraps this key under this KEK.

    A key without a fingerprint or KCV (an AES key that may not encrypt) has no identity to compare: its
    .byok is never taken as current, since None == None in the sidecar would not prove it is the same key.
    """
    if not key_fingerprint or not kek_fingerprint:
        return False
    if not os.path.exists(dest):
        return False
    try:
        dummy, blob = byok_file.read(dest)
    except byok_file.ByokFormatError:
        return False
    meta = byok_file.read_sidecar(dest)
    wanted = {'kek_kid': kek_kid, 'fingerprint': key_fingerprint, 'kek_fingerprint': kek_fingerprint}
    return bool(meta) and blob.kid == kek_kid and all(meta.get(k) == v for k, v in wanted.items())


def load_kek(kek_file=None, expected_fingerprint=None, kek_pem=None):
    """The KEK public key from a PEM file (or PEM text), checked to be an RSA key of a size Azure uses for KEKs.

    With expected_fingerprint (checked out of band), a KEK whose fingerprint differs is refused.
    """
    what = 'kek_file %s' % kek_file if kek_file else 'kek_pem'
    if kek_file:
        try:
            with open(kek_file, 'rb') as f:
                kek_pem = f.read()
        except (IOError, OSError) as exc:
            raise HsmError('cannot read kek_file %s: %s; run byok_kek_fetch with dest first' % (kek_file, exc.strerror or exc))
    public = ki.load_public_pem(kek_pem, what=what)
    desc = ki.describe_public_key(public)
    if desc['key_type'] != 'RSA' or desc['key_size'] not in ki.KEK_SIZES:
        raise HsmError('%s holds an %s-%s key; a Key Vault KEK is RSA 2048, 3072 or 4096: fetch it with '
                       'byok_kek_fetch' % (what, desc['key_type'], desc['key_size']))
    actual = ki.fingerprint(public)
    if expected_fingerprint and actual != expected_fingerprint.strip().lower():
        raise HsmError('%s has fingerprint %s, not the expected %s; the KEK was replaced or the bundle altered: fetch '
                       'the KEK again and verify its fingerprint out of band' % (what, actual, expected_fingerprint))
    return public


def wrap_key(token, item, kek_public, kek_kid, wrap_method, force, check_mode, key=None):
    """Wrap one HSM key under the KEK into item['dest'] (.byok, 0600, atomic) plus its sidecar.

    Without a dest, the .byok is returned as base64 in the result (byok_content) and nothing is written.  key: the HsmKey
    this session already found or made under the label (else it is searched).
    """
    label, dest = item['label'], item.get('dest')
    if key is None:
        key = token.find(label, item.get('key_id'))
    if key is None:
        raise HsmError("token '%s' holds no key labelled '%s'; run hsm_keygen for it first" % (token.info()['label'], label))
    ki.validate_target(key.key_type, key.key_size, key.curve)
    vendors.check_firmware(token.profile, token.info_basic()['firmware_version'], key.key_type, key.key_size)
    fp = ki.identity(key.key_type, key.fingerprint, key.kcv)
    kek_fp = ki.fingerprint(kek_public)
    result = {'label': label, 'dest': dest, 'kek_kid': kek_kid, 'fingerprint': fp,
              'key_type': key.key_type, 'key_size': key.key_size, 'curve': key.curve}
    if dest and not force and byok_is_current(dest, kek_kid, fp, kek_fp):
        meta = byok_file.read_sidecar(dest) or {}
        result.update(changed=False, wrap_method=meta.get('wrap_method'), wrap_mechanism=meta.get('wrap_mechanism'))
        return result
    path = token.wrap_path(key.key_type, wrap_method)
    padded = path['zero_padded']
    result.update(wrap_method=path['method'], wrap_mechanism=path['mechanism_name'])
    if padded:
        result['warning'] = True  # the module says it once per mechanism, naming the keys
    result['changed'] = bool(dest)
    if check_mode:
        return result
    ciphertext = token.wrap(key, kek_public, path)
    info = token.info()
    content = byok_file.build(kek_kid, ciphertext, token.generator(GENERATOR))
    meta = {
        'label': label, 'key_type': key.key_type, 'key_size': key.key_size, 'curve': key.curve, 'fingerprint': fp,
        'kcv': key.kcv, 'kek_kid': kek_kid, 'kek_fingerprint': kek_fp, 'wrap_method': path['method'],
        'wrap_mechanism': path['mechanism_name'], 'zero_padded': padded,
        'token': {k: info[k] for k in ('vendor', 'manufacturer', 'model', 'serial', 'label', 'firmware_version',
                                       'library_version')},
        'created': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
    }
    if not dest:
        # the caller keeps it (the transfer's import) or writes it (the staged flow's bundle, with this metadata)
        result.update(byok_content=base64.b64encode(content).decode('ascii'), sidecar=meta)
        return result
    byok_file.atomic_write(dest, content, mode=0o600)
    byok_file.write_sidecar(dest, meta)
    return result


# -- byok_wrap: the keys of a request and their KEKs, checked, then wrapped under one login -----------------
def wrap_item(item):
    """A keys[] item checked without the HSM: a label, a hex id, an existing directory for dest."""
    if not isinstance(item, dict) or not item.get('label'):
        raise HsmError('every item of keys needs a label (the CKA_LABEL of the key to wrap); got %r' % (item,))
    key_id = key_id_of(item)
    if item.get('dest') and not os.path.isdir(os.path.dirname(os.path.abspath(item['dest']))):
        raise HsmError("the directory of dest %s does not exist; create it first" % item['dest'])
    return dict(item, key_id=key_id)


def item_keks(p, items):
    """{kek_kid: KEK public key} of every KEK the items use (loaded and checked once each), and each item's kek_kid."""
    keks = {}
    for kek in p['keks'] or []:
        byok_file.parse_kid(kek['kek_kid'], option='kek_kid of keks')
        if bool(kek['kek_pem']) == bool(kek['kek_file']):
            raise HsmError('KEK %s of keks needs exactly one of kek_pem and kek_file (got %s)'
                           % (kek['kek_kid'], 'both' if kek['kek_pem'] else 'neither'))
        if kek['kek_kid'] in keks:
            raise HsmError('keks lists KEK %s twice; give each KEK once' % kek['kek_kid'])
        keks[kek['kek_kid']] = load_kek(kek['kek_file'], kek['kek_fingerprint'], kek['kek_pem'])
    if p['kek_kid']:
        byok_file.parse_kid(p['kek_kid'])
        if not (p['kek_file'] or p['kek_pem']):
            raise HsmError('kek_kid %s needs one of kek_file and kek_pem (the KEK public key)' % p['kek_kid'])
        own = load_kek(p['kek_file'], p['kek_fingerprint'], p['kek_pem'])
        if p['kek_kid'] in keks and ki.fingerprint(keks[p['kek_kid']]) != ki.fingerprint(own):
            raise HsmError('kek_kid %s is also in keks, with another public key (fingerprints %s and %s); give each KEK '
                           'once' % (p['kek_kid'], ki.fingerprint(own), ki.fingerprint(keks[p['kek_kid']])))
        keks[p['kek_kid']] = own
    out = []
    for item in items:
        kid = item.get('kek_kid') or p['kek_kid']
        if not kid:
            raise HsmError('key %s has no KEK: give kek_kid (with kek_pem or kek_file), or kek_kid on the item with that KEK '
                           'in keks' % item['label'])
        if kid not in keks:
            raise HsmError('key %s names KEK %s, which keks does not list; add it to keks (kek_kid, kek_pem, '
                           'kek_fingerprint)' % (item['label'], kid))
        out.append(dict(item, kek_kid=kid))
    twice = repeated(i['dest'] for i in out if i.get('dest'))
    if twice:
        raise HsmError('keys writes %s more than once (each .byok is the wrap of one key under one KEK); give each item '
                       'its own dest' % ', '.join(twice))
    return keks, out


def warn_zero_padding(hsm, info, mechanism, which):
    """The warning for the .byok files (which) that a zero-padding mechanism of the token wrapped (or would wrap)."""
    hsm.module.warn("token '%s' zero-pads what %s wraps to a multiple of 8 bytes (its test wrap showed it): %s %s carry 1-7 "
                    "zero bytes after the key's PKCS#8 encoding, which OpenSSL-based unwrappers accept and strict PKCS#8 "
                    "parsers refuse" % (info['label'], mechanism, which, 'would' if hsm.check_mode else 'can'))


def wrap_request(hsm):
    """byok_wrap's run over its input shapes (one key under kek_kid, keys under kek_kid, keys each naming a KEK of keks),
    as the module's result.  Everything that can be checked without the HSM is checked first (failing the module)."""
    p = hsm.params
    single = p['keys'] is None
    items = [dict(label=p['label'], id=p['id'], dest=p['dest'])] if single else p['keys']
    # Everything that can be checked without the HSM is checked first
    items = hsm.guard(lambda: [wrap_item(item) for item in items])
    keks, items = hsm.guard(item_keks, p, items)

    token = hsm.open_token()
    padded = {}

    def one(item):
        r = wrap_key(token, item, keks[item['kek_kid']], item['kek_kid'], p['wrap_method'], p['force'], hsm.check_mode)
        if r.pop('warning', None):
            # named as the user finds it: the file written (named after the vault key), else the HSM label
            padded.setdefault(r['wrap_mechanism'], set()).add((r.get('dest'), r.get('label')))
        r.pop('sidecar', None)  # the .byok file's metadata: written next to it, or not asked for
        return r

    with token:
        results = hsm.run_keys(items, one, 'label')
        info = token.info()
    for mechanism, keys in sorted(padded.items()):
        files = sorted(set(dest for dest, _label in keys if dest))
        labels = sorted(set(label for dest, label in keys if not dest))
        which = ', '.join(['the .byok file %s' % f for f in files] + ['the .byok of HSM key %s' % k for k in labels])
        warn_zero_padding(hsm, info, mechanism, which)
    if single:
        return hsm.outcome(results, True, token=info)
    extra = {'kek_kid': p['kek_kid']} if p['kek_kid'] else {}
    return hsm.outcome(results, False, token=info, **extra)


# -- hsm_keygen: the keys of a request, checked, then made sure of under one login --------------------------------------
KEY_FIELDS = ('key_type', 'key_size', 'curve', 'fingerprint', 'public_key_pem', 'sealed')


def flatten(r):
    """A key's result as the module returns it: label, action, changed and the key's facts (no key material)."""
    out = {'label': r['label'], 'action': r['action'], 'changed': r['changed']}
    if r['action'] == 'replace':
        # the key a replacement destroys (or would): a vault may hold it, and the HSM keeps no other copy
        out['replaces'] = ((r.get('diff') or {}).get('before') or {}).get('fingerprint')
        out['reason'] = r.get('reason')
    if r.get('wrap_mechanism'):
        out['wrap_mechanism'] = r['wrap_mechanism']
    key = r['key'] or {}
    for field in KEY_FIELDS:
        out[field] = key.get(field)
    return out


def keygen_request(hsm):
    """hsm_keygen's run over its input shapes (one key, keys), as the module's result: every spec checked before the HSM."""
    p = hsm.params
    single = p['keys'] is None
    items = [dict(label=p['label'], id=p['id'], key_type=p['key_type'], key_size=p['key_size'], curve=p['curve'])] \
        if single else p['keys']
    # Refuse what Azure would refuse before touching the HSM
    specs = hsm.guard(lambda: [key_spec(item) for item in items])
    twice = repeated(s['label'] for s in specs)
    if twice:
        hsm.fail('keys lists a label twice (%s); give each key its own label' % ', '.join(twice))

    token = hsm.open_token()
    warnings = []

    known = hsm.guard(listing, token, len(specs))

    def one(spec):
        r = ensure_key(token, spec, p['regenerate'], hsm.check_mode, p['wrap_method'], known=known(spec))
        if r.get('warning'):
            warnings.append(r['warning'])
        return r

    with token:
        results = hsm.run_keys(specs, one, 'label')
        info = token.info()
    for w in warnings:
        hsm.module.warn(w)
    diff = {'before': {}, 'after': {}}
    for r in results:
        if 'diff' in r and hsm.module._diff:
            diff['before'][r['label']] = r['diff']['before']
            diff['after'][r['label']] = r['diff']['after']
    flat = [r if r.get('failed') else flatten(r) for r in results]
    return hsm.outcome(flat, single, token=info, diff=diff)


# -- hsm_seal: the keys of a request, each checked against the vaults' fingerprint, then sealed -------------------------
def seal_one(token, item, key, identity, check_mode):
    """Seal one listed key: checked against the fingerprint the vaults hold, then CKA_EXTRACTABLE false."""
    label = item['label']
    if key is None:
        if check_mode:
            return {'label': label, 'action': 'seal', 'changed': True, 'sealed': False, 'fingerprint': item['fingerprint']}
        raise HsmError("no key labelled '%s' on token '%s'; nothing was sealed: check the label (the key must have been "
                       "generated and transferred first)" % (label, token.info()['label']))
    if not decisions.same_identity(identity, item['fingerprint']):
        raise HsmError("key '%s' on token '%s' is not the key the vaults hold (%s, expected %s); it was not sealed: "
                       "check the label and the fingerprint" % (label, token.info()['label'], identity, item['fingerprint']))
    result = {'label': label, 'fingerprint': identity}
    if key.extractable is False:
        result.update(action='keep', changed=False, sealed=True)
    elif check_mode:
        result.update(action='seal', changed=True, sealed=False)
    else:
        if not seal(token, key):
            raise HsmError("token '%s' accepted CKA_EXTRACTABLE false for key '%s' but still reports it extractable; "
                           "check the key policy on the HSM" % (token.info()['label'], label))
        result.update(action='seal', changed=True, sealed=True)
    return result


def listed_keys_argument_spec():
    """The `keys` option of hsm_seal and hsm_key_remove: keys named by label (and id) with the identity they must have."""
    return dict(keys=dict(type='list', elements='dict', required=True, no_log=False, options=dict(
        label=dict(type='str', required=True),
        id=dict(type='str'),
        fingerprint=dict(type='str', required=True),
    )))


def listed_one(token, item, one, check_mode):
    """one(token, item, key, identity, check_mode) for a listed item, under the token's lock: its key found by label (and
    id), with its identity (both None when the token has no such key)."""
    with token.lock():
        key = token.find(item['label'], key_id_of(item))
        identity = None if key is None else ki.identity(key.key_type, key.fingerprint, key.kcv)
        return one(token, item, key, identity, check_mode)


def listed_keys_request(hsm, one):
    """The run of a module over listed keys (hsm_seal, hsm_key_remove): one(token, item, key, identity, check_mode) for
    each, under one login, as the module's result."""
    p = hsm.params
    twice = repeated(item['label'] for item in p['keys'])
    if twice:
        hsm.fail('keys lists a label twice (%s); give each key once' % ', '.join(twice))
    token = hsm.open_token()
    with token:
        results = hsm.run_keys(p['keys'], lambda item: listed_one(token, item, one, hsm.check_mode), 'label')
        info = token.info()
    return hsm.outcome(results, False, token=info)


def seal_request(hsm):
    """hsm_seal's run, as the module's result."""
    return listed_keys_request(hsm, seal_one)


# -- hsm_key_info / hsm_key_remove: what the token holds, and the removal of keys nobody uses ---------------------------
def list_token_keys(token, labels=None):
    """Facts of every private/secret key on the token (no key material), sorted by label; labels: only these."""
    out = []
    for label, obj, public in token.token_keys():
        if labels and label not in labels:
            continue
        try:
            key = token.describe_object(label, obj, public)
        except HsmError as exc:
            kind = getattr(getattr(obj, 'key_type', None), 'name', None)
            out.append({'label': label, 'id': None, 'key_type': kind, 'key_size': None, 'curve': None, 'fingerprint': None,
                        'kcv': None, 'sealed': None, 'has_public_key': bool(public), 'error': str(exc)})
            continue
        facts = key.as_dict()
        facts.pop('public_key_pem', None)
        facts.update(has_public_key=key.public is not None, error=None)
        out.append(facts)
    return sorted(out, key=lambda k: (k['label'], k['id'] or ''))


def key_info_request(hsm):
    """hsm_key_info's run: the token's keys, read-only (check mode changes nothing either)."""
    token = hsm.open_token()
    with token:
        keys = hsm.guard(list_token_keys, token, hsm.params['labels'])
        info = token.info()
    return {'changed': False, 'keys': keys, 'token': info}


def remove_one(token, item, key, identity, check_mode):
    """Remove one listed key, only when its identity is the one given (the key that was listed)."""
    label = item['label']
    if key is None:
        return {'label': label, 'action': 'absent', 'changed': False, 'fingerprint': item['fingerprint']}
    if not decisions.same_identity(identity, item['fingerprint']):
        raise HsmError("key '%s' on token '%s' is not the key that was listed (%s, expected %s), so it was not removed; "
                       "list the token's keys again and give the fingerprint it shows now"
                       % (label, token.info()['label'], identity, item['fingerprint']))
    if not check_mode:
        token.destroy(key)
    return {'label': label, 'action': 'remove', 'changed': True, 'fingerprint': identity}


def key_remove_request(hsm):
    """hsm_key_remove's run, as the module's result."""
    return listed_keys_request(hsm, remove_one)


# -- byok_hsm_step: the HSM side of the transfer role, over the key records of one host ---------------------------------
def _all_failed(records, step_name, everyone=None):
    """on_failure of open_token: the records (everyone's, when only some were for the step), each of records with the step
    failed with the token's message."""
    def fields(message):
        for rec in records:
            if record.step(rec, step_name) is None:
                record.fail(rec, step_name, message)
        return {'records': records if everyone is None else everyone}
    return fields


def _find_generations(hsm, token, records):
    """{base label: {generation: identity}} of the HSM keys of the records with rotate_after (LABEL, LABEL.r2, ...), read
    from the token (one listing of its key labels, then each generation found by its label)."""
    bases = record.rotating_bases(records)
    if not bases:
        return {}
    out = dict((base, {}) for base in bases)
    for lbl in token.key_labels():
        for base in bases:
            n = rotation.generation_of(base, lbl)
            if n is None:
                continue
            key = token.find(lbl)
            if key is not None:
                out[base][n] = ki.identity(key.key_type, key.fingerprint, key.kcv)
    return out


def _ensure_keys(hsm, token, records, check_mode, warnings, found=None):
    """{label: flattened hsm_keygen result, or failed with its message} for the HSM keys of the records; found (a dict)
    receives each HsmKey by label, for the wrap.  The token is listed once (index()), not searched once per key."""
    out = {}
    items = record.hsm_keys(records, contact=check_mode)
    progress = Progress('contact' if check_mode and hsm.params['step'] == 'contact' else 'keygen', hsm.speaks_for, len(items))
    known = listing(token, len(items))
    for item in items:
        spec = key_spec(item)
        try:
            r = ensure_key(token, spec, hsm.params['regenerate'], check_mode, hsm.params['wrap_method'], known=known(spec))
        except ByokError as exc:
            out[item['label']] = {'failed': True, 'msg': hsm.plain_message(exc)}
            continue
        finally:
            progress.tick()
        if r.get('warning') and r['warning'] not in warnings:
            warnings.append(r['warning'])
        if found is not None and r.get('found') is not None:
            found[item['label']] = r['found']
        out[item['label']] = flatten(r)
    return out


def _wrap_records(hsm, token, records, check_mode, padded, keys, found=None):
    """{(label, kek kid): byok_wrap's result for the key, or failed} for the keys of the records that move (in check
    mode only those the token already holds: a key the run would generate has nothing to wrap yet)."""
    out = {}
    work = record.wrap_work(records)
    progress = Progress('wrap', hsm.speaks_for, len(work))
    publics = {}  # each KEK's public key, loaded and checked against its fingerprint once
    for label, key_id, kek in work:
        if not (check_mode and (keys.get(label) or {}).get('action') != 'keep'):
            out[(label, kek['kid'])] = _wrap_one(hsm, token, label, key_id, kek, check_mode, padded, publics,
                                                 (found or {}).get(label))
        progress.tick()
    return out


def _wrap_one(hsm, token, label, key_id, kek, check_mode, padded, publics, key=None):
    try:
        known = (kek['kid'], kek.get('fingerprint'))  # each public key once, checked against its own fingerprint
        if known not in publics:
            publics[known] = load_kek(None, kek.get('fingerprint'), kek['public_key_pem'])
        r = wrap_key(token, {'label': label, 'key_id': key_id_of({'id': key_id, 'label': label})}, publics[known], kek['kid'],
                     hsm.params['wrap_method'], True, check_mode, key=key)
    except ByokError as exc:
        return {'failed': True, 'msg': hsm.plain_message(exc)}
    if r.pop('warning', None):
        padded.setdefault(r['wrap_mechanism'], set()).add(label)
    return r


def hsm_step_request(hsm):
    """byok_hsm_step's run over the key records of one host, as the module's result (records, each with what the step
    did for its key).

    contact: read-only, whatever the check mode: the token is opened, each HSM key looked at as hsm_keygen would (the
    wrap path proved), and each record decided against what its vault holds; kek_vaults names the vaults whose KEK the
    host needs.  transfer: under one login, each HSM key made sure of (kept, generated or replaced), each record decided
    again, and each key that moves wrapped under its vault's KEK (the .byok returned as base64 in the record).  seal:
    each HSM key that every vault listed for it holds, sealed.  A vault that could not be read or a KEK that could not be
    had stops the host before the token is opened.
    """
    p = hsm.params
    records = record.copies(p['records'])
    # the role's step: its failure names the host and the inventory variables the user wrote (byok_user_pin ...)
    hsm.speaks_for = ', '.join(h for h in record.hosts_of(records) if h) or None
    staged = p.get('bundle')
    if staged:
        if p['step'] != 'transfer' or len(record.hosts_of(records)) > 1:
            hsm.fail('bundle goes with step=transfer and the records of one HSM host (stage 2 of the staged flow)')
        # the KEKs from the bundle, each verified against its fingerprint carried out of band, before any HSM work
        hsm.guard(staged_keks, hsm, records)
        hsm.guard(bundle.prepare, staged['path'], [bundle.wrapped_dir(r['host'], r['vault']) for r in records], True,
                  hsm.check_mode)
    if p['step'] == 'finish':
        return finish_records(hsm, records)
    contact = p['step'] == 'contact'
    check_mode = contact or hsm.check_mode
    name = 'contact' if contact else 'keygen'
    problems = record.blocking(records, kek_too=not contact)
    if problems:
        return dict(failed=True, changed=False, records=records, msg='; '.join(problems))  # exit() names the host
    if not records:
        result = dict(changed=False, records=records, kek_vaults=[])
        if staged:
            result['seal'] = {'host': None, 'digest': None, 'path': None, 'changed': False, 'keys': [],
                              'lines': ['this host has no keys in byok_keys: nothing was wrapped or sealed']}
        return result
    if not contact and not [r for r in records if record.action(r) == decisions.IMPORT] and all(
            (record.step(r, 'contact') or {}).get('action') == 'keep' for r in records):
        # the contact found every key in the HSM and in its vaults: nothing to make or wrap, no second login
        return dict(changed=False, records=records, kek_vaults=[])
    token = hsm.open_token(_all_failed(records, name))
    warnings, padded = [], {}
    with token:
        # a key with rotate_after stands for the generation its vault holds, or the next one when its period is over
        try:
            record.choose_generations(records, _find_generations(hsm, token, records))
        except ByokError as exc:
            for rec in records:
                if rec.get('rotate_after') and record.step(rec, name) is None:
                    record.fail(rec, name, 'its generations (rotate_after) could not be read: %s' % hsm.plain_message(exc))
        found = {}  # each HsmKey the step found or made, for its wrap (no second search)
        keys = _ensure_keys(hsm, token, records, check_mode, warnings, found)
        info = token.info()
        record.note_keys(records, keys, name, info)
        # an AES key the vault computes no KCV of: its key wrap of a random value, computed again with the HSM key
        record.note_wrap_checks(records, lambda label, value: token.key_wrap(found.get(label), value))
        if staged:
            record.decide_staged(records)  # the offline host cannot read a vault: stage 3 decides against it
        kek_vaults = [] if staged else record.decide(records)
        wraps = {} if contact else _wrap_records(hsm, token, records, hsm.check_mode, padded, keys, found)
    record.note_wraps(records, wraps)
    for w in warnings:
        hsm.module.warn(w)
    for mechanism, labels in sorted(padded.items()):
        which = ('the .byok of HSM key %s' % ', '.join(sorted(labels)) if not staged else ', '.join(
            'the .byok file %s' % bundle_file(staged, r) for r in records if r['label'] in labels and record.ok(r, 'wrap')))
        warn_zero_padding(hsm, info, mechanism, which)
    changed = any(k.get('changed') for k in keys.values() if not k.get('failed')) and not contact
    failures = ['%s: %s' % (label, k['msg']) for label, k in keys.items() if k.get('failed')]
    failures += ['%s (KEK %s): %s' % (label, kid, w['msg']) for (label, kid), w in wraps.items() if w.get('failed')]
    result = dict(changed=changed, records=records, kek_vaults=kek_vaults if contact else [], token=info)
    if failures:
        result.update(failed=True, msg='%d of %d HSM keys failed: %s' % (len(failures), len(keys), ' | '.join(failures)))
    elif staged:
        # stage 2: every key of the host wrapped, into the bundle, and sealed (a host that failed has no new seal)
        result['seal'] = hsm.guard(write_bundle, staged, records, wraps, hsm.check_mode)
        result['changed'] = changed or bool(wraps) or result['seal']['changed']
    return result


# -- the staged flow's stage 2: the same HSM step, its KEKs from the bundle and its .byok files into it ------------------
def _kek_fingerprint(value):
    """A fingerprint as typed (any case, with the 'sha256 ' or 'sha256:' stage 1 prints before it, or not) as 64 lower
    hex digits, or None when it is not one."""
    text = value.strip().lower() if isinstance(value, str) else ''
    for prefix in ('sha256:', 'sha256 '):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    return text if len(text) == 64 and all(c in '0123456789abcdef' for c in text) else None


def staged_keks(hsm, records):
    """Stage 2: the KEK of each vault of the records, from the bundle, checked against the fingerprint verified out of
    band (bundle.kek_fingerprints) before any HSM work and noted as each record's kek step.  Every problem of every vault
    in one message (HsmError); with bundle.unauthenticated a KEK without a fingerprint is taken, and said loudly."""
    b = hsm.params['bundle']
    given = b.get('kek_fingerprints') or {}
    bundle.prepare(b['path'], ['keks'], False, hsm.check_mode)
    problems, keks = [], []
    for vault in sorted(set(r['vault'] for r in records)):
        typed = given.get(vault)
        missing = typed in (None, '')
        expected = _kek_fingerprint(typed)
        if (missing and not b['unauthenticated']) or (not missing and expected is None):
            what = 'not given' if missing else "'%s', not a SHA-256 fingerprint (64 hex digits)" % typed
            problems.append(HsmError("byok_expected_kek_fingerprints.%s is %s; stage 2 wraps only under a KEK verified out of "
                                     "band: give the fingerprint stage 1 printed for vault %s (or az keyvault key download + "
                                     "sha256sum), read on another channel than the bundle" % (vault, what, vault)))
            continue
        doc, pem = bundle.read_kek(b['path'], vault)
        actual = ki.fingerprint(load_kek(kek_pem=pem))
        if expected and expected != actual:
            problems.append(HsmError("the bundle's KEK for vault %s has fingerprint %s, not the %s verified out of band; the "
                                     "bundle was altered or the KEK replaced: fetch it again (stage 1) and verify the "
                                     "fingerprint" % (vault, actual, typed)))
            continue
        if not expected:
            hsm.module.warn("WARNING - NOT AUTHENTICATED: the KEK of vault %s (%s) is taken from the bundle without an "
                            "out-of-band check because byok_airgap_unauthenticated is true; whoever swapped the bundle's KEK "
                            "can unwrap this host's keys. Give byok_expected_kek_fingerprints.%s instead" % (vault, actual, vault))
        try:
            kid_vault = byok_file.parse_kid(doc['kid'], option='keks/%s.json kid' % vault)[0]
        except ByokError as exc:
            problems.append(HsmError('%s: run stage 1 again' % exc))
            continue
        url = next((r.get('vault_url') for r in records if r['vault'] == vault and r.get('vault_url')), None)
        if url and not VaultTarget.parse(url).same_vault(kid_vault):
            problems.append(HsmError('keks/%s.json in the bundle names KEK %s, which is not a key of vault %s (%s); the bundle '
                                     'was altered or stage 1 ran with another inventory: run stage 1 again'
                                     % (vault, doc['kid'], vault, url)))
            continue
        twin = next((k['name'] for k in keks if k['kid'] == doc['kid']), None)
        if twin is not None:
            # each vault has its own KEK: a kid two vaults share was altered in the bundle (a .byok names its KEK by kid)
            problems.append(HsmError('keks/%s.json and keks/%s.json in the bundle name the same KEK %s; each vault has its '
                                     'own KEK, so the bundle was altered: run stage 1 again' % (twin, vault, doc['kid'])))
            continue
        keks.append({'name': vault, 'kid': doc['kid'], 'fingerprint': actual, 'public_key_pem': pem.decode('ascii')})
    if b['unauthenticated']:
        hsm.module.warn(bundle.UNAUTHENTICATED_WARNING)
    if problems:
        raise HsmError('%s; nothing was generated or wrapped' % '; '.join(str(p) for p in problems))
    record.note_keks(records, keks, every=True)


def bundle_file(staged, rec):
    return '%s/%s' % (staged['path'].rstrip('/'), bundle.wrapped_file(rec['host'], rec['vault'], rec['name']))


def write_bundle(staged, records, wraps, check_mode):
    """Stage 2: each wrapped key's .byok (and its metadata file) into wrapped/HOST/VAULT/NAME.byok, then the host's seal
    (bundle.seal_records); the records keep each file's SHA-256, not its content."""
    sealed = []
    host = record.hosts_of(records)[0] if records else None
    files = record.staged_files(records)
    # the old seal goes before any file is written again: a run that fails half-way leaves no seal, never a stale one
    previous = bundle.unseal(staged['path'], host) if files and host and not check_mode else None
    for rec, wrap in files:
        kek = record.step(rec, 'kek')
        content = base64.b64decode(wrap.pop('byok_content'))
        meta = (wraps.get((rec['label'], kek['kid'])) or {}).get('sidecar') or {}
        wrap['byok_sha256'] = bundle.write_wrapped(staged['path'], rec['host'], rec['vault'], rec['name'], content, meta)
        made = record.step(rec, 'keygen') or {}
        sealed.append({'vault': rec['vault'], 'name': rec['name'], 'label': rec['label'],
                       'key_type': made.get('key_type') or rec['key_type'],
                       'key_size': made.get('key_size'), 'curve': made.get('curve'), 'identity': wrap.get('fingerprint'),
                       'byok_sha256': wrap['byok_sha256'], 'kek_kid': kek['kid'], 'kek_fingerprint': kek.get('fingerprint'),
                       'wrap_method': wrap.get('wrap_method'), 'wrap_mechanism': wrap.get('wrap_mechanism'),
                       'token': rec.get('token')})
    result = bundle.seal_records(staged['path'], host, sealed, check_mode, previous)
    if check_mode:  # what the run would do for each key, before the line that says nothing was written
        result['lines'][:0] = ['%s/%s/%s: HSM key %s %s, would be wrapped into %s' % (
            rec['host'], rec['vault'], rec['name'], rec['label'], _would(record.step(rec, 'keygen')),
            bundle.wrapped_file(rec['host'], rec['vault'], rec['name'])) for rec in records if record.action(rec) == decisions.IMPORT]
    return result


def _would(made):
    action = (made or {}).get('action')
    return {'keep': 'kept', 'generate': 'would be generated', 'replace': 'would be replaced'}.get(action, action or '')


def finish_records(hsm, records):
    """The finish step, once the vaults answered, under one login: the HSM key of each key retired with destroy_hsm_key
    whose vault confirmed the deletion destroyed, only while the token's key under the label is still the one the contact
    found; then, with seal_after_transfer, each HSM key that every vault listed for it holds sealed (CKA_EXTRACTABLE false)."""
    sealing = hsm.params['seal_after_transfer']
    destroys = record.destroy_items(records, hsm.check_mode)
    phases = [('destroy', 'destroyed', destroys, remove_one)]
    if sealing:
        phases.append(('seal', 'sealed', record.seal_items(records, hsm.check_mode), seal_one))
    phases = [phase for phase in phases if phase[2]]

    def note(results, whole=None):
        if whole is not None:
            labels = set(item['label'] for item in destroys)
            for rec in records:
                if rec['label'] in labels and record.step(rec, 'destroy') is None:
                    record.fail(rec, 'destroy', whole)
        elif 'destroy' in results:
            record.note_destroys(records, results['destroy'], hsm.check_mode)
        if sealing:
            record.note_seals(records, results.get('seal', {}), hsm.check_mode, whole=whole)
        return records

    if not phases:
        return dict(changed=False, records=note({}))
    token = hsm.open_token(lambda message: {'records': note({}, whole=message)})
    results, failures = {}, []
    with token:
        for name, what, items, one in phases:
            mine = results[name] = {}
            for item in items:
                try:
                    mine[item['label']] = listed_one(token, item, one, hsm.check_mode)
                except ByokError as exc:
                    mine[item['label']] = {'failed': True, 'msg': hsm.plain_message(exc)}
            bad = ['%s: %s' % (label, r['msg']) for label, r in mine.items() if r.get('failed')]
            if bad:
                failures.append('%d of %d HSM keys could not be %s: %s' % (len(bad), len(items), what, ' | '.join(bad)))
        info = token.info()
    note(results)
    result = dict(changed=any(r.get('changed') for mine in results.values() for r in mine.values()), records=records,
                  token=info)
    if failures:
        result.update(failed=True, msg='; '.join(failures))
    return result
