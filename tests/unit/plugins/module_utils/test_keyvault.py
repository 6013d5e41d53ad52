# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Auth resolution and Azure error mapping (the one place Azure errors become messages)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from azure.core import exceptions as azexc

from ansible_collections.byok.keyvault.plugins.module_utils import attributes
from ansible_collections.byok.keyvault.plugins.module_utils import azure_auth
from ansible_collections.byok.keyvault.plugins.module_utils import azure_errors
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import VaultTarget, VaultUrlError

URL = 'https://contoso.vault.azure.net'


@pytest.fixture
def clean_env(monkeypatch):
    for name in ('AZURE_CLIENT_ID', 'AZURE_SECRET', 'AZURE_CLIENT_SECRET', 'AZURE_TENANT', 'AZURE_TENANT_ID',
                 'AZURE_CREDENTIAL_FILE', 'AZURE_PROFILE'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HOME', '/nonexistent')
    return monkeypatch


def test_auto_prefers_options_then_awx_env(clean_env):
    clean_env.setenv('AZURE_CLIENT_ID', 'env-id')
    clean_env.setenv('AZURE_SECRET', 'env-secret')
    clean_env.setenv('AZURE_TENANT', 'env-tenant')
    auth = azure_auth.resolve_auth({'auth_source': 'auto', 'client_id': 'opt-id', 'secret': 'opt-secret', 'tenant': None})
    assert (auth['source'], auth['client_id'], auth['tenant']) == ('options', 'opt-id', 'env-tenant')
    auth = azure_auth.resolve_auth({'auth_source': 'auto', 'client_id': None, 'secret': None, 'tenant': None})
    assert (auth['source'], auth['client_id'], auth['secret']) == ('env', 'env-id', 'env-secret')


def test_env_accepts_azure_identity_names(clean_env):
    clean_env.setenv('AZURE_CLIENT_ID', 'id')
    clean_env.setenv('AZURE_CLIENT_SECRET', 's')
    clean_env.setenv('AZURE_TENANT_ID', 't')
    auth = azure_auth.resolve_auth({'auth_source': 'env'})
    assert (auth['client_id'], auth['secret'], auth['tenant']) == ('id', 's', 't')


def test_env_without_variables_says_which(clean_env):
    with pytest.raises(azure_errors.KeyVaultError, match='AZURE_CLIENT_ID'):
        azure_auth.resolve_auth({'auth_source': 'env'})


def test_credential_file_profile(clean_env, tmp_path):
    f = tmp_path / 'credentials'
    f.write_text('[default]\nclient_id=a\nsecret=b\ntenant=c\n[other]\nclient_id=x\nsecret=y\ntenant=z\n')
    clean_env.setenv('AZURE_CREDENTIAL_FILE', str(f))
    assert azure_auth.resolve_auth({'auth_source': 'credential_file', 'profile': 'other'})['client_id'] == 'x'
    with pytest.raises(azure_errors.KeyVaultError, match='profile missing'):
        azure_auth.resolve_auth({'auth_source': 'credential_file', 'profile': 'missing'})


def test_authority():
    assert azure_auth.authority_for('AzureChinaCloud') == ('https://login.chinacloudapi.cn', False)
    assert azure_auth.authority_for('https://login.example.test/') == ('https://login.example.test', True)
    with pytest.raises(azure_errors.KeyVaultError, match='cloud_environment'):
        azure_auth.authority_for('Mars')


@pytest.mark.parametrize('url, needle', [
    ('http://contoso.vault.azure.net', 'not an https URL'),
    ('contoso.vault.azure.net', 'not an https URL'),
    ('https://contoso.vault.azure.net/keys/x', 'not a vault URI'),
])
def test_vault_url_checks(url, needle):
    with pytest.raises(VaultUrlError, match=needle):
        VaultTarget.parse(url)


class _Resp(object):
    def __init__(self, status, headers=None):
        self.status_code = status
        self.headers = headers or {}
        self.reason = 'x'

    def text(self):
        return ''


def http_error(status, code, message, cls=azexc.HttpResponseError):
    err = cls(message='(%s) %s' % (code, message), response=_Resp(status))
    err.status_code = status
    err.error = azexc.ODataV4Format({'code': code, 'message': message})
    return err


def test_403_names_permission_and_role():
    err = azure_errors.explain(http_error(403, 'Forbidden', 'no keys import permission'), 'import of key k', URL, 'import',
                               {'client_id': 'abc', 'source': 'env'})
    assert 'keys/import' in str(err) and 'Key Vault Crypto Officer' in str(err) and 'abc' in str(err)
    assert '\n' not in str(err)


@pytest.mark.parametrize('message', ['Operation sign is not allowed on a disabled key.',
                                     'Operation sign is not allowed: the key is not yet valid (nbf 1893456000).'])
def test_403_of_a_key_that_does_not_allow_it_blames_the_key_not_the_permissions(message):
    err = azure_errors.explain(http_error(403, 'Forbidden', message), 'the signature with key k', URL, 'sign',
                               {'client_id': 'abc', 'source': 'env'})
    assert 'the key itself does not allow it now' in str(err) and 'grant it' not in str(err), str(err)


def test_409_soft_deleted_says_recover_or_purge():
    err = azure_errors.explain(http_error(409, 'Conflict', 'Key k is currently in a deleted but recoverable state'),
                               'import of key k', URL, 'import')
    assert 'recover' in str(err) and 'purge' in str(err)


def test_wrong_secret_names_the_secret():
    exc = azexc.ClientAuthenticationError(message='ClientSecretCredential.get_token failed: AADSTS7000215: Invalid client '
                                                  'secret provided.\nTrace ID: 1')
    err = azure_errors.explain(exc, 'get of key k', URL, 'get')
    assert 'secret' in str(err) and '\n' not in str(err) and err.status == 401


def test_tls_failure_names_ca_bundle():
    exc = azexc.ServiceRequestError('[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed')
    assert 'ca_bundle' in str(azure_errors.explain(exc, 'get of key k', URL, 'get'))


def test_retryable_classification():
    assert azure_errors.is_retryable(azure_errors.KeyVaultError('x', status=429))
    assert azure_errors.is_retryable(azure_errors.KeyVaultError('x', status=503))
    assert azure_errors.is_retryable(azure_errors.KeyVaultError('x', code='ConnectionReset'))
    assert not azure_errors.is_retryable(azure_errors.KeyVaultError('x', status=400))
    assert not azure_errors.is_retryable(azure_errors.KeyVaultError('x', status=403))


def test_parse_datetime():
    assert attributes.parse_datetime('2027-01-31T00:00:00Z', 'expires_on').isoformat() == '2027-01-31T00:00:00+00:00'
    assert attributes.parse_datetime(None, 'x') is None
    with pytest.raises(ByokError, match="expires_on 'tomorrow' is not an ISO 8601"):
        attributes.parse_datetime('tomorrow', 'expires_on')


def test_untrusted_authority_names_ca_bundle_not_the_secret():
    exc = azexc.ClientAuthenticationError(message='Authentication failed: HTTPSConnectionPool: [SSL: CERTIFICATE_VERIFY_FAILED]')
    err = azure_errors.explain(exc, 'get of key k', URL, 'get')
    assert 'ca_bundle' in str(err) and 'secret' not in str(err)
