# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vault-side procedures behind byok_kek_fetch, keyvault_import and keyvault_key_info.

Decisions (is this key a usable KEK, does the vault already hold the HSM key) are pure functions
over key summaries; the procedures take a keyvault.Vault.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.byok.keyvault.plugins.module_utils import byok_file
from ansible_collections.byok.keyvault.plugins.module_utils import decisions
from ansible_collections.byok.keyvault.plugins.module_utils import host_lock
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils.attributes import KCV_TAG
from ansible_collections.byok.keyvault.plugins.module_utils.keyvault import DEFAULT_KEY_OPS, KeyVaultError, key_summary


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
        tag = (key.properties.tags or {}).get(KCV_TAG)
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


def import_key(vault, name, byok_path, spec, key_ops, expected, force, attributes, tags, check_mode, verify_signature=False,
               byok_data=None):
    """Import a .byok into the vault unless its current version is already the HSM key; returns a result dict.

    The check and the import happen under a lock per vault key on this host, so two runs here cannot
    both find the key missing and import it twice.
    """
    byok_file.validate_key_name(name)
    with host_lock.exclusive('vault-key', vault.target.lock_key, name.lower(), error=KeyVaultError):
        return _import_key(vault, name, byok_path, spec, key_ops, expected, force, attributes, tags, check_mode, verify_signature,
                           byok_data)


def _import_key(vault, name, byok_path, spec, key_ops, expected, force, attributes, tags, check_mode, verify_signature,
                byok_data):
    current = vault.get(name)
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
                            '(byok_kek_fetch with vault_url %s)' % (byok_path, kek_vault, vault.url, vault.url))
    jwk = {'kty': ki.AZURE_KTY[spec['key_type']], 'key_ops': key_ops or DEFAULT_KEY_OPS[spec['key_type']]}
    if spec['key_type'] == 'EC':
        jwk['crv'] = spec['curve']
    tags = dict(tags or {})
    if ki.identified_by_kcv(spec['key_type']) and expected:
        tags[KCV_TAG] = expected

    def is_ours(key):
        # Without an expected identity there is nothing to compare: a version that appeared after a failed PUT
        # under this host's lock is taken as this import's (the PUT was this run's only write to the key).
        if not expected:
            return True
        return decisions.same_identity(vault_identity(vault, key, spec['key_type'], spec['key_size']), expected)

    key, attempts = vault.import_once(name, jwk, data, is_ours, tags=tags, exists=current is not None, **attributes)
    identity, source = vault_identity_and_source(vault, key, spec['key_type'], spec['key_size'])
    if expected and not decisions.same_identity(identity, expected):
        raise KeyVaultError('vault key %s version %s does not match the HSM key after import (%s, expected %s); the blob was '
                            'wrapped from another key: check byok_file and expected_fingerprint'
                            % (name, key.properties.version, identity, expected))
    after = key_summary(key)
    result.update(changed=True, key=after, version=after['version'], kid=after['kid'], fingerprint=identity, identity_source=source,
                  attempts=attempts)
    if verify_signature:
        result['proof'] = prove(vault, key, spec)
    return result
