# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The names messages give to values: the option, the environment variable it came from, or the inventory variable;
and the vendor configuration a library read."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.byok.keyvault.plugins.module_utils import user_terms, vendors

PIN_MSG = "user_pin was refused by the token; check user_pin before the next run"


def test_an_option_from_the_environment_is_named_by_its_variable():
    assert user_terms.in_environment_terms(PIN_MSG, ['user_pin']) == \
        "PKCS11_USER_PIN was refused by the token; check PKCS11_USER_PIN before the next run"
    assert user_terms.in_environment_terms("fix token_label/token_serial", ['token_label']) == \
        "fix PKCS11_TOKEN_LABEL/token_serial"


def test_options_given_as_arguments_keep_their_names():
    assert user_terms.in_environment_terms(PIN_MSG, []) == PIN_MSG
    assert user_terms.in_environment_terms(PIN_MSG, ['token_label']) == PIN_MSG
    # token_serial and vendor have no environment variable
    assert user_terms.in_environment_terms("set token_serial", ['token_serial']) == "set token_serial"


def test_a_role_names_its_inventory_variables():
    assert user_terms.in_inventory_terms(PIN_MSG) == "byok_user_pin was refused by the token; check byok_user_pin before " \
                                                     "the next run"
    assert user_terms.in_inventory_terms("pkcs11_module /x does not exist; set pkcs11_module") == \
        "byok_pkcs11_module /x does not exist; set byok_pkcs11_module"


def test_a_role_keeps_the_environment_variables_of_a_credential():
    msg = "PKCS11_USER_PIN was refused by the token; check PKCS11_USER_PIN before the next run"
    assert user_terms.in_inventory_terms(msg) == msg


def test_a_role_names_the_vendor_configuration_in_byok_hsm_environment():
    msg = "which read its default configuration /etc/softhsm/softhsm2.conf because SOFTHSM2_CONF is not set; set SOFTHSM2_CONF"
    assert user_terms.in_inventory_terms(msg) == (
        "which read its default configuration /etc/softhsm/softhsm2.conf because byok_hsm_environment.SOFTHSM2_CONF is not "
        "set; set byok_hsm_environment.SOFTHSM2_CONF")
    # already in inventory terms: left as it is (a message translated twice says the same)
    once = user_terms.in_inventory_terms(msg)
    assert user_terms.in_inventory_terms(once) == once


def test_config_variables_are_profile_data():
    assert set(vendors.config_variables()) >= {'SOFTHSM2_CONF', 'ChrystokiConfigurationPath'}
    assert vendors.get_profile('generic')['config_variable'] is None


def test_configuration_read():
    softhsm = vendors.get_profile('softhsm')
    assert vendors.configuration_read(softhsm, {'SOFTHSM2_CONF': '/x/softhsm2.conf'}) == ('SOFTHSM2_CONF', '/x/softhsm2.conf', True)
    assert vendors.configuration_read(softhsm, {}, exists=lambda p: p == '/etc/softhsm2.conf') == \
        ('SOFTHSM2_CONF', '/etc/softhsm2.conf', False)
    assert vendors.configuration_read(softhsm, {}, exists=lambda p: False) == \
        ('SOFTHSM2_CONF', '/etc/softhsm/softhsm2.conf', False)
    assert vendors.configuration_read(vendors.get_profile('luna'), {}, exists=lambda p: True) == \
        ('ChrystokiConfigurationPath', '/etc', False)
    assert vendors.configuration_read(vendors.get_profile('nshield'), {}) is None


def test_the_filter_of_the_transfer_role_says_a_message_in_inventory_terms_on_one_line():
    from ansible_collections.byok.keyvault.plugins.filter.plan import FilterModule
    say = FilterModule().filters()['byok_inventory_terms']
    assert say("user_pin was refused by the token;\n  check user_pin") == \
        "byok_user_pin was refused by the token; check byok_user_pin"


def test_secret_variables_are_the_names_with_a_secret_word_as_a_part():
    environment = {'PKCS11_USER_PIN': '1', 'hsm_password': '2', 'CKNFAST_PASSPHRASE_X': '3', 'MY_SECRET': '4', 'PASSWD': '5',
                   'SOFTHSM2_CONF': '/x', 'PINNED_CPU': '0', 'SPIN': '1', 'PKCS11_TOKEN_LABEL': 'byok', 'ChrystokiConfigurationPath': '/etc'}
    assert user_terms.secret_variables(environment) == ['CKNFAST_PASSPHRASE_X', 'MY_SECRET', 'PASSWD', 'PKCS11_USER_PIN',
                                                        'hsm_password']
    assert user_terms.secret_variables({}) == [] and user_terms.secret_variables(None) == []
    more = {'HSMPIN': '1', 'LUNA_PWD': '2', 'NFAST_PASS': '3', 'SOPIN': '4', 'TOKEN_PASSCODE': '5', 'SPIN': '6', 'BYPASS': '7'}
    assert user_terms.secret_variables(more) == ['HSMPIN', 'LUNA_PWD', 'NFAST_PASS', 'SOPIN', 'TOKEN_PASSCODE']


def test_a_vault_modules_option_is_named_as_the_inventory_variable_of_its_vault():
    message = 'https://v.vault.azure.net is unreachable during the look-up (refused); check vault_url, DNS, proxy and firewall'
    assert user_terms.in_vault_terms(message, 'prod') == message.replace('check vault_url', 'check byok_vaults.prod.url')
    assert user_terms.in_vault_terms('byok_vaults.prod.vault_url_x and vault_urls', 'prod') == (
        'byok_vaults.prod.vault_url_x and vault_urls')
