# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure decisions behind the modules: regenerate policy, KEK usability, import-or-keep."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils import byok_file
from ansible_collections.byok.keyvault.plugins.module_utils.decisions import import_decision, kek_needed
from ansible_collections.byok.keyvault.plugins.module_utils.decisions import regeneration_decision, same_identity
from ansible_collections.byok.keyvault.plugins.module_utils.hsm_backend import byok_is_current
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


@pytest.mark.parametrize('current, expected', [
    (None, None),
    ('', ''),
    ('', None),
    (None, ''),
    ('  ', '  '),
])
@pytest.mark.parametrize('force', [False, True])
def test_an_unknown_identity_is_never_the_current_key(current, expected, force):
    """Two unknown identities (an AES key without a KCV on both sides) are not "the same key"."""
    decision, reason = import_decision(True, current, expected, force)
    assert decision == ('import' if force else 'conflict'), reason
    assert 'cannot be compared' in reason or force
    assert same_identity(current, expected) is False


def test_same_identity_needs_both_known_and_equal():
    assert same_identity('ab12cd', 'ab12cd') is True
    assert same_identity('ab12cd', 'ab12ce') is False
    assert same_identity(None, 'ab12cd') is False and same_identity('ab12cd', None) is False


KID = 'https://contoso.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef'


def _byok_with_sidecar(tmp_path, fingerprint):
    dest = str(tmp_path / 'k.byok')
    byok_file.atomic_write(dest, byok_file.build(KID, b'\x01' * 552, 'test'))
    byok_file.write_sidecar(dest, {'kek_kid': KID, 'fingerprint': fingerprint, 'kek_fingerprint': 'ee' * 32})
    return dest


def test_a_byok_of_a_key_without_identity_is_never_current(tmp_path):
    """A sidecar with fingerprint null and a key without KCV: None == None must not skip the wrap."""
    dest = _byok_with_sidecar(tmp_path, None)
    assert byok_is_current(dest, KID, None, 'ee' * 32) is False


def test_a_byok_of_the_same_key_is_current(tmp_path):
    dest = _byok_with_sidecar(tmp_path, 'abc123')
    assert byok_is_current(dest, KID, 'abc123', 'ee' * 32) is True
    assert byok_is_current(dest, KID, 'abc124', 'ee' * 32) is False
