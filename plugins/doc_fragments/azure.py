# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Options shared by the modules that talk to Azure Key Vault; names follow azure.azcollection.
    DOCUMENTATION = r'''
options:
  vault_url:
    description:
      - URI of the Key Vault Premium vault (C(https://NAME.vault.azure.net)) or Managed HSM (C(https://NAME.managedhsm.azure.net)).
    type: str
    required: true
  vault_type:
    description:
      - Kind of vault. V(auto) reads it from the DNS suffix of O(vault_url) (C(.vault.) or C(.managedhsm.)).
      - Only Managed HSM accepts oct (AES) keys; knowing the vault type lets the collection refuse them before any HSM work.
    type: str
    default: auto
    choices: [auto, premium, managed_hsm]
  auth_source:
    description:
      - Where the Azure credentials come from, as in azure.azcollection.
      - V(auto) uses O(client_id)/O(tenant) with O(secret) or O(x509_certificate_path) when given, then the environment,
        then C(~/.azure/credentials), then the Azure CLI login, then a managed identity.
      - V(env) reads E(AZURE_CLIENT_ID), E(AZURE_SECRET) and E(AZURE_TENANT) (what AWX's Azure Resource Manager credential
        injects) or azure-identity's E(AZURE_CLIENT_SECRET) and E(AZURE_TENANT_ID); for a certificate credential
        E(AZURE_CLIENT_CERTIFICATE_PATH) (or E(AZURE_X509_CERTIFICATE_PATH)) instead of the secret, with
        E(AZURE_CLIENT_CERTIFICATE_PASSWORD) and E(AZURE_THUMBPRINT) when needed. A secret or certificate given as option
        takes precedence over the one in the environment.
      - V(credential_file) reads the O(profile) section of C(~/.azure/credentials) (or E(AZURE_CREDENTIAL_FILE)), with
        C(client_id), C(tenant) and C(secret) or C(x509_certificate_path) (with C(thumbprint)).
      - One source gives either a client secret or a certificate; giving both is refused.
      - There is no user name/password sign-in (azure.azcollection's C(ad_user)/C(password)) and no ADFS authority; see
        the authentication guide of the collection.
      - V(cli) uses the Azure CLI login (C(az login)); V(msi) a managed identity (O(client_id) chooses a user-assigned one).
      - The environment variable E(ANSIBLE_AZURE_AUTH_SOURCE) sets it too.
    type: str
    default: auto
    choices: [auto, cli, env, credential_file, msi]
  client_id:
    description:
      - Application (client) id of the service principal, or of a user-assigned managed identity with O(auth_source=msi).
    type: str
  secret:
    description:
      - Client secret of the service principal.
    type: str
  x509_certificate_path:
    description:
      - Certificate credential of the service principal instead of O(secret) (certificate-based authentication, for
        organisations that forbid client secrets).
      - Path to a PEM file holding the RSA private key and the certificate (C(cat key.pem cert.pem)), or to a PKCS#12
        (C(.pfx)) file. The public certificate must be uploaded to the application registration (Certificates & secrets).
      - The same as azure.azcollection's option; E(AZURE_CLIENT_CERTIFICATE_PATH) with O(auth_source=env).
    type: path
  thumbprint:
    description:
      - SHA-1 thumbprint (hex, as the Azure portal shows it) of the certificate in O(x509_certificate_path).
      - Optional; when given, it must match the certificate, which is checked before signing in (a guard against a
        wrong file). The same as azure.azcollection's option.
    type: str
  x509_certificate_password:
    description:
      - Password of an encrypted private key (PEM) or of a PKCS#12 file in O(x509_certificate_path).
      - E(AZURE_CLIENT_CERTIFICATE_PASSWORD) with O(auth_source=env).
    type: str
  tenant:
    description:
      - Microsoft Entra tenant (directory) id.
    type: str
  profile:
    description:
      - Section of the credential file to use with O(auth_source=credential_file) (default C(default), or E(AZURE_PROFILE)).
    type: str
  cloud_environment:
    description:
      - Azure cloud to authenticate against - V(AzureCloud), V(AzureChinaCloud), V(AzureUSGovernment) - or the C(https://)
        URL of the authority host of a private cloud (Azure Stack Hub, a lab), for which instance discovery is turned off.
      - The environment variable E(AZURE_CLOUD_ENVIRONMENT) sets it too.
    type: str
    default: AzureCloud
  ca_bundle:
    description:
      - CA certificates (PEM file) to trust for TLS to the vault and the authority, for example behind a TLS-inspecting proxy.
      - When not set, the system trust store (or E(REQUESTS_CA_BUNDLE)) is used.
    type: path
  verify_challenge_resource:
    description:
      - Check that the resource the vault names in its authentication challenge belongs to the domain of O(vault_url)
        (the SDK's protection against sending a token to the wrong host).
      - Turn it off only for a vault reached through a name outside its own domain, such as a private endpoint alias.
    type: bool
    default: true
  import_confirm_timeout:
    description:
      - Seconds to keep asking the vault whether an import whose answer was lost (connection reset, 5xx, 429) created
        the key version, honouring Retry-After, before giving up.
      - When the vault cannot say in time, the key is reported with an outcome unknown message that says to re-run
        to confirm, not as failed, since it may be in the vault; a re-run imports nothing when it is.
      - Only modules that import keys use it.
    type: int
    default: 120
  pacing:
    description:
      - Keep this module's requests to the vault under Azure's published service limits, counted per vault in
        10-second windows and weighted by key type - for Key Vault 10 HSM-key CREATE transactions (a BYOK import is
        one) and, for all other transactions, 2000 (RSA-2048, EC), 500 (RSA-3072) or 250 (RSA-4096); for a Managed HSM
        1 create or import, 10 deletes, purges or recovers and 1100 other operations per second - using O(pacing_share)
        of each budget, so that parallel imports (the C(parallel) option of M(byok.keyvault.keyvault_import)) are not
        answered with 429.
      - A request counts from when it is sent until a window after its answer came (the vault counts it somewhere in
        between), so a module run alone on the vault stays under each limit in every window, whatever the latency.
      - A 429 that comes nevertheless (other clients of the vault, the subscription-wide ceiling of five times the
        vault limits) holds back the following requests for its Retry-After, and is retried as before.
      - The budgets are per module run; forks that call the module at the same time on one vault each have their own.
    type: bool
    default: true
  pacing_share:
    version_added: 2.0.0
    description:
      - Share of each service limit of O(pacing) this module run may use, more than 0 and at most 1.
      - V(1) uses Azure's numbers in full, which a run alone on the vault may. Lower it when other clients use the vault at
        the same time (another job, an application, a second slice of a sliced job template), for example V(0.5) for two
        runs that import into one vault at once, so that together they stay under the limits.
    type: float
    default: 1.0
  pacing_window:
    description:
      - Length in seconds of the windows in which the vault counts requests for O(pacing). Azure counts in
        10-second windows; a smaller value only makes sense against a test vault that shrinks its windows (the lab's
        time scale).
    type: float
    default: 10.0
  lock_timeout:
    description:
      - How long, in seconds, to wait for the per-host lock of a vault key that another run on this controller holds
        (it checks and imports the same key), before giving up with a message naming that lock and, when known, its
        holder's pid, host and start time.
      - The lock folder C($TMPDIR/byok-keyvault-locks-<uid>) has to be owned by the running user and mode 0700; one
        created by someone else or replaced by a symbolic link is refused, as are lock files that are links.
    type: int
    default: 300
  allow_unsupported_clouds:
    description:
      - Microsoft does not offer BYOK in Azure China 21Vianet (vaults C(*.vault.azure.cn) and C(*.managedhsm.azure.cn), or
        O(cloud_environment=AzureChinaCloud)); such a vault is refused before any credential is used or request is sent,
        with a message that names the vault.
      - Set V(true) only if Microsoft's BYOK documentation lists that cloud by the time you read this; the refusal is then
        skipped and the vault decides. Azure US Government offers BYOK and is never refused.
      - The byok.keyvault.transfer role takes it as C(byok_azure.allow_unsupported_clouds).
    type: bool
    default: false
author:
  - byok.keyvault contributors (@byok-keyvault)
requirements:
  - azure-keyvault-keys >= 4.8
  - azure-identity >= 1.15
  - cryptography
notes:
  - Throttling (429, honouring Retry-After), 5xx answers and connection errors are retried a bounded number of times;
    an import is never resent before the vault was checked for the key it would create.
  - Requests are paced under the vault's service limits (O(pacing)), so that a vault used by the collection alone
    answers (almost) no 429.
'''
