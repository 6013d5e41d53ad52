# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader of vault URLs: canonical form, kind, same-vault test, key name comparison."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils import vault_target as vt
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import VaultTarget, VaultUrlError, same_key_name


@pytest.mark.parametrize('url, canonical, kind', [
    ('https://contoso.vault.azure.net', 'https://contoso.vault.azure.net', 'premium'),
    ('  HTTPS://Contoso.Vault.Azure.NET/ ', 'https://contoso.vault.azure.net', 'premium'),
    ('https://contoso.vault.azure.net:443', 'https://contoso.vault.azure.net', 'premium'),
    ('https://hsm1.managedhsm.azure.net', 'https://hsm1.managedhsm.azure.net', 'managed_hsm'),
    ('https://contoso.vault.usgovcloudapi.net', 'https://contoso.vault.usgovcloudapi.net', 'premium'),
    ('https://127.0.0.1:8443', 'https://127.0.0.1:8443', None),
])
def test_canonical_url_and_kind(url, canonical, kind):
    target = VaultTarget.parse(url)
    assert target.url == canonical and target.kind == kind and target.lock_key == canonical


def test_declared_kind_wins():
    assert VaultTarget.parse('https://127.0.0.1:8443', 'managed_hsm').kind == 'managed_hsm'
    with pytest.raises(VaultUrlError, match='unknown'):
        VaultTarget.parse('https://127.0.0.1:8443', 'standard')


@pytest.mark.parametrize('url, needle', [
    ('', 'not set'),
    (None, 'not set'),
    ('http://contoso.vault.azure.net', 'not an https URL'),
    ('contoso.vault.azure.net', 'not an https URL'),
    ('https://contoso.vault.azure.net/keys/x', 'not a vault URI'),
    ('https://contoso.vault.azure.net?x=1', 'not a vault URI'),
    ('https://user@contoso.vault.azure.net', 'user information'),
    ('https://contoso.vault.azure.net:99999', 'invalid port'),
    ('https://', 'no host'),
])
def test_not_a_vault_uri(url, needle):
    with pytest.raises(VaultUrlError, match=needle):
        VaultTarget.parse(url, option='byok_vaults.prod.url')


def test_same_vault_ignores_case_slash_and_default_port():
    target = VaultTarget.parse('https://Contoso.vault.azure.net/')
    assert target.same_vault('https://contoso.vault.azure.net:443')
    assert not target.same_vault('https://other.vault.azure.net')
    assert not target.same_vault('not a url')
    assert target == VaultTarget.parse('https://contoso.vault.azure.net')


def test_key_names_compare_case_insensitively():
    assert same_key_name('Demo-RSA', 'demo-rsa') and not same_key_name('demo-rsa', 'demo-rsa-2')


# -- clouds without BYOK -------------------------------------------------------------------------------------------
@pytest.mark.parametrize('url,cloud,refused', [
    ('https://contoso.vault.azure.cn', None, True),
    ('https://CONTOSO.Vault.Azure.CN/', 'AzureCloud', True),
    ('https://contoso.managedhsm.azure.cn', None, True),
    ('https://contoso.vault.azure.net', 'AzureChinaCloud', True),
    ('https://127.0.0.1:8443', 'azurechinacloud', True),
    ('https://contoso.vault.azure.net', 'AzureCloud', False),
    ('https://contoso.vault.usgovcloudapi.net', 'AzureUSGovernment', False),
    ('https://contoso.managedhsm.usgovcloudapi.net', None, False),
    ('https://contoso.vault.azure.cn.example.com', None, False),
    ('https://127.0.0.1:8443', 'https://login.example.test', False),
])
def test_byok_refusal(url, cloud, refused):
    msg = vt.byok_refusal(url, cloud)
    assert bool(msg) is refused, msg
    if refused:
        assert '\n' not in msg and 'Azure China 21Vianet' in msg and 'does not offer BYOK' in msg
        assert VaultTarget.parse(url).url in msg and 'allow_unsupported_clouds: true' in msg


def test_byok_refusal_names_the_option_and_the_override():
    msg = vt.byok_refusal('https://x.vault.azure.cn', option='vault', override='byok_azure.allow_unsupported_clouds')
    assert msg.startswith('vault https://x.vault.azure.cn is in Azure China 21Vianet, where Microsoft does not offer BYOK')
    assert 'set byok_azure.allow_unsupported_clouds: true' in msg
    msg = vt.byok_refusal('https://127.0.0.1:8443', 'AzureChinaCloud')
    assert 'is reached through cloud_environment AzureChinaCloud' in msg


def test_the_clouds_without_byok_are_data_in_one_place():
    assert sorted(vt.BYOK_UNAVAILABLE_CLOUDS) == ['AzureChinaCloud']
    assert vt.BYOK_UNAVAILABLE_CLOUDS['AzureChinaCloud']['suffixes'] == ('vault.azure.cn', 'managedhsm.azure.cn')
