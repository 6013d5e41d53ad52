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
