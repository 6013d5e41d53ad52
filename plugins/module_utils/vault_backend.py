# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vault-side procedures behind byok_kek_fetch, keyvault_import and keyvault_key_info.

Decisions (is this key a usable KEK, does the vault already hold the HSM key) are pure functions
over key summaries; the procedures take a vault_client.Vault.  import_request() is keyvault_import's
whole run: its three input shapes (one key, keys, vaults), each key checked without the vault
(prepare), then imported or kept (import_one), with the diff --diff shows.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import os

from ansible_collections.byok.keyvault.plugins.module_utils import bundle
from ansible_collections.byok.keyvault.plugins.module_utils import byok_file
from ansible_collections.byok.keyvault.plugins.module_utils import decisions
from ansible_collections.byok.keyvault.plugins.module_utils import host_lock
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import record
from ansible_collections.byok.keyvault.plugins.module_utils import release_policy as skr
from ansible_collections.byok.keyvault.plugins.module_utils.progress import NoProgress, Progress
from ansible_collections.byok.keyvault.plugins.module_utils.attributes import KCV_TAG, check_dates, parse_datetime, tag_problems
from ansible_collections.byok.keyvault.plugins.module_utils.azure_errors import KeyVaultError
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError
from ansible_collections.byok.keyvault.plugins.module_utils.module_base import repeated
from ansible_collections.byok.keyvault.plugins.module_utils.vault_client import DisabledVersion, disabled_summary, key_fingerprint
from ansible_collections.byok.keyvault.plugins.module_utils.vault_client import key_summary, policy_summary
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import key_name_key

#: the options of one key of keyvault_import (its keys[] items; the single key's options are the same)
ITEM_SPEC = dict(
    name=dict(type='str', required=True),
    byok_file=dict(type='path'),
    byok_content=dict(type='str'),
    key_type=dict(type='str', choices=list(ki.KEY_TYPES)),
    key_size=dict(type='int'),
    curve=dict(type='str', choices=list(ki.EC_CURVES)),
    key_ops=dict(type='list', elements='str', choices=ki.KEY_OPS_CHOICES, no_log=False),
    enabled=dict(type='bool', default=True),
    not_before=dict(type='str'),
    expires_on=dict(type='str'),
    tags=dict(type='dict'),
    expected_fingerprint=dict(type='str'),
    force=dict(type='bool', default=False),
    exportable=dict(type='bool', default=False),
    release_policy=dict(type='raw'),
    release_policy_immutable=dict(type='bool', default=False),
    if_current_version=dict(type='str'),
)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def kek_problems(summary, key_size=None, now=None):
    """Why an existing key cannot serve as a KEK (empty list when it can)."""
    now = now or _now()
    problems = []
    if summary['kty'] != 'RSA-HSM':
        problems.append('its kty is %s, not RSA-HSM' % summary['kty'])
    if sorted(summary['key_ops']) != ['import']:
        problems.append('its key_ops are %s, not exactly ["import"]' % summary['key_ops'])
    if summary['enabled'] is False:
        problems.append('it is disabled')
    if summary.get('expires_on') and datetime.datetime.fromisoformat(summary['expires_on']) <= now:
        problems.append('it expired on %s' % summary['expires_on'])
    if summary.get('not_before') and datetime.datetime.fromisoformat(summary['not_before']) > now:
        problems.append('it is not valid before %s' % summary['not_before'])
    if key_size and summary.get('key_size') and summary['key_size'] != key_size:
        problems.append('it is RSA-%s, not RSA-%s' % (summary['key_size'], key_size))
    return problems


def is_kek(summary):
    """Whether a vault key's current version is a KEK: its key_ops are exactly ["import"] (mutually exclusive with the rest)."""
    return sorted(summary.get('key_ops') or []) == ['import']


def ensure_kek(vault, name, key_size, create, expires_on, check_mode):
    """(created, summary, public_key) for the KEK `name`, created when missing and allowed (summary None in check mode)."""
    byok_file.validate_key_name(name)
    with host_lock.exclusive('vault-key', vault.target.lock_key, name.lower(), error=KeyVaultError):
        return _ensure_kek(vault, name, key_size, create, expires_on, check_mode)


def _ensure_kek(vault, name, key_size, create, expires_on, check_mode):
    key = vault.get(name)
    created = recovered = False
    if key is None:
        if not create:
            raise KeyVaultError('KEK %s does not exist in %s and create is false; set create: true, or create it with '
                                'kty RSA-HSM and key_ops exactly ["import"]' % (name, vault.url))
        deleted = vault.get_deleted(name)
        if deleted is None:
            if check_mode:
                return True, None, None
            try:
                key = vault.create_kek(name, key_size, expires_on=expires_on)
                created = True
            except KeyVaultError as exc:
                # the vault finished deleting a key of that name between the two calls
                deleted = vault.get_deleted(name) if exc.code == 'ObjectIsDeletedButRecoverable' else None
                if deleted is None:
                    raise
        if key is None:
            key = _recover_kek(vault, name, deleted, key_size, check_mode)
            if key is None:
                return True, None, None
            recovered = True
    summary = key_summary(key)
    summary['recovered'] = recovered
    problems = kek_problems(summary, key_size)
    if problems:
        raise KeyVaultError('key %s in %s cannot be used as a KEK: %s; use a key created as RSA-HSM with key_ops exactly '
                            '["import"] (choose another name, or delete this key and let byok_kek_fetch create it)'
                            % (name, vault.url, '; '.join(problems)))
    public = ki.public_key_from_jwk({'kty': 'RSA', 'n': key.key.n, 'e': key.key.e})
    return created, summary, public


def _recover_kek(vault, name, deleted, key_size, check_mode):
    """The KEK name is held by a soft-deleted key (a KEK deleted after an earlier run, kept by purge protection or not
    purged): recover it when it can serve as this KEK - the key the vault would hold had it not been deleted; the run's
    byok_kek_delete_after_run deletes it again - else fail saying what to do.  None in check mode."""
    problems = kek_problems(key_summary(deleted), key_size)
    if problems:
        when = getattr(deleted, 'scheduled_purge_date', None)
        raise KeyVaultError('KEK name %s in %s is held by a deleted key that cannot serve as a KEK (%s) and that the vault keeps '
                            'until %s; choose another KEK name (kek_name), or purge the deleted key if the vault allows it'
                            % (name, vault.url, '; '.join(problems), when.isoformat() if when else 'its purge date'))
    if check_mode:
        return None
    return vault.recover(name)


#: where a vault key's identity came from (the report names it as the row's proof)
SOURCE_JWK = 'vault-jwk'
SOURCE_VAULT_KCV = 'vault-kcv'
SOURCE_KCV_TAG = 'kcv-tag'


def vault_identity_and_source(vault, key, key_type, key_size):
    """(identity, source) of a vault key: its fingerprint from the vault's JWK (RSA/EC), or for oct the KCV the vault
    computed (the key and identity may encrypt) else the byok-kcv tag the collection wrote itself (which proves nothing)."""
    if ki.identified_by_kcv(key_type):
        kcv = vault.kcv(key, key_size)
        if kcv is not None:
            return kcv, SOURCE_VAULT_KCV
        tag = ki.tagged_identity(key.properties.tags, KCV_TAG)
        return tag, (SOURCE_KCV_TAG if tag else None)
    fingerprint = key_summary(key)['fingerprint']
    return fingerprint, (SOURCE_JWK if fingerprint else None)


def vault_identity(vault, key, key_type, key_size):
    """What identifies the key material of a vault key: fingerprint (RSA/EC) or KCV (oct, vault-side or from its tag)."""
    return vault_identity_and_source(vault, key, key_type, key_size)[0]


def prove(vault, key, spec):
    """Proof that the vault holds the HSM key's private part: a vault signature verified with the public key (RSA/EC)."""
    if ki.identified_by_kcv(spec['key_type']):
        return {'method': 'kcv', 'verified': True}
    ops = key_summary(key)['key_ops']
    if 'sign' not in ops:
        raise KeyVaultError('verify_signature needs the sign operation on vault key %s (its key_ops are %s); add sign to '
                            'key_ops or leave verify_signature off' % (key.name, ops))
    return {'method': 'signature', 'algorithm': vault.sign_and_verify(key), 'verified': True}


def proof_or_why(vault, key, spec):
    """prove(), or the proof that failed and why ({'method': 'signature', 'verified': False, 'error'}): the key is in the
    vault either way, and its row says which."""
    try:
        return prove(vault, key, spec)
    except KeyVaultError as exc:
        return {'method': 'signature', 'verified': False, 'error': str(exc)}


def import_key(vault, name, byok_path, spec, key_ops, expected, force, attributes, tags, check_mode, verify_signature=False,
               byok_data=None, if_current=None):
    """Import a .byok into the vault unless its current version is already the HSM key; returns a result dict.

    The check and the import happen under a lock per vault key on this host, so two runs here cannot
    both find the key missing and import it twice.
    """
    byok_file.validate_key_name(name)
    with host_lock.exclusive('vault-key', vault.target.lock_key, name.lower(), error=KeyVaultError):
        return _import_key(vault, name, byok_path, spec, key_ops, expected, force, attributes, tags, check_mode, verify_signature,
                           byok_data, if_current)


def _import_key(vault, name, byok_path, spec, key_ops, expected, force, attributes, tags, check_mode, verify_signature,
                byok_data, if_current=None):
    current = vault.get(name)
    if if_current and current is not None and current.properties.version != if_current:
        # a rotation decided on a version that is no longer the current one: another run rotated the key meanwhile
        identity = vault_identity(vault, current, spec['key_type'], spec['key_size'])
        if not decisions.same_identity(identity, expected):
            raise KeyVaultError('vault key %s in %s is no longer at version %s, the one whose period was found over: its current '
                                'version is now %s, another key (another run rotated it meanwhile?); nothing was imported: '
                                'run again to see it' % (name, vault.url, if_current, current.properties.version))
        force = False  # the HSM key is the current version already (another run imported it): kept
    if current is not None and is_kek(key_summary(current)):
        raise KeyVaultError('vault key %s in %s is a KEK (its current version %s has key_ops exactly ["import"]); a KEK is '
                            'never a target key, so nothing was imported (force does not change that): give the key another '
                            'name' % (name, vault.url, current.properties.version))
    current_identity, current_source = (vault_identity_and_source(vault, current, spec['key_type'], spec['key_size'])
                                        if current else (None, None))
    decision, reason = decisions.import_decision(current is not None, current_identity, expected, force)
    before = key_summary(current) if current else None
    result = {'name': name, 'decision': decision, 'reason': reason, 'before': before, 'expected_fingerprint': expected}
    if decision == 'conflict':
        raise KeyVaultError('vault key %s in %s is not the HSM key: %s; nothing was imported. Set force: true to import the '
                            'HSM key as a new current version (a rotation), or use another name' % (name, vault.url, reason))
    if decision == 'keep':
        result.update(changed=False, key=before, version=before['version'], kid=before['kid'], fingerprint=current_identity,
                      identity_source=current_source)
        if verify_signature:
            result['proof'] = prove(vault, current, spec)
        return result
    if check_mode:
        result.update(changed=True, key=None, version=None, kid=None, fingerprint=expected)
        return result
    if byok_data is None:
        data, blob = byok_file.read(byok_path)
    else:
        byok_path = 'byok_content of %s' % name
        data, blob = byok_data, byok_file.parse(byok_data, source=byok_path)
    kek_vault, dummy, dummy2 = byok_file.parse_kid(blob.kid, option='header.kid of %s' % byok_path)
    if not vault.target.same_vault(kek_vault):
        raise KeyVaultError('byok_file %s was wrapped under a KEK of %s, not of %s; wrap it again with the KEK of this vault '
                            '(byok_kek_fetch with vault_url %s; in the staged flow, run stages 1 and 2 again)'
                            % (byok_path, kek_vault, vault.url, vault.url))
    jwk = {'kty': ki.AZURE_KTY[spec['key_type']], 'key_ops': key_ops or ki.DEFAULT_KEY_OPS[spec['key_type']]}
    if spec['key_type'] == 'EC':
        jwk['crv'] = spec['curve']
    tags = dict(tags or {})
    if expected:
        # the identity, recorded with the version: all a disabled version still shows of itself is in its versions list
        tags[ki.identity_tag(spec['key_type'])] = expected

    def is_ours(key):
        # Without an expected identity there is nothing to compare: a version that appeared after a failed PUT
        # under this host's lock is taken as this import's (the PUT was this run's only write to the key).
        if not expected:
            return True
        return decisions.same_identity(vault_identity(vault, key, spec['key_type'], spec['key_size']), expected)

    key, attempts = vault.import_once(name, jwk, data, is_ours, tags=tags, exists=current is not None, **attributes)
    identity, source = vault_identity_and_source(vault, key, spec['key_type'], spec['key_size'])
    if expected and not decisions.same_identity(identity, expected):
        raise foreign_version(vault, name, key, spec['key_type'], identity, expected)
    after = key_summary(key)
    unlike = protection_mismatch(after, attributes)
    if unlike:
        raise KeyVaultError('vault key %s version %s was imported, but the vault does not hold it as asked: %s; check that the '
                            'vault supports Secure Key Release (API version 7.3 or later) and inspect the version'
                            % (name, key.properties.version, unlike))
    result.update(changed=True, key=after, version=after['version'], kid=after['kid'], fingerprint=identity, identity_source=source,
                  attempts=attempts)
    if verify_signature:
        # the import happened and the vault holds the version: a proof that fails is reported, not the import
        result['proof'] = proof_or_why(vault, key, spec)
    return result


def _disable(vault, name, version, **fields):
    """Disable a version that is not the HSM key (Update Key, with fields); the error's text when the vault refused, else
    None: the caller's failure says which."""
    try:
        vault.update(name, version, enabled=False, **fields)
    except KeyVaultError as exc:
        return str(exc)
    return None


def foreign_version(vault, name, key, key_type, identity, expected):
    """The error for a version just imported that is not the HSM key (the .byok was wrapped from another key, or altered on
    its way): the version is disabled, so that nothing uses it as the HSM key, and its identity tag, written with the
    import, is set to what the vault says it holds.  The error carries the version's kid for the key's record."""
    version = key.properties.version
    if not decisions.known(identity):
        # nothing proves it is another key either (the vault's answer could not be read as a key): left as it is
        done = 'its identity could not be read from the vault\'s answer, so it was left enabled: inspect it'
    else:
        tags = dict(key.properties.tags or {})
        tags[ki.identity_tag(key_type)] = identity
        failure = _disable(vault, name, version, tags=tags)
        done = ('the version could NOT be disabled (%s): disable it yourself before anything uses it' % failure if failure else
                'the version was disabled (as the key\'s current version, it makes the key answer 403 until a version of the '
                'HSM key is imported)')
    exc = KeyVaultError('vault key %s version %s does not match the HSM key after import (%s, expected %s); %s. The .byok was '
                        'wrapped from another key or altered on its way: check byok_file and expected_fingerprint (in the '
                        'staged flow, the bundle and where it was)' % (name, version, identity, expected, done))
    exc.kid = key.id
    return exc


def protection_mismatch(after, attributes):
    """How the imported version differs from the exportable state and release policy asked for ('' when it does not):
    read back from the vault's answer, never assumed from the request."""
    want_exportable = bool(attributes.get('exportable'))
    if bool(after.get('exportable')) != want_exportable:
        return 'exportable is %s, not %s' % (str(bool(after.get('exportable'))).lower(), str(want_exportable).lower())
    want, held = attributes.get('release_policy'), after.get('release_policy')
    if want and not skr.same(held, want):
        return 'its release policy is %s, not %s' % (skr.summary(held), skr.summary(want))
    return ''


# -- keyvault_import: the keys of a request, checked, imported and shown ----------------------------------
def target_spec(p, meta, vault_type):
    """Key type/size/curve from the options, else from the .byok metadata; checked against what the vault accepts."""
    meta = meta or {}
    key_type = p['key_type'] or meta.get('key_type')
    if not key_type:
        raise ki.KeySpecError('key_type of %s is not set and %s has no metadata file next to it; set key_type (and key_size '
                              'or curve)' % (p['name'], p['byok_file'] or 'byok_content'))
    return ki.validate_target(key_type, p['key_size'] or meta.get('key_size'), p['curve'] or meta.get('curve'), vault_type)


def protection_of(item, key_type, vault_type):
    """exportable and release_policy ({policy, immutable} or None) of a key to import, checked as Key Vault would before
    any vault call (Secure Key Release's rules and the policy grammar: release_policy.check)."""
    kind = vault_type if vault_type in skr.EXPORTABLE_TYPES else None
    policy, problems = skr.check(item['release_policy'], key_type, kind, item['exportable'], item['release_policy_immutable'])
    for field, problem in problems:
        if field.startswith('release_policy.'):
            raise KeyVaultError('release_policy of %s, at %s: %s' % (item['name'], field[len('release_policy.'):], problem))
        raise KeyVaultError('%s of %s %s' % (field, item['name'], problem))
    if not item['exportable']:
        return {}
    return {'exportable': True, 'release_policy': {'policy': policy, 'immutable': bool(item['release_policy_immutable'])}}


def prepare(item, vault_type, check_mode):
    """Everything about one key that can be checked without the vault: (spec, expected, attributes, .byok bytes)."""
    name = item['name']
    byok_file.validate_key_name(name)
    if item['byok_file'] and item['byok_content']:
        raise KeyVaultError('give only one of byok_file and byok_content for key %s' % name)
    if not check_mode and not (item['byok_file'] or item['byok_content']):
        raise KeyVaultError('key %s needs byok_file or byok_content (the .byok that byok_wrap made)' % name)
    meta = byok_file.read_sidecar(item['byok_file']) if item['byok_file'] else None
    spec = target_spec(item, meta, vault_type)
    protection = protection_of(item, spec['key_type'], vault_type)
    try:
        key_ops = ki.check_key_ops(spec['key_type'], item['key_ops'], exportable=item['exportable'])
    except ki.KeySpecError as exc:
        raise ki.KeySpecError('key_ops of %s: %s' % (name, exc))
    for tag, problem in tag_problems(item['tags'], spec['key_type']):
        raise KeyVaultError('tags of %s%s: %s' % (name, " ('%s')" % tag if tag else '', problem))
    not_before, expires_on = check_dates(item['not_before'], item['expires_on'], what='key %s' % name)
    attrs = dict(protection, enabled=item['enabled'], not_before=not_before, expires_on=expires_on)
    expected = (item['expected_fingerprint'] or (meta or {}).get('fingerprint') or '').lower() or None
    data = None
    if item['byok_content']:
        try:
            data = base64.b64decode(item['byok_content'], validate=True)
        except (TypeError, ValueError):
            raise byok_file.ByokFormatError('byok_content of %s is not base64 (give the byok_content byok_wrap returned)' % name)
        if not check_mode:
            byok_file.parse(data, source='byok_content of %s' % name)
    elif not check_mode:
        byok_file.read(item['byok_file'])  # a missing or damaged file fails before any vault call
    return {'spec': spec, 'expected': expected, 'attributes': attrs, 'data': data, 'key_ops': key_ops}


def planned_key(vault, item, prepared):
    """What the vault will hold after the import: shown by --diff for a new key and for a new version."""
    spec = prepared['spec']
    out = {'vault': vault.url, 'name': item['name'], 'kty': ki.AZURE_KTY[spec['key_type']], 'key_ops': prepared['key_ops'],
           'enabled': item['enabled'], 'not_before': item['not_before'], 'expires_on': item['expires_on'],
           'tags': item['tags'] or {}, 'fingerprint': prepared['expected'],
           'exportable': bool(prepared['attributes'].get('exportable')),
           'release_policy': prepared['attributes'].get('release_policy')}
    out.update({'curve': spec['curve']} if spec['key_type'] == 'EC' else {'key_size': spec['key_size']})
    return out


def import_one(vault, item, prepared, check_mode, verify_signature):
    """Import one key (or keep it); the result with its diff: a new key, a new version of NAME, or no change."""
    result = import_key(vault, item['name'], item['byok_file'], prepared['spec'], prepared['key_ops'], prepared['expected'],
                        item['force'], prepared['attributes'], item['tags'], check_mode,
                        verify_signature=verify_signature and not check_mode, byok_data=prepared['data'],
                        if_current=item.get('if_current_version'))
    before = result.pop('before')
    if result['decision'] == decisions.KEEP:
        result['diff'] = {'before': before, 'after': before}
    else:
        after = dict(planned_key(vault, item, prepared), **(result.get('key') or {}))
        after['change'] = decisions.rotation_text(item['name']) if before else 'new key'
        result['diff'] = {'before': before or {}, 'after': after}
    return result


def check_names(kv, items, where=''):
    twice = repeated(i['name'].lower() for i in items)
    if twice:
        kv.fail('keys%s lists a name twice (%s; Key Vault compares names case-insensitively); give each vault key once'
                % (where, ', '.join(twice)))


def vault_result(results, what='keys'):
    """One vault's result from its keys' results: failed, naming each key that failed, when any did."""
    out = {'changed': any(r.get('changed') for r in results), 'keys': results}
    failed = [r for r in results if r.get('failed')]
    if failed:
        out.update(failed=True, msg='%d of %d %s failed: %s' % (len(failed), len(results), what, ' | '.join(
            '%s: %s' % (r.get('name'), r['msg']) for r in failed)))
    return out


def import_vault(kv, vault, items, verify_signature=None):
    """Import (or keep) the keys of one vault, up to O(parallel) at once; the vault's result."""
    verify = kv.params['verify_signature'] if verify_signature is None else verify_signature

    def one(item):
        return import_one(vault, item, prepare(item, vault.vault_type, kv.check_mode), kv.check_mode, verify)

    results = kv.run_keys_parallel(items, one, 'name', 'import')
    return vault_result(results)


def take_diffs(results, prefix='', wanted=True, diff=None):
    """Remove each result's diff and merge them into one {before, after} (diff, or a new one) keyed by (vault/)key name;
    only when the diff is wanted (--diff), so a large run does not carry a second copy of every key in its result."""
    diff = diff if diff is not None else {'before': {}, 'after': {}}
    for r in results:
        d = r.pop('diff', None)
        if d and wanted:
            diff['before'][prefix + r['name']] = d['before']
            diff['after'][prefix + r['name']] = d['after']
    return diff


def import_request(kv, item_fields):
    """keyvault_import's run over its three input shapes (one key, keys of one vault, vaults), as the module's result.

    item_fields: the names of a key's options (the single key's come from the module's top level).  Refusals that
    need no vault (a name twice, a vault twice, parallel out of range) fail the module before any request.
    """
    p = kv.params
    kv.check_parallel('import')  # the single key's form makes one request at a time, and still takes only what parallel allows
    if p['vaults'] is not None:
        kv.check_vaults(p['vaults'])
        for entry in p['vaults']:
            check_names(kv, entry['keys'], ' of vault %s' % (entry['name'] or entry['vault_url']))
        results = kv.run_vaults(p['vaults'], lambda vault, entry: import_vault(kv, vault, entry['keys']), 'import', items='keys',
                                writes=True)
        diff = {'before': {}, 'after': {}}
        for r in results:
            take_diffs(r.get('keys') or [], prefix='%s/' % r['name'], wanted=kv.module._diff, diff=diff)
        changed = any(r.get('changed') for r in results)
        failed = [r for r in results if r.get('failed')]
        if failed:
            return dict(failed=True, msg=' | '.join('vault %s: %s' % (r['name'], r['msg']) for r in failed), changed=changed,
                        vaults=results, diff=diff)
        return dict(changed=changed, vaults=results, diff=diff)
    single = p['keys'] is None
    items = [dict((k, p[k]) for k in item_fields)] if single else p['keys']
    check_names(kv, items)
    if single:
        results = kv.run_keys(items, lambda item: import_one(kv.vault, item, prepare(item, kv.vault.vault_type, kv.check_mode),
                                                             kv.check_mode, p['verify_signature']), 'name')
        d = results[0].pop('diff', None)
        diff = dict(d, before_header=results[0]['name'], after_header=d['after'].get('change', results[0]['name'])) if d else {
            'before': {}, 'after': {}}
        return kv.outcome(results, single, diff=diff)
    result = import_vault(kv, kv.vault, items)
    return kv.outcome(result['keys'], single, diff=take_diffs(result['keys'], wanted=kv.module._diff))


# -- keyvault_key_info: the look-ups of one vault or of several ---------------------------------------------------------
def vault_kcv(vault, key):
    """KCV of an oct-HSM key computed by the vault; its size is not in the JWK, so each AES size is tried."""
    for bits in reversed(ki.OCT_SIZES):
        kcv = vault.kcv(key, bits)
        if kcv is not None:
            return kcv
    return None


def vault_wrap_check(vault, key):
    """For an AES key the vault computes no KCV of (it may not encrypt): {value, wrapped} - a random value and the
    vault's key wrap of it, which the HSM step computes again with the HSM key - or None when the key may not wrap."""
    value = os.urandom(32)
    for bits in reversed(ki.OCT_SIZES):
        wrapped = vault.key_wrap(key, bits, value)
        if wrapped is not None:
            return {'value': value.hex(), 'wrapped': wrapped.hex()}
    return None


def look_up(vault, name, versions):
    key = vault.current(name)
    entry = {'name': name, 'exists': key is not None}
    if key is None:
        # a name the vault holds soft-deleted: Key Vault refuses a new key of that name until it is recovered or purged
        deleted = vault.get_deleted(name)
        if deleted is not None:
            tags = deleted.properties.tags or {}
            entry.update(deleted=True, deleted_kid=deleted.properties.id,
                         deleted_fingerprint=key_fingerprint(deleted) or ki.tagged_identity(tags, ki.KCV_TAG))
    elif isinstance(key, DisabledVersion):
        entry.update(disabled_summary(key))
    else:
        entry.update(key_summary(key))
        if ki.identified_by_kcv(entry['kty']):
            entry['kcv'] = vault_kcv(vault, key)
            if entry['kcv'] is None and 'wrapKey' in (entry.get('key_ops') or ()):
                entry['wrap_check'] = vault_wrap_check(vault, key)
    if versions:
        entry['version_count'] = len(vault.versions(name)) if key is not None else 0
    return entry


def earlier_identities(vault, name, current_version):
    """{'name', 'earlier_identities'}: what the versions of a key other than its current one (as the read found it, not
    the newest in the list) hold.

    Each version the vault will read is read: its JWK's fingerprint, or for AES the KCV the vault computes; a tag can be
    removed or copied by anyone allowed to tag a key, so it is only added to what was read (a disabled version shows
    nothing else)."""
    found = set()
    for props in vault.versions(name):
        if props.version == current_version:
            continue
        tagged = ki.identity_of_tags(props.tags)
        if tagged:
            found.add(tagged[1])
        if props.enabled is False:
            continue
        try:
            key = vault.get(name, props.version)
        except ByokError:  # not readable (disabled meanwhile, or no permission): its tag, if any, is all there is
            continue
        if key is not None:
            shown = key_fingerprint(key) or (vault_kcv(vault, key) if ki.identified_by_kcv(key.key_type) else None)
            if shown:
                found.add(shown)
    return {'name': name, 'earlier_identities': sorted(found)}


def read_vault(kv, vault, names, versions, tagged=False):
    """The look-ups of one vault (and with tagged, its other keys that carry the collection's identity tag); a vault that
    cannot be read fails as a whole (authentication, permission, network)."""
    keys = kv.run_keys_parallel(names, lambda name: look_up(vault, name, versions), 'name', 'look-up')
    failed = [k for k in keys if k.get('failed')]
    result = {'changed': False, 'keys': keys}
    if failed:
        result.update(failed=True, msg=failed[0]['msg'])
    elif tagged:
        result['tagged'] = [dict((f, k[f]) for f in ('name', 'tag', 'identity'))
                            for k in tagged_keys(vault, {'name': None, 'names': names})['unlisted']]
    return result


def key_info_request(kv):
    """keyvault_key_info's run over its input shapes (names of one vault, vaults), as the module's result."""
    p = kv.params
    versions = p['versions']
    if p['vaults'] is not None:
        kv.check_vaults(p['vaults'])
        for entry in p['vaults']:
            for name in entry['names']:
                kv.guard(byok_file.validate_key_name, name, option='names of vault %s' % (entry['name'] or entry['vault_url']))

        def read(vault, entry):
            return read_vault(kv, vault, entry['names'], versions, p['tagged'])

        results = kv.run_vaults(p['vaults'], read, 'look-up', items='names')
        failed = [r for r in results if r.get('failed')]
        if failed:
            return dict(failed=True, vaults=results, msg='%d of %d vaults could not be read: %s' % (len(failed), len(results), ' | '.join(
                '%s: %s' % (r['name'], r['msg']) for r in failed)))
        return dict(changed=False, vaults=results)
    for name in p['names']:
        kv.guard(byok_file.validate_key_name, name, option='names')
    result = read_vault(kv, kv.vault, p['names'], versions, p['tagged'])
    if result.get('failed'):
        return dict(failed=True, msg=result['msg'], keys=result['keys'])
    return dict(changed=False, keys=result['keys'], **({'tagged': result['tagged']} if p['tagged'] else {}))


# -- byok_kek_fetch: the KEK of a vault ensured (or deleted), its public key written ------------------------------------
NO_KEK = dict(kid=None, fingerprint=None, key_size=None, public_key_pem=None, expires_on=None)


def delete_kek(kv, name, purge, vault=None):
    """What deleting (and purging) the KEK did (keyvault.Vault.delete's dict); nothing when the vault has no such key."""
    vault = vault or kv.vault
    exists = vault.get(name) is not None
    if exists and not kv.check_mode:
        return vault.delete(name, purge=purge)
    return {'deleted': exists, 'purged': False, 'purge_refused': None, 'scheduled_purge_date': None}


def write_pem(dest, pem, check_mode):
    """(changed) after writing the KEK public key to dest (0644: it is public), unless it already holds it."""
    current = None
    if os.path.exists(dest):
        with open(dest, 'rb') as f:
            current = f.read()
    if current == pem.encode('ascii'):
        return False
    if not check_mode:
        byok_file.atomic_write(dest, pem.encode('ascii'), mode=0o644)
    return True


def check_dest(dest):
    if dest and not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        raise KeyVaultError('the directory of dest %s does not exist; create it first' % dest)


def kek_request(kv):
    """byok_kek_fetch's run, as the module's result."""
    p = kv.params
    kv.guard(byok_file.validate_key_name, p['name'])
    if p['state'] == 'absent':
        outcome = kv.guard(delete_kek, kv, p['name'], p['purge'])
        if outcome['purge_refused']:
            kv.module.warn(outcome['purge_refused'])
        return dict(NO_KEK, changed=outcome['deleted'], created=False, **outcome)
    expires_on = kv.guard(parse_datetime, p['expires_on'], 'expires_on')
    kv.guard(check_dest, p['dest'])
    created, summary, public = kv.guard(ensure_kek, kv.vault, p['name'], p['key_size'], p['create'], expires_on, kv.check_mode)
    if summary is None:
        result = dict(NO_KEK)
        result.update(changed=True, created=True, recovered=False, key_size=p['key_size'], expires_on=p['expires_on'])
        return result
    pem = ki.public_pem(public)
    changed = created or summary['recovered']
    if p['dest']:
        changed = kv.guard(write_pem, p['dest'], pem, kv.check_mode) or changed
    return dict(changed=changed, created=created, recovered=summary['recovered'], kid=summary['kid'],
                fingerprint=ki.fingerprint(public), key_size=public.key_size, public_key_pem=pem,
                expires_on=summary['expires_on'])


# -- byok_vault_step: the vault side of the transfer role, over the key records of every HSM host ----------------------
def _item_defaults(item):
    """A keyvault_import keys[] item with every option the module's argument spec would have filled in."""
    out = dict((name, option.get('default')) for name, option in ITEM_SPEC.items())
    out.update(item)
    return out


def fetch_kek(kv, vault, entry):
    """The KEK of one vault (found, recovered or created), as a kek step result."""
    expires_on = parse_datetime(entry.get('kek_expires_on'), 'kek_expires_on of vault %s' % entry['name'])
    created, summary, public = ensure_kek(vault, entry['kek_name'], entry['kek_size'], True, expires_on, kv.check_mode)
    out = {'kek_name': entry['kek_name'], 'created': created, 'changed': bool(created)}
    if summary is None:  # check mode: it would be created (or recovered)
        return dict(out, kid=None, fingerprint=None, public_key_pem=None)
    return dict(out, changed=created or summary['recovered'], kid=summary['kid'], fingerprint=ki.fingerprint(public),
                public_key_pem=ki.public_pem(public), key_size=public.key_size)


def _warn_failed(kv, results, what):
    for r in results:
        if r.get('failed'):
            kv.module.warn('%s of vault %s: %s' % (what, r.get('name'), r.get('msg')))


def read_records(kv, records):
    """The read step: what each vault holds of every record.  With bundle (stage 3 of the staged flow), the bundle is
    checked first (the seal against the digest carried out of band, each .byok against its seal), before any vault call:
    each record takes the HSM key stage 2 sealed and its .byok, and is decided against its vault after the read; a bundle
    that is not authenticated stops every key before any vault call."""
    staged = kv.params.get('bundle')
    if staged:
        if staged['unauthenticated']:
            kv.module.warn(bundle.UNAUTHENTICATED_WARNING)
        results, refusal = kv.guard(bundle.verify, staged['path'], records, staged['digests'], staged['unauthenticated'])
        record.note_bundle(records, results)
        if refusal:
            kv.module.warn(refusal)
            return dict(changed=False, records=records, refusal=refusal)
    requests = record.read_requests(records)
    kv.progress = Progress('read', 'controller', sum(len(r['names']) for r in requests))
    results = kv.run_vaults(requests, lambda vault, entry: read_vault(kv, vault, entry['names'], False), 'look-up',
                            items='names')
    kv.progress = NoProgress()
    _warn_failed(kv, results, 'the read')
    record.note_reads(records, results, now=_now())
    history = record.history_requests(records)
    if history:
        # a rotation never puts into service again what an older version held: the versions of the keys due for one,
        # and of the keys force may give a new version (stage 3 too: a bundle is a picture of the past)
        current = record.read_versions(records)
        found = kv.run_vaults(history, lambda vault, entry: {'changed': False, 'keys': [
            earlier_identities(vault, name, current.get((entry['name'], name))) for name in entry['names']]},
            'version list', items='names')
        record.note_history(records, found)
    if staged:
        checks = kv.run_vaults(record.sealed_kek_requests(records), sealed_keks, 'KEK check')
        _warn_failed(kv, checks, 'the check of the sealed KEKs')
        record.note_sealed_keks(records, checks)
        record.decide(records)
    return dict(changed=False, records=records, refusal=None)


def sealed_keks(vault, entry):
    """Stage 3: {'problems': {kid: why}} of the KEKs a seal names for this vault that the vault does not confirm: each must
    be a version of a KEK of this vault (key_ops exactly import) whose public key has the fingerprint stage 2 verified."""
    problems = {}
    for kek in entry['keks']:
        try:
            where, name, version = byok_file.parse_kid(kek['kid'], option='the sealed kek_kid')
        except ByokError as exc:
            problems[kek['kid']] = str(exc)
            continue
        if not vault.target.same_vault(where):
            problems[kek['kid']] = 'it is a key of %s, not of this vault' % where
            continue
        key = vault.get(name, version)
        if key is None:
            problems[kek['kid']] = 'the vault has no such key version'
        elif isinstance(key, DisabledVersion):
            problems[kek['kid']] = 'the key is disabled in the vault'
        elif not is_kek(key_summary(key)):
            problems[kek['kid']] = 'that version is not a KEK (its key_ops are %s, not exactly ["import"])' % (
                key_summary(key).get('key_ops'))
        elif key_fingerprint(key) != kek.get('fingerprint'):
            problems[kek['kid']] = 'its public key has the fingerprint %s' % key_fingerprint(key)
    return {'changed': False, 'problems': problems}


def tagged_keys(vault, entry):
    """The keys of a vault that carry the collection's identity tag and that the entry does not name (the audit's
    unlisted keys): [{vault, vault_url, name, tag, identity, expires_on}]."""
    named = set(key_name_key(n) for n in entry['names'])
    out = []
    for props in vault.list_keys():
        # any identity tag, also one that identifies nothing (a 3-byte KCV an earlier release wrote): it marks the key
        found = ki.identity_of_tags(props.tags) or next(((t, props.tags[t]) for t in ki.IDENTITY_TAGS
                                                         if (props.tags or {}).get(t)), None)
        if found is None or key_name_key(props.name) in named:
            continue
        out.append({'vault': entry['name'], 'vault_url': vault.url, 'name': props.name, 'tag': found[0], 'identity': found[1],
                    'expires_on': props.expires_on.isoformat() if props.expires_on else None})
    return {'changed': False, 'unlisted': out}


def audit_records(kv, records):
    """The audit's vault step: the read of every record (as the transfer's), and each vault's keys that carry the
    collection's identity tag but no record names.  Read-only."""
    result = read_records(kv, records)
    if not kv.params.get('list_unlisted', True):
        result.update(unlisted=[], listing_failures=[], unlisted_checked=False)
        return result
    listings = kv.run_vaults(record.read_requests(records), tagged_keys, 'listing')
    _warn_failed(kv, listings, 'the listing')
    result['unlisted'] = [k for r in listings for k in r.get('unlisted') or []]
    result['listing_failures'] = ['vault %s: %s' % (r.get('name'), r.get('msg')) for r in listings if r.get('failed')]
    result['unlisted_checked'] = True
    return result


def kek_records(kv, records):
    """The kek step: the KEK of each vault a key moves to.  With bundle (stage 1 of the staged flow), the KEK of every
    vault of the records, each written into the bundle's keks folder (checked, and created, before any vault call)."""
    staged = kv.params.get('bundle')
    if staged:
        kv.guard(bundle.prepare, staged['path'], ['keks'], True, kv.check_mode)
    requests = record.kek_requests(records, every=bool(staged))
    results = kv.run_vaults(requests, lambda vault, entry: fetch_kek(kv, vault, entry), 'KEK')
    _warn_failed(kv, results, 'the KEK')
    changed = any(r.get('changed') for r in results)
    out = dict(records=record.note_keks(records, results, every=bool(staged)))
    if staged:
        urls = dict((r['name'], r['vault_url']) for r in requests)
        written = [kv.guard(bundle.write_kek, staged['path'], r['name'], urls.get(r['name']), r, kv.check_mode)
                   for r in results if not r.get('failed') and r.get('kid')]
        changed = changed or any(written)
        out['lines'] = [('%s: no KEK (%s)' % (r['name'], r.get('msg')) if r.get('failed') else
                         '%s: sha256 %s' % (r['name'], r['fingerprint']) if r.get('fingerprint') else
                         '%s: the KEK would be created (check mode): no fingerprint yet' % r['name']) for r in results]
        if any(r.get('failed') for r in results):
            out.update(failed=True, msg='; '.join('the KEK of vault %s could not be had: %s' % (r['name'], r.get('msg'))
                                                  for r in results if r.get('failed')))
    return dict(out, changed=changed)


def delete_keks(kv, records):
    """Delete (and with purge, purge) the KEK of each vault the records were given one: [{vault, kek_name, deleted...}]."""
    entries = [{'name': name, 'vault_url': kek['url'], 'vault_type': kek['vault_type'], 'kek_name': kek['kek_name']}
               for name, kek in sorted(record.kek_vaults(records).items())]

    def delete(vault, entry):
        return dict(delete_kek(kv, entry['kek_name'], kv.params['purge'], vault), kek_name=entry['kek_name'])

    results = kv.run_vaults(entries, delete, 'KEK delete')
    _warn_failed(kv, results, 'the KEK deletion')
    for r in results:
        if r.get('purge_refused'):
            kv.module.warn(r['purge_refused'])
    return results


def update_fields(changes):
    """Update Key's keyword arguments for {field: [before, after]} changes."""
    out = {}
    for field, (_before, after) in changes.items():
        if field in ('not_before', 'expires_on'):
            out[field] = parse_datetime(after, field) if after else None
        elif field == 'release_policy':
            out[field] = after  # {policy, immutable}: Vault.update makes the SDK's model of it
        elif field == 'key_ops':
            out['key_operations'] = list(after or [])
        else:
            out[field] = after
    return out


def remove_vault(kv, vault, items):
    """Delete (soft, never purge) or recover each key of one vault, as the records decided."""
    def one(item):
        out = {'name': item['name'], 'changed': True}
        if kv.check_mode:
            return out
        if item['action'] == decisions.DELETE:
            still_current(vault, item['name'], item.get('version'), 'deleted')
            done = vault.delete(item['name'], purge=False)
            out.update(changed=done['deleted'], scheduled_purge_date=done['scheduled_purge_date'], gone=not done['deleted'])
            if not done['deleted']:
                # "no such key" to this run's DELETE: the vault holds the version this run meant to delete soft-deleted
                # when its answer was lost and a retry found it gone; else someone else deleted it in between
                deleted = vault.get_deleted(item['name'])
                if deleted is not None and item.get('version') and deleted.properties.version == item['version']:
                    out.update(changed=True, gone=False, answer_lost=True)
        else:
            key = vault.recover(item['name'])
            held = recovered_summary(key)
            if ki.identified_by_kcv(item.get('key_type')) and not held.get('disabled') and item.get('key_size'):
                held['kcv'] = vault.kcv(key, item['key_size'])
            _recovered_is_the_hsm_key(vault, item, held)
            out.update(kid=key.id, held=held)
        return out

    results = kv.run_keys_parallel(items, one, 'name', 'delete')
    return vault_result(results)


def _recovered_is_the_hsm_key(vault, item, held):
    """A recovered version whose key material the vault shows (its JWK, or a KCV it computed) must be the HSM key: the
    recovery was decided on what the soft-deleted key showed, for an AES key only its identity tag, which anyone who may
    tag a key can write.  Another key is deleted again (soft delete, as it was) and the recovery fails, naming both."""
    shown = held.get('fingerprint') or held.get('kcv')
    if not shown or not item.get('expected') or decisions.same_identity(shown, item['expected']):
        return
    try:
        vault.delete(item['name'], purge=False)
        undone = 'it was deleted again (soft delete, as it was before this run)'
    except ByokError as exc:
        undone = 'it could NOT be deleted again (%s): delete it yourself' % exc
    raise KeyVaultError("vault key %s recovered from the soft-deleted keys is not the HSM key (%s, not %s): its identity "
                        "tag said it was, and a tag proves nothing; %s. Purge it or use another name, then run again"
                        % (item['name'], shown, item['expected'], undone))


def prove_vault(kv, vault, items):
    """A signature by each key in place of one vault (its current version, still the one the run read), verified with
    its public key."""
    def one(item):
        key = vault.get(item['name'])
        if key is None or key.properties.version != item['version']:
            raise KeyVaultError('vault key %s changed since this run read it (version %s); it was not signed: run again'
                                % (item['name'], item['version']))
        return {'name': item['name'], 'proof': proof_or_why(vault, key, {'key_type': item['key_type']})}

    return vault_result(kv.run_keys_parallel(items, one, 'name', 'signature'))


def recovered_summary(key):
    """What a recovered version holds, as the read step gives a version (its stated attributes are then compared with
    it and updated in the same run)."""
    if getattr(key, 'key', None) is not None and getattr(key.key, 'kty', None):
        held = key_summary(key)
    else:  # no key material in the answer (a disabled version): its attributes only
        held = dict(disabled_summary(key), **policy_summary(key))
    held.update(exists=True, disabled=held.get('enabled') is False)
    return held


def update_vault(kv, vault, items):
    """Update Key for each key of one vault whose stated attributes differ (its current version, in place)."""
    def one(item):
        if not kv.check_mode:
            still_current(vault, item['name'], item['version'], 'updated')
            fields = update_fields(item['changes'])
            if item.get('disabled') and fields.get('enabled'):
                # known only by its identity tag: enabled alone first, and the other changes written only once its key
                # material, readable now, proved to be the HSM key's (nothing of the inventory lands on another key)
                key = vault.update(item['name'], item['version'], enabled=True)
                if getattr(key, 'key', None) is not None and key.properties.enabled:
                    _enabled_is_the_hsm_key(vault, item, key)
                fields.pop('enabled')
                if fields:
                    vault.update(item['name'], item['version'], **fields)
            else:
                vault.update(item['name'], item['version'], **fields)
        return {'name': item['name'], 'changes': item['changes'], 'changed': True}

    results = kv.run_keys_parallel(items, one, 'name', 'update')
    return vault_result(results, 'updates')


def still_current(vault, name, version, what):
    """Refuse to act on a vault key whose current version is no longer the one the run read and decided on (another client
    made a version, or deleted the key, in between): nothing is done to it, the next run decides against what it holds."""
    if not version:
        return
    current = vault.current(name)
    now = current.properties.version if current is not None else None
    if now is not None and now != version:
        raise KeyVaultError('vault key %s changed since this run read it: its current version is now %s, not %s; nothing was '
                            '%s: run again to decide against what the vault holds now' % (name, now, version, what))


def _enabled_is_the_hsm_key(vault, item, key):
    """A disabled version, known only by the identity tag the collection writes, was enabled: its key material, readable
    now, must be the HSM key's; a version of another key is disabled again and the key fails."""
    identity = vault_identity(vault, key, item['key_type'], item['key_size'])
    if decisions.known(identity) and not decisions.same_identity(identity, item.get('expected')):
        # disabled again, and its identity tag set to what it holds: no later run or audit takes it for the HSM key
        tags = dict(key.properties.tags or {})
        tags[ki.identity_tag(item['key_type'])] = identity
        failure = _disable(vault, item['name'], item['version'], tags=tags)
        done = ('it could NOT be disabled again (%s): disable it yourself' % failure if failure else
                'it was disabled again, its identity tag now saying what it holds, and nothing else of it was changed')
        exc = KeyVaultError("vault key %s version %s, disabled and known only by its identity tag, was enabled, and its key "
                            "material is not the HSM key (%s, not %s); %s. Someone copied the tag onto another key: set "
                            "force: true to import the HSM key as a new version, or use another name"
                            % (item['name'], item['version'], identity, item.get('expected'), done))
        exc.identity = identity
        raise exc


def import_records(kv, records):
    """The import step: each wrapped key into its vault (or kept), all vaults at once, then the deletions, recoveries,
    attribute updates and signatures the records ask for (record.import_step orders them); then, with delete_keks, the
    KEKs of the run deleted (after every import, whatever its outcome)."""
    p = kv.params
    verify = any(r.get('verify_signature') for r in records)
    p['parallel'] = p['import_parallel']  # run_vaults and run_keys_parallel read parallel: the imports have their own
    diff = {'before': {}, 'after': {}}

    def imports(requests):
        for entry in requests:
            entry['keys'] = [_item_defaults(item) for item in entry['keys']]
            check_names(kv, entry['keys'], ' of vault %s' % entry['name'])
        kv.progress = Progress('import', 'controller', sum(len(entry['keys']) for entry in requests))
        results = kv.run_vaults(requests, lambda vault, entry: import_vault(kv, vault, entry['keys'], verify), 'import',
                                items='keys', writes=True)
        kv.progress = NoProgress()
        for r in results:
            take_diffs(r.get('keys') or [], prefix='%s/' % r['name'], wanted=kv.module._diff, diff=diff)
        _warn_failed(kv, results, 'the import')
        return results

    def removals(requests):
        # the keys listed as absent: deleted (soft delete, never purged); the keys listed again: recovered, not re-imported
        results = kv.run_vaults(requests, lambda vault, entry: remove_vault(kv, vault, entry['keys']), 'delete',
                                items='keys', writes=True)
        _warn_failed(kv, results, 'the deletion or recovery')
        return results

    def updates(requests):
        # the keys in place whose stated attributes differ from their vault's: updated in place (no new version)
        results = kv.run_vaults(requests, lambda vault, entry: update_vault(kv, vault, entry['keys']), 'update',
                                items='keys', writes=True)
        _warn_failed(kv, results, 'the update')
        for r in results:
            for k in r.get('keys') or []:
                if k.get('changes') and kv.module._diff:
                    where = '%s/%s' % (r['name'], k['name'])
                    diff['before'][where] = dict((f, v[0]) for f, v in k['changes'].items())
                    diff['after'][where] = dict((f, v[1]) for f, v in k['changes'].items())
        return results

    def proofs(requests):
        # byok_verify_signature: the keys in place are signed too, each run (a proof that failed once is asked for again)
        return kv.run_vaults(requests, lambda vault, entry: prove_vault(kv, vault, entry['keys']), 'signature', items='keys')

    work = {'import': imports, 'delete': removals, 'update': updates, 'signature': proofs}
    done = record.import_step(records, kv.check_mode, lambda kind, requests: work[kind](requests))
    result = record.import_result(records, done['import'] + done['delete'] + done['update'], kv.check_mode, diff)
    if p['delete_keks']:
        result['keks_deleted'] = delete_keks(kv, records)
        result['changed'] = result['changed'] or any(k.get('deleted') for k in result['keks_deleted'])
    return result


def vault_step_request(kv):
    """byok_vault_step's run over the key records of every HSM host, as the module's result (the records, each with what
    the step did for its key).  A vault that fails fails its keys only (their records say why, and a warning names it)."""
    p = kv.params
    kv.check_import_parallel()
    records = record.copies(p['records'])
    step = {'read': read_records, 'kek': kek_records, 'import': import_records, 'audit': audit_records}[p['step']]
    return step(kv, records)
