# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure decisions behind the modules: regenerate policy, KEK usability, import-or-keep."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils.decisions import import_decision, kek_needed, regeneration_decision
from ansible_collections.byok.keyvault.plugins.module_utils.vault_backend import kek_problems


@pytest.mark.parametrize('diffs, exists, policy, action', [
    ([], False, 'fail', 'generate'),
    ([], False, 'never', 'generate'),
    ([], True, 'fail', 'keep'),
    ([], True, 'full_idempotence', 'keep'),
    ([], True, 'always', 'replace'),
    (['key_size is 2048, wanted 3072'], True, 'fail', 'fail'),
    (['key_size is 2048, wanted 3072'], True, 'never', 'keep'),
    (['key_size is 2048, wanted 3072'], True, 'full_idempotence', 'replace'),
])
def test_regeneration_policy(diffs, exists, policy, action):
    assert regeneration_decision(diffs, exists, policy)[0] == action


def kek(**over):
    summary = {'kty': 'RSA-HSM', 'key_ops': ['import'], 'enabled': True, 'expires_on': None, 'not_before': None,
               'key_size': 4096}
    summary.update(over)
    return summary


NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


def test_a_good_kek_has_no_problems():
    assert kek_problems(kek(), 4096, NOW) == []


@pytest.mark.parametrize('over, needle', [
    ({'kty': 'RSA'}, 'not RSA-HSM'),
    ({'key_ops': ['import', 'sign']}, 'not exactly ["import"]'),
    ({'key_ops': ['wrapKey']}, 'not exactly ["import"]'),
    ({'enabled': False}, 'disabled'),
    ({'expires_on': '2026-01-01T00:00:00+00:00'}, 'expired'),
    ({'not_before': '2027-01-01T00:00:00+00:00'}, 'not valid before'),
    ({'key_size': 2048}, 'not RSA-4096'),
])
def test_kek_problems(over, needle):
    problems = kek_problems(kek(**over), 4096, NOW)
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize('exists, current, expected, force, decision', [
    (False, None, 'aa', False, 'import'),
    (False, None, None, False, 'import'),
    (True, 'aa', 'aa', False, 'keep'),
    (True, 'aa', 'bb', False, 'conflict'),
    (True, 'aa', 'bb', True, 'import'),
    (True, 'aa', None, False, 'conflict'),
    (True, None, 'aa', False, 'conflict'),
    (True, 'aa', 'aa', True, 'keep'),  # a rotation is idempotent once the vault holds the HSM key
    (True, None, None, False, 'conflict'),  # an identity nobody could establish never matches another
    (True, 'AA', 'aa', False, 'keep'),
])
def test_import_decision_never_overwrites_silently(exists, current, expected, force, decision):
    assert import_decision(exists, current, expected, force)[0] == decision


@pytest.mark.parametrize('in_vault, force, policy, needed', [
    (False, False, 'fail', True),
    (True, False, 'fail', False),
    (True, False, 'never', False),
    (True, True, 'fail', True),
    (True, False, 'full_idempotence', True),
    (True, False, 'always', True),
])
def test_kek_needed_only_when_a_key_may_move(in_vault, force, policy, needed):
    assert kek_needed(in_vault, force, policy) is needed
