# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""KeyVaultModule.run_vaults: several vaults in one module run, each failing on its own.

The vault side is replaced by a stand-in that fails the way the tests need (an error no message maps cannot be
produced by the lab on purpose); everything else is the module base as the modules use it."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils import azure_errors
from ansible_collections.byok.keyvault.plugins.module_utils import keyvault as kv


class Failed(Exception):
    pass


class FakeModule(kv.KeyVaultModule):
    """The module base without AnsibleModule: params as given, fail() raising."""

    def __init__(self, params):
        self.params = dict(params)
        self.check_mode = False

    def fail(self, exc, **result):
        raise Failed(str(exc))


class FakeVault(object):
    def __init__(self, params, credential=None):
        self.url = params['vault_url']
        self.vault_type = 'managed_hsm' if 'managedhsm' in self.url else 'premium'
        self.credential = credential


@pytest.fixture
def module(monkeypatch):
    logins = []
    monkeypatch.setattr(kv, 'Vault', FakeVault)
    monkeypatch.setattr(kv, 'build_credential', lambda params: logins.append(1) or ('credential', {'source': 'env'}))
    m = FakeModule({'parallel': 4})
    m.logins = logins
    return m


def entries(*names):
    return [{'name': n, 'vault_url': 'https://%s.vault.azure.net' % n, 'vault_type': 'auto', 'keys': [{'name': 'k1'}]}
            for n in names]


def test_results_come_in_order_with_one_login_and_one_vault_failing_alone(module):
    def serve(vault, entry):
        if entry['name'] == 'b':
            raise ValueError('the SDK had a bad day\nsecond line')
        if entry['name'] == 'c':
            raise azure_errors.KeyVaultError('the identity may not import keys in %s' % vault.url, status=403)
        return {'changed': True, 'keys': [{'name': 'k1', 'changed': True}], 'credential': vault.credential}

    out = module.run_vaults(entries('a', 'b', 'c', 'd'), serve, 'import', items='keys', writes=True)
    assert [r['name'] for r in out] == ['a', 'b', 'c', 'd']
    assert module.logins == [1] and out[0]['credential'] == ('credential', {'source': 'env'})
    assert not out[0].get('failed') and not out[3].get('failed')
    assert out[1]['failed'] and out[1]['msg'].startswith('unexpected ValueError while serving vault b: the SDK had a bad day;')
    assert out[1]['keys'][0]['outcome_unknown'] and 're-run to confirm' in out[1]['keys'][0]['msg']
    assert out[2]['failed'] and out[2]['status_code'] == 403 and not out[2]['keys'][0].get('outcome_unknown')


def test_a_read_that_fails_unexpectedly_is_not_an_unknown_outcome(module):
    out = module.run_vaults(entries('a'), lambda vault, entry: 1 / 0, 'look-up', items='keys')
    assert out[0]['failed'] and 'ZeroDivisionError' in out[0]['msg'] and 're-run' not in out[0]['msg']
    assert not out[0]['keys'][0].get('outcome_unknown')


def test_parallel_out_of_range_fails_once_before_any_vault_is_served(module):
    module.params['parallel'] = 0
    served = []
    with pytest.raises(Failed, match='parallel must be between 1 and 16'):
        module.run_vaults(entries('a', 'b', 'c'), lambda vault, entry: served.append(entry), 'import')
    assert served == [] and module.logins == []


def test_at_most_five_key_vaults_at_once_and_managed_hsms_beside_them(module):
    lock = threading.Lock()
    now = {'premium': 0, 'managed_hsm': 0}
    peak = {'premium': 0, 'managed_hsm': 0}
    release = threading.Event()

    def serve(vault, entry):
        with lock:
            now[vault.vault_type] += 1
            peak[vault.vault_type] = max(peak[vault.vault_type], now[vault.vault_type])
            if now['premium'] == kv.SUBSCRIPTION_VAULTS and now['managed_hsm'] == 2:
                release.set()
        release.wait(5)
        with lock:
            now[vault.vault_type] -= 1
        return {'changed': False, 'keys': []}

    vaults = entries(*('kv%d' % i for i in range(8))) + [
        {'name': 'm%d' % i, 'vault_url': 'https://m%d.managedhsm.azure.net' % i, 'keys': []} for i in range(2)]
    out = module.run_vaults(vaults, serve, 'import')
    assert len(out) == 10 and not any(r.get('failed') for r in out)
    assert peak == {'premium': kv.SUBSCRIPTION_VAULTS, 'managed_hsm': 2}
