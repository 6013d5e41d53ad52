# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A KEK is never a target: the plan refuses a key named like a vault's KEK (any vault, the default name too, any case)."""
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
VAULTS = {'prod': {'url': 'https://contoso.vault.azure.net'},
          'mhsm': {'url': 'https://c.managedhsm.azure.net', 'kek_name': 'mhsm-kek'}}


def lines(keys, vaults=None):
    hosts = {'hsm1': {'byok_vaults': copy.deepcopy(vaults or VAULTS), 'byok_user_pin': '1234', 'byok_keys': keys}}
    plan, problems = plan_fleet(SPEC, hosts, now=NOW)
    return plan, format_problems(problems, list(hosts))


@pytest.mark.parametrize('name, vault, where', [
    ('byok-kek', 'prod', 'byok_vaults.prod.kek_name'),        # the default KEK name of its own vault
    ('BYOK-KEK', 'prod', 'byok_vaults.prod.kek_name'),        # Key Vault compares names case-insensitively
    ('mhsm-kek', 'mhsm', 'byok_vaults.mhsm.kek_name'),        # a kek_name the user chose
    ('Mhsm-Kek', 'prod', 'byok_vaults.mhsm.kek_name'),        # the KEK name of another vault
])
def test_a_key_named_like_a_kek_is_refused_with_one_line(name, vault, where):
    plan, out = lines([{'name': name, 'vault': vault}])
    assert len(out) == 1, out
    assert out[0].startswith("hsm1: byok_keys[0] (%s).name: '%s' is a KEK name (" % (name, name)), out
    assert where in out[0] and 'give the key another name' in out[0], out
    assert plan['hosts']['hsm1']['keys'] == [] and plan['hosts']['hsm1']['hsm_keys'] == []


def test_the_default_kek_name_is_refused_even_when_every_vault_chose_another():
    vaults = {'prod': {'url': 'https://contoso.vault.azure.net', 'kek_name': 'prod-kek'}}
    plan, out = lines([{'name': 'byok-kek', 'vault': 'prod'}], vaults)
    assert out == ["hsm1: byok_keys[0] (byok-kek).name: 'byok-kek' is a KEK name (the default KEK name, compared "
                   "case-insensitively as Key Vault does) and a KEK is never a target key; give the key another name"]


def test_names_near_a_kek_name_pass():
    plan, out = lines([{'name': 'byok-kek2', 'vault': 'prod'}, {'name': 'kek', 'vault': 'prod'},
                       {'name': 'prod-kek', 'vault': 'mhsm'}])
    assert out == []
    assert [k['name'] for k in plan['hosts']['hsm1']['keys']] == ['byok-kek2', 'kek', 'prod-kek']
