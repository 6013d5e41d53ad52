# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Azure side's options as data, written once: the options every Azure module shares (azure_argument_spec, with the
defaults it names) and byok_vault_step's own (vault_step_argument_spec).  No SDK: KeyVaultModule builds its modules from
them, and byok_vault_step's action plugin checks a task's arguments against the same spec on the controller, where the
Azure SDK need not be installed.  azure_auth, azure_pacing and vault_client use the defaults; keyvault.py re-exports
them for the modules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback

from ansible_collections.byok.keyvault.plugins.module_utils import host_lock
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import VAULT_KIND_CHOICES

#: where the credential comes from (auth_source): the names azure.azcollection uses
AUTH_SOURCES = ('auto', 'cli', 'env', 'credential_file', 'msi')
#: Azure's service limits are counted in windows of this many seconds (pacing_window)
PACING_WINDOW = 10.0
#: share of each budget the collection uses by default (pacing_share): all of it.  A request counts from when it is sent
#: until a window after its answer (the vault counts it somewhere in between), the challenge request included, so a
#: client alone on the vault cannot exceed a limit in any window the vault counts in; a smaller share leaves room for
#: other clients of the vault
PACING_SHARE = 1.0
#: seconds to keep asking the vault whether an import whose answer was lost landed (import_confirm_timeout)
IMPORT_CONFIRM_SECONDS = 120
#: the steps of byok_vault_step
VAULT_STEPS = ('read', 'kek', 'import', 'audit')


def azure_argument_spec():
    """Options every Azure-side module shares (documented in the byok.keyvault.azure doc fragment)."""
    return dict(
        vault_url=dict(type='str', required=True),
        vault_type=dict(type='str', default='auto', choices=list(VAULT_KIND_CHOICES)),
        auth_source=dict(type='str', default='auto', choices=list(AUTH_SOURCES),
                         fallback=(env_fallback, ['ANSIBLE_AZURE_AUTH_SOURCE'])),
        client_id=dict(type='str', no_log=False),
        secret=dict(type='str', no_log=True),
        x509_certificate_path=dict(type='path'),
        thumbprint=dict(type='str', no_log=False),
        x509_certificate_password=dict(type='str', no_log=True),
        tenant=dict(type='str'),
        profile=dict(type='str'),
        cloud_environment=dict(type='str', default='AzureCloud', fallback=(env_fallback, ['AZURE_CLOUD_ENVIRONMENT'])),
        ca_bundle=dict(type='path'),
        verify_challenge_resource=dict(type='bool', default=True),
        lock_timeout=dict(type='int', default=host_lock.DEFAULT_TIMEOUT),
        import_confirm_timeout=dict(type='int', default=IMPORT_CONFIRM_SECONDS),
        allow_unsupported_clouds=dict(type='bool', default=False),
        pacing=dict(type='bool', default=True),
        pacing_window=dict(type='float', default=PACING_WINDOW),
        pacing_share=dict(type='float', default=PACING_SHARE),
    )


def vault_step_argument_spec():
    """byok_vault_step's own options (merged over azure_argument_spec's: its vault_url is not required)."""
    # the bundle's option, of the staged flow (imported here: the Azure options themselves need nothing of it)
    from ansible_collections.byok.keyvault.plugins.module_utils import bundle
    return dict(
        vault_url=dict(type='str'),
        step=dict(type='str', required=True, choices=list(VAULT_STEPS)),
        records=dict(type='list', elements='dict', required=True, no_log=False),
        parallel=dict(type='int', default=8),
        import_parallel=dict(type='int', default=4),
        delete_keks=dict(type='bool', default=False),
        purge=dict(type='bool', default=False),
        list_unlisted=dict(type='bool', default=True),
        bundle=bundle.option_spec(),
    )
