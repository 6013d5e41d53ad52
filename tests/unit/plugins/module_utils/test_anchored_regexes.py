# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation regexes match the whole value: `$` also matches before a final line break, so a name or path ending in
one passed them."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils import bundle, byok_file
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import VaultTarget, VaultUrlError


def test_a_key_name_ending_in_a_newline_is_not_a_key_name():
    byok_file.validate_key_name('app-rsa')
    with pytest.raises(byok_file.ByokFormatError):
        byok_file.validate_key_name('app-rsa\n')


def test_a_kid_ending_in_a_newline_is_not_a_kid():
    kid = 'https://contoso.vault.azure.net/keys/byok-kek/0123456789abcdef0123456789abcdef'
    assert byok_file.parse_kid(kid)[1] == 'byok-kek'
    with pytest.raises(byok_file.ByokFormatError):
        byok_file.parse_kid(kid + '\n')


def test_a_bundle_folder_ending_in_a_newline_is_refused():
    assert bundle.check_subdir('wrapped/hsm1') == 'wrapped/hsm1'
    with pytest.raises(bundle.BundleError):
        bundle.check_subdir('wrapped/hsm1\n')


@pytest.mark.parametrize('url, words', [
    ('https://contoso.vault.azure.net:443:443', "has an invalid port '443:443'"),
    ('https://contoso.vault.azure.net:\uff18\uff14\uff14\uff13', 'has an invalid port'),  # full-width digits
    ('https://con_toso.vault.azure.net', "has an invalid host name 'con_toso.vault.azure.net'"),
    ('https://contoso..vault.azure.net', 'has an invalid host name'),
    ('https://-contoso.vault.azure.net', 'has an invalid host name'),
    ('https://conto so.vault.azure.net', 'has an invalid host name'),
])
def test_vault_urls_are_parsed_strictly(url, words):
    with pytest.raises(VaultUrlError) as exc:
        VaultTarget.parse(url, option='url')
    assert words in str(exc.value) and '\n' not in str(exc.value)
    assert VaultTarget.parse('https://contoso.vault.azure.net.:8443').url == 'https://contoso.vault.azure.net:8443'
