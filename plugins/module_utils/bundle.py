# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transfer bundle of the air-gapped flow: its folders, and the seal that authenticates it across the air gap.

The bundle travels through hands the collection cannot vouch for, so nothing in it is trusted by itself:

- Stage 2 (offline, HSM side) writes ``wrapped/HOST/seal.json`` after it wrapped the keys of HOST: one canonical
  record per key - vault, name, key type/size/curve, the HSM key's identity (SPKI SHA-256 fingerprint, or KCV for
  AES) as the HSM gave it, the SHA-256 of the .byok file it has just written and the KEK it wrapped under - and
  prints the seal's *digest* (the first 128 bits of its SHA-256) for the operator to carry out of band.
- Stage 3 (connected) recomputes the digest of the seal it finds and refuses to import anything when it is not the
  digest given out of band (``byok_expected_bundle_digests``); then each .byok must have the SHA-256 its seal records,
  and the vault key is compared after the import with the sealed HSM identity, never with the sidecar.

A forged .byok (a key the forger knows, wrapped under the public KEK) changes a file's SHA-256, so it needs a forged
seal, which changes the digest the operator carries.  Paths are opened through owned_dir (no link, owned folders).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os
import re

from ansible_collections.byok.keyvault.plugins.module_utils import byok_file
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import owned_dir
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError

SEAL_NAME = 'seal.json'
SEAL_SCHEMA = 'byok.keyvault/seal/1'
DIGEST_HEX = 32
_DIGEST_SEPARATORS = re.compile(r'[\s:_-]')
_SUBDIR_RE = re.compile(r'^[^/\x00-\x1f\x7f]+\Z')
UNAUTHENTICATED_WARNING = ('byok_airgap_unauthenticated is true: the air gap is NOT authenticated (KEKs and .byok files are '
                           'taken from the bundle as they are); whoever could alter the bundle on the way can make the '
                           'vault hold a key they know. Remove it and give byok_expected_kek_fingerprints (stage 2) and '
                           'byok_expected_bundle_digests (stage 3)')
RECORD_FIELDS = ('vault', 'name', 'label', 'key_type', 'key_size', 'curve', 'identity', 'byok_sha256', 'kek_kid',
                 'kek_fingerprint', 'wrap_method', 'wrap_mechanism', 'token')
#: what the seal gives stage 3's records besides the identity (the KEK, the wrap and the token, for its rows and manifest)
SEALED_FACTS = ('kek_kid', 'kek_fingerprint', 'wrap_method', 'wrap_mechanism', 'token')


def option_spec():
    """The bundle option of byok_vault_step and byok_hsm_step (documented in the doc fragment byok.keyvault.bundle)."""
    return dict(type='dict', options=dict(path=dict(type='path', required=True),
                                          kek_fingerprints=dict(type='dict', default={}),
                                          digests=dict(type='dict', default={}),
                                          unauthenticated=dict(type='bool', default=False)))


def wrapped_dir(host, vault=None):
    """The bundle's folder of an HSM host's seal (wrapped/HOST), or of its keys for one vault (wrapped/HOST/VAULT)."""
    return 'wrapped/%s' % host if vault is None else 'wrapped/%s/%s' % (host, vault)


def wrapped_file(host, vault, name):
    """Where in the bundle stage 2 writes the .byok of a vault key (wrapped/HOST/VAULT/NAME.byok)."""
    return '%s/%s.byok' % (wrapped_dir(host, vault), name)


class BundleError(ByokError):
    """The bundle cannot be used (an unsafe folder, a damaged seal); one line."""


def digest(data):
    """The digest a person reads off the screen: 128 bits of the SHA-256 of the seal, hex in groups of four."""
    text = hashlib.sha256(data).hexdigest()[:DIGEST_HEX]
    return '-'.join(text[i:i + 4] for i in range(0, DIGEST_HEX, 4))


def normalize_digest(value):
    """A digest as typed (any case, with or without spaces, dashes or colons; the full SHA-256 also) as 32 hex
    characters, or None when it is not one."""
    if not isinstance(value, str):
        return None
    text = _DIGEST_SEPARATORS.sub('', value).lower()
    if re.match(r'^[0-9a-f]{32}\Z', text) or re.match(r'^[0-9a-f]{64}\Z', text):
        return text[:DIGEST_HEX]
    return None


def seal_bytes(host, records):
    """The canonical seal of one HSM host: sorted records, sorted keys, no spaces, one line."""
    keys = sorted(([dict((f, r.get(f)) for f in RECORD_FIELDS) for r in records]),
                  key=lambda r: (r['vault'], r['name'].lower()))
    doc = {'schema': SEAL_SCHEMA, 'host': host, 'keys': keys}
    return (json.dumps(doc, sort_keys=True, separators=(',', ':')) + '\n').encode('utf-8')


def check_subdir(relative):
    """A bundle-relative folder path made of plain names (no '..', no absolute path)."""
    parts = relative.split('/')
    if not relative or relative.startswith('/') or any(p in ('', '.', '..') or not _SUBDIR_RE.match(p) for p in parts):
        raise BundleError("bundle folder %r is not a plain relative path (no '..', no leading /); this is a bug in the "
                          "caller" % relative)
    return relative


def unsafe_message(exc, bundle_dir, variable='byok_bundle_dir'):
    return ('%s: %s; give %s a directory of this user that only it may write, by its real path (the collection creates '
            'missing folders 0700 and never changes the mode or owner of an existing one)' % (variable, exc, variable))


def prepare(bundle_dir, subdirs, create, check_mode):
    """Check (and, unless check_mode, create) the bundle directory and its folders; returns the folders created."""
    created = []
    for relative in [''] + [check_subdir(s) for s in subdirs]:
        path = os.path.join(bundle_dir, relative) if relative else bundle_dir
        try:
            owned_dir.check_directory(path, create=create and not check_mode, own_from=bundle_dir, created=created)
        except owned_dir.UnsafeDirectory as exc:
            if exc.missing and (check_mode or not create):
                if create:
                    created.append(exc.component)
                    continue
                raise BundleError(unsafe_message(exc, bundle_dir).replace('; give', ' (run the earlier stage first?); give', 1))
            raise BundleError(unsafe_message(exc, bundle_dir))
    return sorted(set(created))


def read_file(bundle_dir, relative_dir, name):
    """Bytes of bundle_dir/relative_dir/name, every folder checked and the file opened without following a link."""
    directory = os.path.join(bundle_dir, check_subdir(relative_dir))
    dir_fd = owned_dir.open_directory(directory, own_from=bundle_dir)
    try:
        fd, dummy = owned_dir.open_file(dir_fd, name, os.path.join(directory, name))
        with os.fdopen(fd, 'rb') as f:
            return f.read()
    finally:
        os.close(dir_fd)


def file_sha256(bundle_dir, relative_dir, name):
    return hashlib.sha256(read_file(bundle_dir, relative_dir, name)).hexdigest()


def unseal(bundle_dir, host):
    """Stage 2, before any .byok of HOST is written again: its seal removed, so that a run that fails half-way leaves no
    seal rather than one that names files it replaced (stage 3 then says the seal is missing, not that a file was
    replaced after stage 2).  Returns the seal's bytes, or None when there was none."""
    relative = wrapped_dir(host)
    try:
        data = read_file(bundle_dir, relative, SEAL_NAME)
    except owned_dir.UnsafeDirectory as exc:
        if not exc.missing:
            raise BundleError(unsafe_message(exc, bundle_dir))
        return None
    dir_fd = owned_dir.open_directory(os.path.join(bundle_dir, relative), own_from=bundle_dir)
    try:
        os.unlink(SEAL_NAME, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    return data


def seal_records(bundle_dir, host, records, check_mode, previous=None):
    """Stage 2: the seal of HOST over its seal records (RECORD_FIELDS, each .byok's SHA-256 read back from the bundle).

    Returns {'host', 'digest', 'path', 'changed', 'keys': [record...], 'lines'}; writes wrapped/HOST/seal.json unless
    check_mode (changed: unlike the seal there, or the seal unseal() took away, previous).
    """
    data = seal_bytes(host, records)
    relative = wrapped_dir(host)
    path = os.path.join(bundle_dir, relative, SEAL_NAME)
    changed = False
    if not check_mode:
        prepare(bundle_dir, [relative], True, False)
        try:
            changed = write = read_file(bundle_dir, relative, SEAL_NAME) != data
        except owned_dir.UnsafeDirectory as exc:
            if not exc.missing:
                raise
            changed, write = previous != data, True  # unseal() took the seal away before the files were written again
        if write:
            byok_file.atomic_write(path, data, mode=0o600)
    keys = json.loads(data.decode('utf-8'))['keys']
    lines = ['%s/%s/%s: HSM key %s %s, .byok sha256 %s' % (host, r['vault'], r['name'], ki.identity_kind(r['key_type']),
                                                           r['identity'], r['byok_sha256']) for r in keys]
    if check_mode:
        lines.append('check mode: nothing was wrapped or sealed')
    else:
        lines.append('bundle digest of %s: %s - read it off this screen and give it to stage 3 as '
                     'byok_expected_bundle_digests.%s (on another channel than the bundle)' % (host, digest(data), host))
    return {'host': host, 'digest': None if check_mode else digest(data), 'path': path, 'changed': changed,
            'keys': keys, 'lines': lines}


# -- the staged flow over key records: stage 1 puts the KEKs in, stage 2 the wrapped keys, stage 3 takes them -----------
def _same_bytes(bundle_dir, relative, name, data):
    try:
        return read_file(bundle_dir, relative, name) == data
    except owned_dir.UnsafeDirectory as exc:
        if not exc.missing:
            raise
        return False


def write_kek(bundle_dir, vault, vault_url, kek, check_mode):
    """Stage 1: keks/VAULT.pem (the KEK's public key, 0644: it is public) and keks/VAULT.json (vault, vault_url, kid,
    fingerprint, key_size), each written only when it differs; whether one was (or would be)."""
    doc = dict((f, kek.get(f)) for f in ('kid', 'fingerprint', 'key_size'))
    doc.update(vault=vault, vault_url=vault_url)
    changed = False
    for name, data, mode in (('%s.pem' % vault, kek['public_key_pem'].encode('ascii'), 0o644),
                             ('%s.json' % vault, (json.dumps(doc, indent=2, sort_keys=True) + '\n').encode('utf-8'), 0o600)):
        if _same_bytes(bundle_dir, 'keks', name, data):
            continue
        changed = True
        if not check_mode:
            _write(os.path.join(bundle_dir, 'keks', name), data, mode)
    return changed


def _write(path, data, mode):
    try:
        byok_file.atomic_write(path, data, mode=mode)
    except (IOError, OSError) as exc:
        raise BundleError('cannot write %s into the bundle: %s; check byok_bundle_dir' % (path, exc.strerror or exc))


def read_kek(bundle_dir, vault):
    """Stage 2: (keks/VAULT.json as a dict, keks/VAULT.pem bytes) from the bundle, each folder checked."""
    try:
        doc = json.loads(read_file(bundle_dir, 'keks', '%s.json' % vault).decode('utf-8'))
        pem = read_file(bundle_dir, 'keks', '%s.pem' % vault)
    except owned_dir.UnsafeDirectory as exc:
        if not exc.missing:
            raise BundleError(unsafe_message(exc, bundle_dir))
        raise BundleError('the bundle holds no KEK of vault %s (keks/%s.pem and .json): run stage 1 with an inventory whose '
                          'keys go to vault %s' % (vault, vault, vault))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: JSON nested beyond Python's limit
        raise BundleError('keks/%s.json in the bundle is damaged (%s): run stage 1 again' % (vault, exc))
    if not isinstance(doc, dict) or not doc.get('kid'):
        raise BundleError('keks/%s.json in the bundle names no KEK kid: run stage 1 again' % vault)
    return doc, pem


def write_wrapped(bundle_dir, host, vault, name, content, meta):
    """Stage 2: wrapped/HOST/VAULT/NAME.byok (0600, atomic) and its metadata file; the SHA-256 of content, the .byok the
    HSM produced, once the file read back from the bundle is seen to hold exactly that (the seal vouches for what the HSM
    wrapped, never for what a medium or another process put in its place)."""
    relative = wrapped_dir(host, vault)
    path = os.path.join(bundle_dir, relative, '%s.byok' % name)
    _write(path, content, 0o600)
    _write(byok_file.sidecar_path(path), json.dumps(meta, indent=2, sort_keys=True).encode('utf-8') + b'\n', 0o600)
    written = hashlib.sha256(content).hexdigest()
    if file_sha256(bundle_dir, relative, '%s.byok' % name) != written:
        raise BundleError('%s read back from the bundle is not the .byok the HSM just wrapped: something changed it between '
                          'the write and the read (the medium, or another process of this user); nothing of this host was '
                          'sealed: write the bundle to a local folder only this user can write, then copy it to the medium'
                          % path)
    return written


def _case_of(records, vault, name):
    """The name the seal lists for name in vault when it is spelled otherwise (letter case), else None."""
    sealed = (records or {}).get((vault, name.lower())) or {}
    return sealed.get('name') if sealed.get('name') not in (None, name) else None


def _same_spec(record, entry):
    if record.get('key_type') != entry.get('key_type'):
        return False
    if entry.get('key_type') == 'EC':
        return record.get('curve') == entry.get('curve')
    return record.get('key_size') == entry.get('key_size')


def verify(bundle_dir, entries, digests, unauthenticated):
    """Stage 3: which plan entries may be imported, and under which HSM identity.

    Returns (results, refusal): one result per entry (the entry with ready, msg, hsm_fingerprint, byok_sha256, seal_digest,
    and for a ready one byok_content, the checked bytes as base64), and the message that stops every import (an
    authentication failure anywhere in the bundle) or None.
    """
    hosts = []
    for entry in entries:
        if entry['host'] not in hosts:
            hosts.append(entry['host'])
    results = []
    refusals = []
    digests = digests or {}
    for host in hosts:
        mine = [e for e in entries if e['host'] == host]
        records, found, message = None, None, None
        try:
            data = read_file(bundle_dir, wrapped_dir(host), SEAL_NAME)
        except owned_dir.UnsafeDirectory as exc:
            if not exc.missing:
                raise BundleError(unsafe_message(exc, bundle_dir))
            data = None
            if digests.get(host) not in (None, ''):
                # a digest given is checked whatever byok_airgap_unauthenticated says; without a seal it cannot be
                message = ('not done: the bundle holds no seal of HSM host %s (wrapped/%s/%s) although its digest was '
                           'given: the seal was removed from the bundle or not copied with it, or a later stage 2 run '
                           'for %s failed; copy the whole bundle as stage 2 left it, or run stage 2 for %s again and carry '
                           'its new digest' % (host, host, SEAL_NAME, host, host))
            elif not unauthenticated:
                message = ('not done: the bundle holds no seal of HSM host %s (wrapped/%s/%s): stage 2 did not finish for it; '
                           'run stage 2 for %s and carry its bundle digest' % (host, host, SEAL_NAME, host))
        if data is not None:
            found = digest(data)
            try:
                doc = json.loads(data.decode('utf-8'))
                if doc.get('schema') != SEAL_SCHEMA or doc.get('host') != host or not isinstance(doc.get('keys'), list):
                    raise ValueError('not a seal of this host')
                records = dict(((r['vault'], r['name'].lower()), r) for r in doc['keys'])
            except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, RecursionError) as exc:
                records = None
                message = 'the seal of HSM host %s (wrapped/%s/%s) is damaged (%s)' % (host, host, SEAL_NAME, exc)
                refusals.append(message)
            given = digests.get(host)
            # a digest that is given is always checked, byok_airgap_unauthenticated or not
            if records is not None and (not unauthenticated or given not in (None, '')):
                wanted = normalize_digest(given)
                if given in (None, ''):  # the bundle's own digest is never shown: it is the value a forger wants typed
                    message = ('byok_expected_bundle_digests.%s is not given: give the bundle digest stage 2 printed for %s '
                               '(read off its screen, carried out of band, never taken from the bundle)' % (host, host))
                    refusals.append(message)
                elif wanted is None:
                    message = ('byok_expected_bundle_digests.%s %r is not a bundle digest (32 hex digits, as stage 2 printed '
                               'it); give the digest stage 2 printed for %s' % (host, given, host))
                    refusals.append(message)
                elif wanted != found.replace('-', ''):
                    message = ('the seal of HSM host %s in the bundle does not have the digest %s given in '
                               'byok_expected_bundle_digests.%s: the bundle was altered after stage 2 (or the digest is of '
                               'another run); run stage 2 for %s again and carry its new digest' % (host, given, host, host))
                    refusals.append(message)
        # authenticated: the seal has the digest carried out of band (else byok_airgap_unauthenticated took it as it is)
        checked = records is not None and message is None and normalize_digest(digests.get(host)) is not None
        for entry in mine:
            result = _verify_entry(bundle_dir, entry, records, found, message, unauthenticated)
            result['authenticated'] = checked
            if result.pop('tampered', False):
                refusals.append(result['msg'])
            results.append(result)
    refusal = None
    if refusals:
        refusal = 'nothing was imported (the air gap is not authenticated): %s' % ' | '.join(refusals)
        for r in results:
            own = r['msg'] if r['msg'] in refusals else ' | '.join(refusals)
            r.update(ready=False, msg='nothing was imported (the air gap is not authenticated): %s' % own)
    for r in results:
        if not r['ready']:
            r.pop('byok_content', None)
    return results, refusal


def _verify_entry(bundle_dir, entry, records, found, message, unauthenticated):
    host, vault, name = entry['host'], entry['vault'], entry['name']
    out = dict(entry, ready=False, msg=message, hsm_fingerprint=None, byok_sha256=None, seal_digest=found)
    if message:
        return out
    where = wrapped_file(host, vault, name)
    try:
        data = read_file(bundle_dir, wrapped_dir(host, vault), '%s.byok' % name)
        sha = hashlib.sha256(data).hexdigest()
    except owned_dir.UnsafeDirectory as exc:
        if not exc.missing:
            # a link or a file of another user where stage 2 wrote a regular file: the bundle was altered; this key's
            # refusal stops every import, and the report still says so for each key
            out.update(msg='%s in the bundle: %s; run stage 2 for %s again and carry its new digest' % (where, exc, host),
                       tampered=True)
            return out
        case = _case_of(records, vault, name)
        out['msg'] = ('not done: %s is missing from the bundle; run stage 2 for %s and carry its new bundle digest' % (where, host)
                      if case is None else
                      'not done: stage 2 wrapped this key as %s, and the inventory names it %s: give byok_keys the name stage 2 '
                      'had (%s), or run stage 2 again with this inventory' % (wrapped_file(host, vault, case), name, case))
        return out
    out['byok_sha256'] = sha
    # the import gets these very bytes (byok_content), not the file's name: nothing can swap it after this check
    out['byok_content'] = base64.b64encode(data).decode('ascii')
    if records is None:  # unauthenticated, no seal: the sidecar's word, as the opt-in says
        meta = byok_file.read_sidecar(os.path.join(bundle_dir, where)) or {}
        out.update(ready=bool(meta.get('fingerprint')), hsm_fingerprint=meta.get('fingerprint'),
                   msg=None if meta.get('fingerprint') else 'not done: %s has no metadata file to take an identity from' % where)
        return out
    record = records.get((vault, name.lower()))
    if record is None:
        out['msg'] = ('not done: the seal of %s does not list %s (stage 2 ran with another inventory); run stage 2 for %s '
                      'again and carry its new digest' % (host, where, host))
    elif record.get('byok_sha256') != sha:
        out['msg'] = ('%s has SHA-256 %s, not the %s its seal records: the file was replaced after stage 2; run stage 2 '
                      'for %s again' % (where, sha, record.get('byok_sha256'), host))
        out['tampered'] = True
    elif not _same_spec(record, entry):
        sealed = '%s (%s)' % (record.get('key_type'), record.get('curve') or record.get('key_size'))
        wanted = '%s (%s)' % (entry.get('key_type'), entry.get('curve') or entry.get('key_size'))
        out['msg'] = ('%s holds an HSM key of type %s, not the %s the inventory gives; wrap it again (stage 2) with the same '
                      'inventory' % (where, sealed, wanted))
    elif record.get('label') is not None and record['label'] != entry.get('label'):
        # a seal written before labels were sealed has none: the inventory's label is then all there is
        out['msg'] = ('%s holds HSM key %s, not the %s the inventory gives; wrap it again (stage 2) with the same inventory'
                      % (where, record['label'], entry.get('label')))
    elif not record.get('identity'):
        out['msg'] = ('not done: stage 2 could not read an identity (fingerprint or KCV) of the HSM key of %s, so the vault '
                      'key could not be confirmed after the import' % where)
    elif not ki.is_identity(record['identity']):
        # a 3-byte KCV, as an earlier release sealed it: it identifies nothing (another AES key matches it in seconds)
        out['msg'] = ('not done: the seal gives the HSM key of %s as %s, which identifies no key (a 3-byte KCV sealed by an '
                      'earlier release of the collection); run stage 2 for %s again and carry its new digest'
                      % (where, record['identity'], host))
    else:
        out.update(ready=True, msg=None, hsm_fingerprint=record['identity'], **dict((f, record.get(f)) for f in SEALED_FACTS))
    return out


# -- byok_wrap items writing into a folder (the generic procedure) or a transfer bundle (the staged wrap) ---------------
def wrap_files(keys, directory, name_field='label'):
    """byok_wrap keys[] items writing each key's .byok into a directory: DIRECTORY/<name>.byok (label, id kept)."""
    items = []
    for key in keys or []:
        item = {'label': key['label'], 'dest': '%s/%s.byok' % (directory.rstrip('/'), key[name_field])}
        if key.get('id'):
            item['id'] = key['id']
        items.append(item)
    return items


def bundle_items(host_plan, vault, bundle_dir):
    """byok_wrap keys[] items for the keys of a host that go to one vault, each with its .byok path in a transfer bundle."""
    keys = [e for e in host_plan.get('keys') or [] if e['vault'] == vault]
    return wrap_files([dict(e, bundle_name=e['bundle_file'][:-len('.byok')]) for e in keys], bundle_dir, 'bundle_name')
