# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_base.ByokModule: what a module run returns, read back from what AnsibleModule prints."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json

import pytest

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args  # ansible-core 2.19 and later
except ImportError:
    @contextlib.contextmanager
    def patch_module_args(args):
        basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = None

from ansible_collections.byok.keyvault.plugins.module_utils.module_base import ByokModule

SPEC = {'step': {'type': 'str'}, 'records': {'type': 'list', 'elements': 'dict'},
        'user_pin': {'type': 'str', 'no_log': True}}
RECORDS = [{'host': 'hsm-a', 'name': 'k%d' % i, 'steps': {}} for i in range(3)]


def _printed(capsys, args, end):
    """What the module printed when end(module) ended it (exit or fail), as JSON."""
    with patch_module_args(args):
        module = ByokModule(SPEC)
        with pytest.raises(SystemExit):
            end(module)
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize('end', [
    lambda m: m.exit({'changed': False, 'records': m.params['records']}),
    lambda m: m.exit({'failed': True, 'msg': 'one key failed', 'records': m.params['records']}),
    lambda m: m.fail('the token could not be opened', records=m.params['records']),
], ids=['exit', 'exit-failed', 'fail'])
def test_the_invocation_counts_the_records_it_returns(capsys, end):
    out = _printed(capsys, {'step': 'read', 'records': RECORDS, 'user_pin': 'S3cretPIN'}, end)
    # the records once, in the result; the invocation counts them instead of carrying them a second time
    assert out['records'] == RECORDS
    assert out['invocation']['module_args']['records'] == '3 key records (returned in records)'
    assert out['invocation']['module_args']['step'] == 'read'
    # the other options as Ansible gives them, a secret still masked
    assert out['invocation']['module_args']['user_pin'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert 'S3cretPIN' not in json.dumps(out)


def test_a_module_without_records_keeps_its_whole_invocation(capsys):
    out = _printed(capsys, {'step': 'read', 'user_pin': 'S3cretPIN'}, lambda m: m.exit({'changed': False}))
    assert out['invocation'] == {'module_args': {'step': 'read', 'records': None,
                                                 'user_pin': 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'}}


def test_run_builds_the_module_makes_its_one_call_and_exits_with_the_result(capsys):
    calls = []

    def request(module):
        calls.append(module.params['step'])
        return {'changed': True, 'records': module.params['records']}

    with patch_module_args({'step': 'import', 'records': RECORDS}):
        with pytest.raises(SystemExit) as ended:
            ByokModule.run(request, SPEC, supports_check_mode=True)
    out = json.loads(capsys.readouterr().out)
    assert calls == ['import'] and ended.value.code == 0
    assert out['changed'] is True and out['records'] == RECORDS


def test_run_fails_with_the_message_of_a_failed_result(capsys):
    with patch_module_args({'step': 'import'}):
        with pytest.raises(SystemExit) as ended:
            ByokModule.run(lambda module: {'failed': True, 'msg': 'vault prod: 403'}, SPEC)
    out = json.loads(capsys.readouterr().out)
    assert ended.value.code == 1 and out['failed'] is True and out['msg'] == 'vault prod: 403'


def test_byok_vault_step_refuses_import_parallel_out_of_range_before_any_request(capsys):
    """The module's own check (the role's plan checks byok_import_parallel first): no vault is built, nothing is asked."""
    from ansible_collections.byok.keyvault.plugins.modules import byok_vault_step
    with patch_module_args({'step': 'import', 'records': [], 'import_parallel': 17}):
        with pytest.raises(SystemExit) as ended:
            byok_vault_step.main()
    out = json.loads(capsys.readouterr().out)
    assert ended.value.code == 1
    assert out['msg'] == 'import_parallel is 17; give a number from 1 to 16 (imports in flight to one vault)'


@pytest.mark.parametrize('parallel', [0, 17])
def test_keyvault_import_refuses_parallel_out_of_range_in_every_form(capsys, parallel):
    """The single key's form too (it makes one request at a time, but the option is documented as 1 to 16)."""
    from ansible_collections.byok.keyvault.plugins.modules import keyvault_import
    with patch_module_args({'name': 'k', 'vault_url': 'https://contoso.vault.azure.net', 'byok_content': 'e30=',
                            'parallel': parallel}):
        with pytest.raises(SystemExit) as ended:
            keyvault_import.main()
    out = json.loads(capsys.readouterr().out)
    assert ended.value.code == 1
    assert out['msg'] == 'parallel must be between 1 and 16 (concurrent import requests to the vault); got %d' % parallel
