# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.byok.keyvault.plugins.filter.transfer import (byok_flatten_imports, byok_hsm_items, byok_kek_vaults, byok_plan, byok_report,
                                                                       byok_table, byok_vault_names)

KEYS = [
    {'name': 'app-rsa', 'vault': 'prod', 'key_type': 'RSA', 'key_size': 3072},
    {'name': 'app-ec', 'vault': 'prod', 'label': 'hsm-ec', 'key_type': 'EC', 'curve': 'P-256'},
    {'name': 'app-aes', 'vault': 'mhsm', 'key_type': 'oct', 'key_size': 256},
]
KEYGEN = [
    {'label': 'app-rsa', 'key_type': 'RSA', 'key_size': 3072, 'curve': None, 'fingerprint': 'f1'},
    {'label': 'hsm-ec', 'key_type': 'EC', 'key_size': 256, 'curve': 'P-256', 'fingerprint': 'f2'},
    {'label': 'app-aes', 'key_type': 'oct', 'key_size': 256, 'curve': None, 'fingerprint': 'abc123'},
]


def test_hsm_items_default_label_to_name():
    items = byok_hsm_items(KEYS)
    assert [i['label'] for i in items] == ['app-rsa', 'hsm-ec', 'app-aes']
    assert 'curve' not in items[0] and items[1]['curve'] == 'P-256'


def test_hsm_items_need_name_and_vault():
    with pytest.raises(AnsibleFilterError, match='name'):
        byok_hsm_items([{'vault': 'prod'}])


def test_vault_names():
    assert byok_vault_names(KEYS) == {'prod': ['app-rsa', 'app-ec'], 'mhsm': ['app-aes']}


def test_plan_moves_only_what_is_not_in_place():
    vault_results = [
        {'item': 'prod', 'keys': [{'name': 'app-rsa', 'exists': True, 'fingerprint': 'f1', 'kid': 'k1'},
                                  {'name': 'app-ec', 'exists': True, 'fingerprint': 'other', 'kid': 'k2'}]},
        {'item': 'mhsm', 'keys': [{'name': 'app-aes', 'exists': True, 'fingerprint': None, 'tags': {'byok-kcv': 'abc123'}}]},
    ]
    plan = {p['name']: p for p in byok_plan(KEYS, KEYGEN, vault_results)}
    assert plan['app-rsa']['transfer'] is False and plan['app-rsa']['state'] == 'in place'
    assert plan['app-ec']['transfer'] is False and plan['app-ec']['state'] == 'vault holds another key'
    assert plan['app-aes']['transfer'] is False
    rows = dict((r['name'], r) for r in byok_report(byok_plan(KEYS, KEYGEN, vault_results), [], 'hsm1'))
    assert rows['app-ec']['result'] == 'failed' and 'force: true' in rows['app-ec']['message']
    assert rows['app-rsa']['result'] == 'in place'
    forced = [dict(KEYS[1], force=True)]
    assert byok_plan(forced, KEYGEN, vault_results)[0]['transfer'] is True


def test_one_hsm_key_into_several_vaults_is_generated_once():
    keys = [{'name': 'shared', 'vault': 'prod', 'key_type': 'EC', 'curve': 'P-256'},
            {'name': 'shared', 'vault': 'mhsm', 'key_type': 'EC', 'curve': 'P-256'}]
    assert len(byok_hsm_items(keys)) == 1
    with pytest.raises(AnsibleFilterError, match='twice with different specs'):
        byok_hsm_items([keys[0], dict(keys[1], curve='P-384')])


def test_plan_in_check_mode_before_generation_transfers():
    plan = byok_plan(KEYS[:1], [{'label': 'app-rsa', 'fingerprint': None}], [{'item': 'prod', 'keys': [{'name': 'app-rsa',
                                                                                                        'exists': False}]}])
    assert plan[0]['transfer'] is True


def test_report_and_table():
    plan = byok_plan(KEYS[:2], KEYGEN, [{'item': 'prod', 'keys': [{'name': 'app-rsa', 'exists': False},
                                                                  {'name': 'app-ec', 'exists': False}]}])
    imports = byok_flatten_imports([{'item': 'prod', 'keys': [
        {'name': 'app-rsa', 'changed': True, 'kid': 'https://v/keys/app-rsa/0123', 'fingerprint': 'f1'},
        {'name': 'app-ec', 'failed': True, 'msg': 'the identity may not import'},
    ]}])
    rows = byok_report(plan, imports, 'hsm1')
    assert rows[0]['result'] == 'transferred' and rows[0]['match'] is True
    assert rows[1]['result'] == 'failed' and 'may not import' in rows[1]['message']
    table = byok_table(rows)
    assert table[0].startswith('KEY') and 'transferred' in table[1] and 'failed: the identity' in table[2]


def test_hsm_items_refuse_what_the_vault_would_refuse_before_any_hsm_work():
    vaults = {'prod': {'url': 'https://p.vault.azure.net'}, 'mhsm': {'url': 'https://m.managedhsm.azure.net'}}
    assert len(byok_hsm_items(KEYS, vaults)) == 3
    with pytest.raises(AnsibleFilterError, match='Managed HSM'):
        byok_hsm_items([{'name': 'aes', 'vault': 'prod', 'key_type': 'oct'}], vaults)
    with pytest.raises(AnsibleFilterError, match='2048, 3072, 4096'):
        byok_hsm_items([{'name': 'small', 'vault': 'prod', 'key_type': 'RSA', 'key_size': 1024}], vaults)
    with pytest.raises(AnsibleFilterError, match='does not define'):
        byok_hsm_items([{'name': 'x', 'vault': 'nowhere'}], vaults)


def test_a_vault_call_that_failed_whole_fails_each_of_its_keys():
    out = byok_flatten_imports([{'item': 'prod', 'failed': True, 'msg': 'authentication failed',
                                 'invocation': {'module_args': {'keys': [{'name': 'a'}, {'name': 'b'}]}}}])
    assert [(o['vault'], o['name'], o['failed']) for o in out] == [('prod', 'a', True), ('prod', 'b', True)]


def test_a_key_to_move_without_an_import_result_is_a_failure_not_a_silent_skip():
    plan = byok_plan(KEYS[:1], KEYGEN, [{'item': 'prod', 'keys': [{'name': 'app-rsa', 'exists': False}]}])
    rows = byok_report(plan, [], 'hsm1')
    assert rows[0]['result'] == 'failed' and 'no import result' in rows[0]['message']


def _state(vault, *present):
    return {'item': {'key': vault, 'value': list(present)}, 'keys': [{'name': n, 'exists': True} for n in present]}


def test_kek_vaults_none_when_every_key_is_in_its_vault():
    hosts = [{'inventory_hostname': 'h1', 'byok_keys': KEYS}]
    states = [_state('prod', 'app-rsa', 'app-ec'), _state('mhsm', 'app-aes')]
    assert byok_kek_vaults(hosts, states) == []
    assert byok_kek_vaults(hosts, states, 'never') == []


def test_kek_vaults_for_a_missing_key_a_forced_key_or_a_regenerating_run():
    hosts = [{'inventory_hostname': 'h1', 'byok_keys': KEYS}]
    assert byok_kek_vaults(hosts, [_state('prod', 'app-rsa'), _state('mhsm', 'app-aes')]) == ['prod']
    forced = [dict(KEYS[2], force=True)]
    assert byok_kek_vaults([{'inventory_hostname': 'h2', 'byok_keys': forced}], [_state('mhsm', 'app-aes')]) == ['mhsm']
    assert byok_kek_vaults(hosts, [_state('prod', 'app-rsa', 'app-ec'), _state('mhsm', 'app-aes')], 'always') == ['mhsm', 'prod']


def test_kek_vaults_when_a_vault_could_not_be_read():
    hosts = [{'inventory_hostname': 'h1', 'byok_keys': KEYS[:1]}]
    assert byok_kek_vaults(hosts, [{'item': {'key': 'prod', 'value': ['app-rsa']}, 'failed': True, 'msg': 'denied'}]) == ['prod']
