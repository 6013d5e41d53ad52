# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Azure side's module base: KeyVaultModule (the Azure options, one Vault per run, the fan-out over keys and vaults).

The Azure side is one file per concern, each the one place for it:

- azure_auth.py: the options and the environment -> exactly one azure-identity credential;
- azure_pacing.py: the SDK pipeline's retries, pacing under Azure's service limits, Retry-After;
- azure_errors.py: KeyVaultError, and every azure-core / azure-identity exception mapped to a one-line message;
- vault_client.py: Vault, the Key Vault operations with the collection's semantics, and key summaries;
- this file: the options every Azure-side module shares and the module base its main() builds on.

A module imports this side or the PKCS#11 side (pkcs11_token.py), never both.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import concurrent.futures
import threading
import traceback

from ansible_collections.byok.keyvault.plugins.module_utils import azure_auth
from ansible_collections.byok.keyvault.plugins.module_utils import azure_errors
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import vault_client
from ansible_collections.byok.keyvault.plugins.module_utils import vault_target
from ansible_collections.byok.keyvault.plugins.module_utils.azure_auth import build_credential
from ansible_collections.byok.keyvault.plugins.module_utils.azure_errors import KeyVaultError, first_line
from ansible_collections.byok.keyvault.plugins.module_utils.azure_options import azure_argument_spec
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError
from ansible_collections.byok.keyvault.plugins.module_utils.module_base import ByokModule, failed_result, repeated
from ansible_collections.byok.keyvault.plugins.module_utils.vault_client import Vault
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import VAULT_KIND_CHOICES, VaultTarget

#: the first failed import of the Azure SDK (azure-core, azure-identity, azure-keyvault-keys), or None
_SDK_IMPORT_ERRORS = (azure_errors.AZURE_CORE_IMPORT_ERROR, azure_auth.AZURE_IDENTITY_IMPORT_ERROR, vault_client.KEYS_IMPORT_ERROR)
AZURE_IMPORT_ERROR = next((e for e in _SDK_IMPORT_ERRORS if e), None)

KEY_OPS_CHOICES = ki.KEY_OPS_CHOICES
MAX_PARALLEL = vault_target.MAX_PARALLEL
#: how many vaults of a module's vaults option are served at the same time
MAX_VAULTS = 16
#: how many Key Vault vaults are served at the same time: a subscription allows five times one vault's limits
SUBSCRIPTION_VAULTS = 5


def vaults_option(**item_options):
    """The vaults option of a module that serves several vaults in one run (documented in each such module)."""
    options = dict(name=dict(type='str'), vault_url=dict(type='str', required=True),
                   vault_type=dict(type='str', default='auto', choices=list(VAULT_KIND_CHOICES)))
    options.update(item_options)
    return dict(type='list', elements='dict', options=options)


class KeyVaultModule(ByokModule):
    """ByokModule with the Azure options merged in, the SDK import checked, and one Vault per run."""

    def __init__(self, argument_spec, **kwargs):
        self._vault = None
        libraries = [('azure-keyvault-keys and azure-identity', AZURE_IMPORT_ERROR), ('cryptography', ki.CRYPTOGRAPHY_IMPORT_ERROR)]
        super(KeyVaultModule, self).__init__(argument_spec, common=azure_argument_spec(), requirements=libraries, **kwargs)

    @property
    def vault(self):
        """The Vault of this run, built once (its URL checked, its credential resolved)."""
        if self._vault is None:
            self._vault = self.guard(Vault, self.params)
        return self._vault

    def check_parallel(self, what):
        """O(parallel), refused before any request when out of range (in the module's thread: never from a worker)."""
        parallel = self.params['parallel']
        if not vault_target.parallel_in_range(parallel):
            self.fail('parallel must be between 1 and %d (concurrent %s requests to the vault); got %d' % (MAX_PARALLEL, what, parallel))
        return parallel

    def check_import_parallel(self):
        """byok_vault_step's O(import_parallel), refused before any request when out of range."""
        if not vault_target.parallel_in_range(self.params['import_parallel']):
            self.fail('import_parallel is %d; give a number from 1 to %d (imports in flight to one vault)'
                      % (self.params['import_parallel'], MAX_PARALLEL))

    def run_keys_parallel(self, items, func, key_field, what):
        """run_keys() with up to O(parallel) vault requests in flight; results in the order of items."""
        parallel = self.check_parallel(what)  # in run_vaults' threads it was checked before they started: never fails there
        if not items:
            return []
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(parallel, len(items))) as pool:
            return list(pool.map(lambda item: self.run_keys([item], func, key_field)[0], items))

    def run_vaults(self, entries, func, what, items=None, writes=False):
        """func(vault, entry) for each entry of O(vaults), the vaults served at the same time (one thread per vault, up to
        MAX_VAULTS at once, each vault with its own pacing and up to O(parallel) requests in flight, all with one
        credential).  At most SUBSCRIPTION_VAULTS Key Vault vaults are served at once: Azure's subscription-wide limit
        is that many times a vault's, and the vaults of a run may share a subscription (Managed HSMs have their own).

        Returns one result per entry, in order, each with the entry's name and vault_url; a vault that cannot be set up
        (an unsupported cloud) gets failed and msg, and func's own ByokError the same; with items (the entry's field
        that lists its keys), such a result also has keys, each failed with that message.  Any other exception fails
        only its vault, its keys then with outcome_unknown when writes (some requests may have changed the vault).
        """
        self.check_parallel(what)
        if not entries:
            return []
        credential = self.guard(build_credential, self.params)
        key_vaults = threading.BoundedSemaphore(SUBSCRIPTION_VAULTS)

        def serve(entry):
            vault = Vault(dict(self.params, vault_url=entry['vault_url'], vault_type=entry.get('vault_type') or 'auto'),
                          credential)
            if vault.vault_type == 'managed_hsm':
                return func(vault, entry)
            with key_vaults:
                return func(vault, entry)

        def one(entry):
            label = entry.get('name') or entry['vault_url']
            try:
                result = serve(entry)
            except ByokError as exc:
                result = dict(self.failure_details(exc), failed=True, changed=False, msg=str(exc))
                if items:
                    result['keys'] = [failed_result(item, 'name', exc) for item in entry.get(items) or []]
            except Exception as exc:  # an SDK or library error no message maps: this vault only, said as it is
                error = KeyVaultError('unexpected %s while serving vault %s: %s%s' % (
                    type(exc).__name__, label, first_line(str(exc)),
                    '; some of its keys may have been imported: re-run to confirm' if writes else ''))
                error.outcome_unknown = writes
                result = dict(failed=True, changed=False, msg=str(error), exception=traceback.format_exc())
                if items:
                    result['keys'] = [failed_result(item, 'name', error) for item in entry.get(items) or []]
            result.update(name=label, vault_url=entry['vault_url'])
            return result

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(entries), MAX_VAULTS)) as pool:
            return list(pool.map(one, entries))

    def check_vaults(self, entries):
        """Refuse, before any request, a vaults list that names a vault twice or a name twice."""
        seen = {}
        for index, entry in enumerate(entries):
            target = self.guard(VaultTarget.parse, entry['vault_url'], entry.get('vault_type'),
                                option='vaults[%d].vault_url' % index)
            label = entry.get('name') or entry['vault_url']
            if target.lock_key in seen:
                self.fail('vaults lists vault %s twice (%s and %s); give each vault once, with all its keys'
                          % (target.url, seen[target.lock_key], label))
            seen[target.lock_key] = label
        twice = repeated(e.get('name') for e in entries if e.get('name'))
        if twice:
            self.fail('vaults uses the name %s twice; give each vault its own name' % ', '.join(twice))

    def failure_details(self, exc):
        """status_code and error_code of a KeyVaultError, for a failed result."""
        extra = {}
        if getattr(exc, 'status', None) is not None:
            extra['status_code'] = exc.status
        if getattr(exc, 'code', None):
            extra['error_code'] = exc.code
        return extra
