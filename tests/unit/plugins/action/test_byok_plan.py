# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory contract (byok_plan): the transfer role's argument spec, checked by the plan, one line per problem."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime

import pytest

from ansible_collections.byok.keyvault.plugins.action.byok_plan import load_spec
from ansible_collections.byok.keyvault.plugins.module_utils.fleet_plan import plan_fleet
from ansible_collections.byok.keyvault.plugins.module_utils.inventory import format_problems

SPEC = load_spec('transfer', 'main')
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
VAULTS = {'prod': {'url': 'https://contoso.vault.azure.net'}, 'mhsm': {'url': 'https://c.managedhsm.azure.net'}}


def host(**values):
    base = {'byok_vaults': copy.deepcopy(VAULTS), 'byok_user_pin': '1234',
            'byok_keys': [{'name': 'app-rsa', 'vault': 'prod'}]}
    base.update(values)
    return base


def lines(hosts):
    plan, problems = plan_fleet(SPEC, hosts, now=NOW)
    return format_problems(problems, list(hosts))


def test_a_good_inventory_plans_every_key_with_its_defaults():
    plan, problems = plan_fleet(SPEC, {'hsm1': host(byok_keys=[
        {'name': 'app-rsa', 'vault': 'prod'},
        {'name': 'app-ec', 'vault': 'prod', 'key_type': 'EC', 'curve': 'P-384', 'key_ops': ['sign', 'verify']},
        {'name': 'app-aes', 'vault': 'mhsm', 'key_type': 'oct', 'tags': {'owner': 'payments'}},
        {'name': 'shared', 'vault': 'mhsm', 'label': 'app-ec', 'key_type': 'EC', 'curve': 'P-384'},
    ])}, now=NOW)
    assert problems == []
    keys = dict((k['name'], k) for k in plan['hosts']['hsm1']['keys'])
    assert keys['app-rsa']['key_size'] == 3072 and keys['app-rsa']['label'] == 'app-rsa'
    assert keys['app-rsa']['key_ops'] == ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey']
    assert keys['app-aes']['key_size'] == 256 and keys['app-aes']['vault_url'] == 'https://c.managedhsm.azure.net'
    assert [k['label'] for k in plan['hosts']['hsm1']['hsm_keys']] == ['app-rsa', 'app-ec', 'app-aes']  # shared is one key
    assert [v['name'] for v in plan['vaults']] == ['mhsm', 'prod'] and plan['summary'] == '4 keys on 1 HSM host into 2 vaults'
    assert '1234' not in repr(plan)  # no secret in the plan


@pytest.mark.parametrize('keys, expected', [
    ([{'name': 'm1', 'vault': 'prod', 'key_sise': 2048}], 'hsm1: byok_keys[0] (m1).key_sise: unknown field; did you mean key_size?'),
    ([{'name': 'm1', 'vault': 'prod', 'kye_ops': ['sign']}], 'byok_keys[0] (m1).kye_ops: unknown field; did you mean key_ops?'),
    ([{'name': 'm1', 'vault': 'prod', 'key_type': 'EC', 'key_ops': ['encrypt']}],
     "byok_keys[0] (m1).key_ops[0]: 'encrypt' is not allowed for EC keys; use sign, verify"),
    ([{'name': 'm1', 'vault': 'prod', 'key_ops': ['sign', 'verfy']}], "key_ops[1]: 'verfy' is not one of"),
    ([{'name': 'm1', 'vault': 'prod', 'key_ops': ['sign', 'import']}], "'import' is not allowed for a BYOK target key"),
    ([{'name': 'm1', 'vault': 'prod', 'key_size': '3072 bits'}], "key_size: '3072 bits' is not a whole number"),
    ([{'name': 'm1', 'vault': 'prod', 'key_size': 1024}], 'RSA key_size 1024 is not accepted'),
    ([{'name': 'm1', 'vault': 'prod', 'enabled': 'maybe'}], "enabled: 'maybe' is not a boolean"),
    ([{'name': 'm1', 'vault': 'prod', 'tags': {'n': 5}}], 'tags.n: tag value 5 is an integer, not a string'),
    ([{'name': 'm1', 'vault': 'prod', 'expires_on': 'next tuesday'}], "expires_on: 'next tuesday' is not an ISO 8601 date-time"),
    ([{'name': 'm1', 'vault': 'prod', 'expires_on': '2020-01-01T00:00:00Z'}], 'is in the past'),
    ([{'name': 'm1', 'vault': 'prod', 'not_before': '2030-01-01', 'expires_on': '2029-01-01'}], 'not_before: '),
    ([{'vault': 'prod'}], 'hsm1: byok_keys[0].name: is missing'),
    ([{'name': 'm1', 'vault': 'stage'}], "byok_keys[0] (m1).vault: 'stage' is not a vault of byok_vaults"),
    ([{'name': 'bad_name', 'vault': 'prod'}], "byok_keys[0] (bad_name).name: 'bad_name' is not a valid Key Vault key name"),
    ([{'name': 'm1', 'vault': 'prod', 'key_type': 'oct'}], 'oct (AES) keys can only be imported into Azure Managed HSM'),
    ([{'name': 'm1', 'vault': 'prod'}, {'name': 'M1', 'vault': 'prod'}], "'M1' is listed twice for vault prod"),
    ([{'name': 'm1', 'vault': 'prod', 'key_type': 'rsa'}], "'rsa' is not one of RSA, EC, oct; did you mean RSA?"),
    ([{'name': 'm1', 'vault': 'prod', 'id': 'xyz'}], "id: 'xyz' is not hex"),
    ([{'name': 'a', 'vault': 'prod', 'label': 'L'}, {'name': 'b', 'vault': 'prod', 'label': 'L', 'key_type': 'EC'}],
     "'L' is also the label of byok_keys[0]"),
])
def test_each_key_mistake_is_one_line_naming_host_path_and_fix(keys, expected):
    found = lines({'hsm1': host(byok_keys=keys)})
    assert len(found) == 1, found
    assert expected in found[0], found


def test_every_problem_of_the_fleet_at_once_and_a_shared_one_once():
    found = lines({'hsm1': host(byok_keys=[{'name': 'a', 'vault': 'prod', 'key_sise': 1}], byok_azure={'clientid': 'x'}),
                   'hsm2': host(byok_keys=[{'name': 'A', 'vault': 'prod'}], byok_azure={'clientid': 'x'})})
    assert 'all HSM hosts: byok_azure.clientid: unknown field; did you mean client_id?' in found
    assert any(line.startswith('hsm2: byok_keys[0] (A).name:') and 'also listed by hsm1' in line for line in found), found
    assert len(found) == 3, found


@pytest.mark.parametrize('values, expected', [
    ({'byok_user_pin': 342391}, 'byok_user_pin: the value (not shown: a secret) is an integer, not a string; use quotes'),
    ({'byok_regenerate': 'sometimes'}, "byok_regenerate: 'sometimes' is not one of never, fail, full_idempotence, always"),
    ({'byok_import_parallel': 64}, 'byok_import_parallel: 64 is out of range; use 1 to 16'),
    ({'byok_vaults': {'prod': {'url': 'http://contoso.vault.azure.net'}}}, 'byok_vaults.prod.url: '),
    ({'byok_vaults': {'prod': {'url': 'https://contoso.vault.azure.net', 'kek_size': 1024}}}, 'byok_vaults.prod.kek_size: 1024'),
    ({'byok_vaults': {'prod': {'uri': 'https://contoso.vault.azure.net'}}}, 'byok_vaults.prod.uri: unknown field; did you mean url?'),
    ({'byok_hsm_environment': 'SOFTHSM2_CONF=/x'}, 'byok_hsm_environment: '),
    ({'byok_azure': {'pacing_share': 1.5}}, 'byok_azure.pacing_share: 1.5 is out of range; use more than 0 and at most 1'),
    ({'byok_azure': {'pacing_share': 'half'}}, "byok_azure.pacing_share: 'half' is not a number; use more than 0"),
    ({'byok_azure': {'pacing_share': float('nan')}}, 'byok_azure.pacing_share: nan is not a number'),
    ({'byok_azure': {'pacing_window': 0}}, 'byok_azure.pacing_window: 0 is out of range; use the seconds'),
    ({'byok_vaults': dict(VAULTS, again={'url': 'https://CONTOSO.vault.azure.net/'})},
     "byok_vaults.prod.url: 'https://contoso.vault.azure.net' is the vault of byok_vaults.again too"),
])
def test_host_variable_mistakes(values, expected):
    found = lines({'hsm1': host(**values)})
    assert any(expected in line for line in found), found
    assert '342391' not in ' '.join(found)


def test_numbers_given_as_strings_are_numbers():
    """AWX extra vars and non-native templating give numbers as strings; the modules convert them, so does the plan."""
    assert lines({'hsm1': host(byok_azure={'pacing_share': '0.5', 'pacing_window': '1'})}) == []


def test_an_empty_vendor_means_auto():
    plan, problems = plan_fleet(SPEC, {'hsm1': host(byok_hsm_vendor='')}, now=NOW)
    assert problems == []


def test_offline_hosts_need_no_vaults():
    plan, problems = plan_fleet(dict((k, v) for k, v in SPEC.items() if k != 'byok_vaults'),
                                {'hsm1': {'byok_keys': [{'name': 'a', 'vault': 'prod', 'key_type': 'EC'}]}}, now=NOW,
                                vaults_required=False)
    assert problems == [] and plan['hosts']['hsm1']['keys'][0]['vault_url'] is None


# -- clouds where Microsoft offers no BYOK --------------------------------------------------------------------------
def test_a_vault_in_azure_china_is_refused_by_the_plan():
    vaults = dict(copy.deepcopy(VAULTS), cn={'url': 'https://contoso.vault.azure.cn'})
    keys = [{'name': 'app-rsa', 'vault': 'cn'}, {'name': 'app-ec', 'vault': 'prod', 'key_type': 'EC'}]
    out = lines({'hsm1': host(byok_vaults=vaults, byok_keys=keys)})
    assert len(out) == 1, out
    assert out[0].startswith('hsm1: byok_vaults.cn.url: vault https://contoso.vault.azure.cn is in Azure China 21Vianet, '
                             'where Microsoft does not offer BYOK'), out
    assert 'set byok_azure.allow_unsupported_clouds: true' in out[0], out


def test_cloud_environment_azure_china_refuses_every_vault_and_us_government_none():
    china = lines({'hsm1': host(byok_azure={'cloud_environment': 'AzureChinaCloud'})})
    assert sorted(line.split(': ')[1] for line in china) == ['byok_vaults.mhsm.url', 'byok_vaults.prod.url'], china
    assert all('cloud_environment AzureChinaCloud' in line for line in china), china
    gov = {'gov': {'url': 'https://contoso.vault.usgovcloudapi.net'}}
    assert lines({'hsm1': host(byok_vaults=gov, byok_keys=[{'name': 'a', 'vault': 'gov'}],
                               byok_azure={'cloud_environment': 'AzureUSGovernment'})}) == []


def test_the_override_lets_the_plan_through():
    vaults = {'cn': {'url': 'https://contoso.vault.azure.cn'}}
    plan, problems = plan_fleet(SPEC, {'hsm1': host(byok_vaults=vaults, byok_keys=[{'name': 'a', 'vault': 'cn'}],
                                                    byok_azure={'allow_unsupported_clouds': True})}, now=NOW)
    assert problems == [] and plan['vaults'][0]['url'] == 'https://contoso.vault.azure.cn', problems


def test_a_label_with_a_line_break_is_refused():
    found = lines({'hsm1': host(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'label': 'x\nnext: 1 transferred'}])})
    assert len(found) == 1 and found[0].startswith('hsm1: byok_keys[0] (app-rsa).label: ') and 'control character' in found[0]


def test_problems_come_in_host_then_path_order():
    keys = [{'name': 'k%d' % i, 'vault': 'prod', 'key_size': 1} for i in range(12)]
    found = lines({'hsm1': host(byok_keys=keys), 'hsm2': host(byok_keys=[{'name': 'other', 'vault': 'prod', 'key_size': 1}])})
    hsm1 = [line for line in found if line.startswith('hsm1:')]
    assert [line.split('(')[1].split(')')[0] for line in hsm1] == ['k%d' % i for i in range(12)]
    assert found.index(hsm1[-1]) < found.index([line for line in found if line.startswith('hsm2:')][0])


@pytest.mark.parametrize('vname', ['../../outside/prem', 'a/b', 'prod vault', '', 'x' * 65])
def test_a_vault_short_name_is_an_identifier(vname):
    vaults = {vname: {'url': 'https://contoso.vault.azure.net'}}
    out = lines({'hsm1': host(byok_vaults=vaults, byok_keys=[{'name': 'app-rsa', 'vault': vname}])})
    assert any("byok_vaults.%s: '%s' is not a vault short name: use 1-64 letters, digits, - and _" % (vname, vname) in line
               for line in out), out


def test_offline_hosts_name_their_vaults_with_identifiers_too():
    plan, problems = plan_fleet(SPEC, {'hsm1': {'byok_keys': [{'name': 'a', 'vault': '../x'}]}}, now=NOW, vaults_required=False)
    assert "hsm1: byok_keys[0] (a).vault: '../x' is not a vault short name: use 1-64 letters, digits, - and _ (it names the " \
        "folders and files of a transfer bundle)" in [p.line() for p in problems]


def test_a_host_name_that_is_not_a_folder_name_is_refused():
    out = lines({'../hsm1': host()})
    assert any(line.startswith("../hsm1: inventory_hostname: '../hsm1' names a folder") for line in out), out
