# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vault as the modules use it: Vault (Key Vault operations with the collection's semantics) and key summaries.

get returns None when the key is missing; the import PUT is never resent blindly: every import creates a key version, so
before a retry the vault is asked whether the key already landed.  SDK exceptions are mapped in azure_errors (explain).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time
import traceback

from ansible_collections.byok.keyvault.plugins.module_utils import azure_options
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import release_policy as skr
from ansible_collections.byok.keyvault.plugins.module_utils.azure_auth import build_credential
from ansible_collections.byok.keyvault.plugins.module_utils.azure_errors import ImportOutcomeUnknown, KeyVaultError, explain
from ansible_collections.byok.keyvault.plugins.module_utils.azure_errors import is_key_disabled, is_not_found, is_purge_protected
from ansible_collections.byok.keyvault.plugins.module_utils.azure_errors import is_retryable
from ansible_collections.byok.keyvault.plugins.module_utils.azure_errors import outcome_answer, purge_refused
from ansible_collections.byok.keyvault.plugins.module_utils.azure_pacing import client_kwargs, pacer_for, retry_after
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import VaultTarget, check_byok_cloud

KEYS_IMPORT_ERROR = None
try:
    from azure.keyvault.keys import JsonWebKey, KeyClient, KeyReleasePolicy
except ImportError:  # pragma: no cover - exercised on hosts without the SDK (KeyVaultModule fails first)
    KEYS_IMPORT_ERROR = traceback.format_exc()

IMPORT_ATTEMPTS = 4
#: seconds to keep asking for a name the vault is still deleting or purging (409 ObjectIsBeingDeleted)
NAME_RELEASE_SECONDS = 60
#: seconds to keep asking the vault whether an import whose answer was lost landed (import_confirm_timeout)
IMPORT_CONFIRM_SECONDS = azure_options.IMPORT_CONFIRM_SECONDS


class Vault(object):
    """Key Vault operations with the collection's semantics: get returns None when missing, import never duplicates."""

    def __init__(self, params, credential=None):
        """credential: (credential, auth) of build_credential() to share with other vaults of the run (one login)."""
        self.target = VaultTarget.parse(params['vault_url'], params.get('vault_type'))
        self.url = self.target.url
        # before any credential or request: Microsoft does not offer BYOK in some clouds (data in vault_target)
        if not params.get('allow_unsupported_clouds'):
            check_byok_cloud(self.target, params.get('cloud_environment'))
        self.vault_type = self.target.kind
        # auth says where the identity came from (for messages); the secret stays inside the credential only
        self.credential, self.auth = credential or build_credential(params)
        self.pacer = pacer_for(params, self.vault_type)
        self.client_kwargs = client_kwargs(params, self.pacer)
        self.client = KeyClient(self.url, self.credential, **self.client_kwargs)
        confirm = params.get('import_confirm_timeout')
        self.confirm_seconds = IMPORT_CONFIRM_SECONDS if confirm is None else confirm
        if self.confirm_seconds < 0:
            raise KeyVaultError('import_confirm_timeout is %s; give the seconds to keep asking the vault whether an import '
                                'whose answer was lost landed (0 or more, default %d)' % (confirm, IMPORT_CONFIRM_SECONDS))

    def _call(self, action, permission, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # azure-core/identity raise many types; explain() maps them in one place
            raise explain(exc, action, self.url, permission, self.auth)

    def get(self, name, version=None, **kwargs):
        """The KeyVaultKey, or None when the vault has no such key."""
        try:
            return self.client.get_key(name, version=version, **kwargs)
        except Exception as exc:  # mapped below
            if is_not_found(exc):
                return None
            raise explain(exc, 'get of key %s' % name, self.url, 'get', self.auth)

    def current(self, name):
        """The current version of a key: its KeyVaultKey, a DisabledVersion when the vault will not read it (a disabled
        version answers 403 KeyDisabled; its versions list still shows it), or None when the vault has no such key."""
        try:
            return self.client.get_key(name)
        except Exception as exc:  # mapped below
            if is_not_found(exc):
                return None
            if not is_key_disabled(exc):
                raise explain(exc, 'get of key %s' % name, self.url, 'get', self.auth)
        versions = self.versions(name)
        return DisabledVersion(versions[-1]) if versions else None

    def update(self, name, version, **fields):
        """Update Key: change the attributes, tags, operations or release policy of one version in place (no new
        version); release_policy as the records hold it ({policy, immutable})."""
        if 'release_policy' in fields:
            fields['release_policy'] = policy_model(fields['release_policy'])
        try:
            return self._call('update of key %s' % name, 'update', self.client.update_key_properties, name, version, **fields)
        except KeyVaultError as exc:
            if exc.status is None:  # no answer came (a connection lost): the vault may have applied it
                exc.outcome_unknown = True
            raise

    def versions(self, name, **kwargs):
        """All versions' properties of a key (oldest first), [] when missing."""
        try:
            props = list(self.client.list_properties_of_key_versions(name, **kwargs))
        except Exception as exc:  # mapped below
            if is_not_found(exc):
                return []
            raise explain(exc, 'listing versions of key %s' % name, self.url, 'list', self.auth)
        return sorted(props, key=lambda p: (p.created_on or 0, p.version or ''))

    def create_kek(self, name, size, expires_on=None):
        """Create the KEK; while the vault is still deleting or purging a key of that name (409 ObjectIsBeingDeleted,
        Azure's deletes and purges run in the background) ask again, for up to NAME_RELEASE_SECONDS."""
        deadline = time.monotonic() + NAME_RELEASE_SECONDS
        pause = 0.5
        while True:
            try:
                return self._call('creation of KEK %s' % name, 'create', self.client.create_rsa_key, name, size=size,
                                  hardware_protected=True, key_operations=['import'], expires_on=expires_on)
            except KeyVaultError as exc:
                if exc.code != 'ObjectIsBeingDeleted' or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 8)

    def list_keys(self):
        """The properties of every key of the vault (its current versions; no key material)."""
        return self._call('listing of the keys', 'list', lambda: list(self.client.list_properties_of_keys()))

    def get_deleted(self, name):
        """The soft-deleted key of that name (DeletedKey), or None."""
        try:
            return self.client.get_deleted_key(name)
        except Exception as exc:  # mapped below
            if is_not_found(exc):
                return None
            raise explain(exc, 'get of deleted key %s' % name, self.url, 'get', self.auth)

    def recover(self, name):
        """Recover a soft-deleted key and wait until the vault serves it again; the KeyVaultKey."""
        poller = self._call('recovery of deleted key %s' % name, 'recover', self.client.begin_recover_deleted_key, name)
        self._call('waiting for the recovery of key %s' % name, 'recover', poller.wait)
        return poller.result()

    def delete(self, name, purge=False):
        """Delete a key (soft delete), and purge it when asked.

        A dict: deleted (False when the vault has no such key), purged, and purge_refused (why the vault cannot purge:
        purge protection, which keeps a deleted key until scheduled_purge_date) - a refused purge is not a failure.
        """
        out = {'deleted': False, 'purged': False, 'purge_refused': None, 'scheduled_purge_date': None}
        try:
            poller = self.client.begin_delete_key(name)
        except Exception as exc:  # mapped below
            if is_not_found(exc):
                return out
            raise explain(exc, 'deletion of key %s' % name, self.url, 'delete', self.auth)
        out['deleted'] = True
        deleted = poller.result()
        when = getattr(deleted, 'scheduled_purge_date', None)
        out['scheduled_purge_date'] = when.isoformat() if when else None
        if not purge:
            return out
        level = getattr(getattr(deleted, 'properties', None), 'recovery_level', None) or ''
        if level and 'Purgeable' not in level:
            out['purge_refused'] = purge_refused(name, self.url, level, out['scheduled_purge_date'])
            return out
        self._call('waiting for the deletion of key %s' % name, 'delete', poller.wait)
        try:
            self.client.purge_deleted_key(name)
        except Exception as exc:  # mapped below
            if is_purge_protected(exc):
                out['purge_refused'] = purge_refused(name, self.url, 'purge protection', out['scheduled_purge_date'])
                return out
            raise explain(exc, 'purge of key %s' % name, self.url, 'purge', self.auth)
        out['purged'] = True
        return out

    def sign_and_verify(self, key):
        """Proof of possession: the vault signs a random digest with the key; verified here with its public key."""
        import hashlib
        from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
        summary = key_summary(key)
        public = ki.public_key_from_jwk({'kty': summary['kty'], 'n': key.key.n, 'e': key.key.e, 'crv': summary.get('curve'),
                                         'x': key.key.x, 'y': key.key.y})
        if ki.normalize_key_type(summary['kty']) == 'RSA':
            alg, hash_name = SignatureAlgorithm.rs256, 'sha256'
        else:
            alg, hash_name = {'P-256': (SignatureAlgorithm.es256, 'sha256'), 'P-384': (SignatureAlgorithm.es384, 'sha384'),
                              'P-521': (SignatureAlgorithm.es512, 'sha512'),
                              'P-256K': (SignatureAlgorithm.es256_k, 'sha256')}[summary['curve']]
        digest = hashlib.new(hash_name, os.urandom(32)).digest()
        crypto = CryptographyClient(key, self.credential, **self.client_kwargs)
        result = self._call('the signature with key %s' % key.name, 'sign', crypto.sign, alg, digest)
        if not ki.signature_verifies(public, digest, result.signature):
            raise KeyVaultError('the signature made by vault key %s does not verify with its public key; the vault does not '
                                'hold the private key of the HSM key' % key.id)
        return alg.value if hasattr(alg, 'value') else str(alg)

    def import_once(self, name, jwk_fields, byok_bytes, is_ours, enabled=True, not_before=None, expires_on=None, tags=None,
                    exists=True, exportable=False, release_policy=None):
        """Import a BYOK blob as one new version, at most once.

        The PUT goes out without SDK retries.  After a retryable failure the vault is asked whether a
        version for which is_ours(key) is true appeared since; that confirmation is bounded by time
        (import_confirm_timeout, honouring Retry-After), not by a number of attempts.  Only when the
        vault says no version landed is the PUT sent again.  When the vault cannot say in time, the
        outcome is unknown: ImportOutcomeUnknown, never a failure, since the key may be in the vault.
        Returns (KeyVaultKey, attempts).  exists=False (the caller has just seen that the key has no
        current version) saves listing the versions before the PUT: there are none.  exportable and release_policy
        ({policy, immutable}) make an exportable key (Secure Key Release); left out of the request otherwise.
        """
        protection = {'exportable': True, 'release_policy': policy_model(release_policy)} if exportable else {}
        before = set(p.version for p in self.versions(name)) if exists else set()
        jwk = JsonWebKey(t=byok_bytes, **jwk_fields)
        last = None
        for attempt in range(1, IMPORT_ATTEMPTS + 1):
            try:
                key = self.client.import_key(name, jwk, hardware_protected=True, enabled=enabled, not_before=not_before,
                                             expires_on=expires_on, tags=tags, retry_total=0, **protection)
                return key, attempt
            except Exception as exc:  # mapped below
                last = explain(exc, 'import of key %s' % name, self.url, 'import', self.auth)
                hint = retry_after(exc)
            if not is_retryable(last):
                raise last
            key = self._confirm_import(name, before, is_ours, last)
            if key is not None:
                return key, attempt
            if attempt < IMPORT_ATTEMPTS:
                time.sleep(min(hint if hint is not None else 2 ** attempt, 30))
        raise last

    def _confirm_import(self, name, before, is_ours, cause):
        """After a failed PUT: the version of ours that landed, or None when the vault says none did.

        Asks until the vault answers or import_confirm_timeout has passed (then ImportOutcomeUnknown).
        """
        deadline = time.monotonic() + self.confirm_seconds
        pause = 1.0
        while True:
            try:
                landed = [p for p in self.versions(name, retry_total=0) if p.version not in before]
                found = None
                for prop in landed:
                    key = self.get(name, prop.version, retry_total=0)
                    if key is not None and is_ours(key):
                        found = key
                        break
            except KeyVaultError as exc:
                if not is_retryable(exc):
                    raise ImportOutcomeUnknown(
                        'import of key %s in %s: outcome unknown: the import got no answer (%s) and the vault refused to say '
                        'whether it landed (%s); the key may be in the vault: re-run to confirm (a re-run imports nothing '
                        'when the key landed)' % (name, self.url, outcome_answer(cause), outcome_answer(exc)), status=exc.status)
                wait = retry_after(exc.__cause__ or exc.__context__) if (exc.__cause__ or exc.__context__) else None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ImportOutcomeUnknown(
                        'import of key %s in %s: outcome unknown: the import got no answer (%s) and the vault could not be '
                        'asked within import_confirm_timeout (%s s; last answer: %s); the key may be in the vault: re-run to '
                        'confirm (a re-run imports nothing when the key landed)'
                        % (name, self.url, outcome_answer(cause), self.confirm_seconds, outcome_answer(exc)))
                time.sleep(max(0.0, min(wait if wait is not None else pause, remaining, 30)))
                pause = min(pause * 2, 10)
                continue
            if found is not None:
                return found
            if landed:
                raise KeyVaultError('import of key %s in %s: a new version appeared that is not the HSM key (another run '
                                    'imported at the same time?); inspect the versions of %s' % (name, self.url, name))
            return None

    def key_wrap(self, key, bits, value):
        """The vault's RFC 3394 key wrap of value with an oct-HSM key (A128KW/A192KW/A256KW), or None when not allowed.

        Asked of the vault itself (POST .../wrapkey through the client's pipeline): the SDK's CryptographyClient wraps
        with an oct key locally whenever it knows the key's JWK, and an oct-HSM key's JWK has no k, so that local wrap
        uses bytes that are not the key's."""
        from azure.core.rest import HttpRequest
        alg = {128: 'A128KW', 192: 'A192KW', 256: 'A256KW'}[bits]
        request = HttpRequest('POST', '/keys/%s/%s/wrapkey' % (key.name, key.properties.version),
                              params={'api-version': self.client.api_version},
                              json={'alg': alg, 'value': ki.b64url_encode(value)})
        try:
            response = self.client.send_request(request)
            response.raise_for_status()
            return ki.b64url_decode(response.json()['value'])
        except Exception:  # a key without the wrapKey op or permission wraps nothing
            return None

    def kcv(self, key, bits):
        """KCV of an oct-HSM key computed by the vault (AES-CBC, zero IV, one zero block), or None when not allowed."""
        from azure.keyvault.keys.crypto import CryptographyClient, EncryptionAlgorithm
        alg = EncryptionAlgorithm({128: 'A128CBC', 192: 'A192CBC', 256: 'A256CBC'}[bits])
        try:
            crypto = CryptographyClient(key, self.credential, **self.client_kwargs)
            result = crypto.encrypt(alg, b'\x00' * 16, iv=b'\x00' * 16)
        except Exception:  # a key without the encrypt op or permission has no vault-side KCV
            return None
        return ki.kcv_from_block(result.ciphertext)


def key_fingerprint(key):
    """Fingerprint of a vault key's public part (RSA/EC), or None (oct)."""
    jwk = key.key
    kty = getattr(jwk, 'kty', None)
    kty = getattr(kty, 'value', kty)
    fields = {'kty': kty, 'n': getattr(jwk, 'n', None), 'e': getattr(jwk, 'e', None),
              'crv': getattr(getattr(jwk, 'crv', None), 'value', getattr(jwk, 'crv', None)),
              'x': getattr(jwk, 'x', None), 'y': getattr(jwk, 'y', None)}
    public = ki.public_key_from_jwk(fields) if ki.normalize_key_type(kty) != 'oct' else None
    return ki.fingerprint(public) if public is not None else None


def policy_model(value):
    """The SDK's KeyReleasePolicy of a release policy as the records hold it ({policy, immutable}), or None."""
    if not value:
        return None
    return KeyReleasePolicy(skr.canonical(value['policy']), content_type=skr.CONTENT_TYPE, immutable=bool(value['immutable']))


def policy_summary(key):
    """A vault key's exportable state and release policy ({policy, immutable} or None), as the records compare them."""
    props = key.properties
    policy = getattr(props, 'release_policy', None)
    held = skr.held(policy.encoded_policy, policy.immutable) if policy is not None and policy.encoded_policy else None
    return {'exportable': bool(getattr(props, 'exportable', None)), 'release_policy': held}


class DisabledVersion(object):
    """The current version of a key that is disabled, as its versions list shows it (no key material, no operations)."""

    def __init__(self, properties):
        self.properties = properties


def disabled_summary(version):
    """Facts about a disabled current version, from its properties: what the vault still shows (no fingerprint)."""
    p = version.properties
    return {'kid': p.id, 'name': p.name, 'version': p.version, 'enabled': p.enabled, 'disabled': True, 'key_ops': None,
            'not_before': p.not_before.isoformat() if p.not_before else None,
            'expires_on': p.expires_on.isoformat() if p.expires_on else None,
            'created_on': p.created_on.isoformat() if p.created_on else None, 'tags': p.tags or {}, 'fingerprint': None}


def key_summary(key):
    """Facts about a vault key for results (no key material)."""
    jwk = key.key
    kty = getattr(jwk.kty, 'value', jwk.kty)
    ops = [getattr(o, 'value', o) for o in (jwk.key_ops or [])]
    d = {
        'kid': key.id,
        'name': key.name,
        'version': key.properties.version,
        'kty': kty,
        'key_ops': ops,
        'enabled': key.properties.enabled,
        'not_before': key.properties.not_before.isoformat() if key.properties.not_before else None,
        'expires_on': key.properties.expires_on.isoformat() if key.properties.expires_on else None,
        'tags': key.properties.tags or {},
        'created_on': key.properties.created_on.isoformat() if key.properties.created_on else None,
        'fingerprint': key_fingerprint(key),
    }
    d.update(policy_summary(key))
    if ki.normalize_key_type(kty) == 'RSA' and jwk.n:
        d['key_size'] = len(jwk.n.lstrip(b'\x00')) * 8 if isinstance(jwk.n, bytes) else None
    elif ki.normalize_key_type(kty) == 'EC':
        d['curve'] = getattr(jwk.crv, 'value', jwk.crv)
    return d
