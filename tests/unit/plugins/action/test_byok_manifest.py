# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest
from unittest.mock import MagicMock

from ansible.errors import AnsibleActionFail
from ansible.playbook.task import Task

from ansible_collections.byok.keyvault.plugins.action.byok_manifest import SCHEMA, ActionModule, manifest_documents

ROWS = [{'host': 'hsm1', 'vault': 'prod', 'name': 'app-rsa', 'label': 'app-rsa', 'kid': 'https://v/keys/app-rsa/0123456789abcdef',
         'hsm_fingerprint': 'ab' * 32, 'vault_fingerprint': 'ab' * 32, 'match': True, 'result': 'transferred', 'message': ''}]


def run_action(args, check_mode=False):
    task = Task()
    task.args = args
    task.check_mode = check_mode
    action = ActionModule(task, MagicMock(), MagicMock(check_mode=check_mode), loader=None, templar=None, shared_loader_obj=None)
    return action.run(task_vars={})


def test_documents_hold_the_rows_and_the_table():
    json_text, summary = manifest_documents(ROWS, ['hsm9'], '2026-11-28T21:05:00Z', False)
    doc = json.loads(json_text)
    assert doc['schema'] == SCHEMA and doc['keys'] == ROWS and doc['hosts_without_report'] == ['hsm9']
    assert summary.startswith('byok.keyvault transfer finished 2026-11-28T21:05:00Z\n')
    assert 'app-rsa' in summary and 'transferred' in summary and 'hosts without a report (failed before planning): hsm9' in summary


def test_writes_both_files_private_in_a_new_private_directory(tmp_path):
    directory = tmp_path / 'manifests' / 'run'
    result = run_action({'dir': str(directory), 'rows': ROWS})
    assert result['changed'] is False
    assert stat.S_IMODE(os.stat(str(directory)).st_mode) == 0o700
    for path in (result['json_path'], result['text_path']):
        assert os.path.dirname(path) == str(directory)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.load(open(result['json_path']))['keys'] == ROWS
    assert result['finished'].replace(':', '') in os.path.basename(result['json_path'])


def test_check_mode_writes_nothing(tmp_path):
    result = run_action({'dir': str(tmp_path / 'm'), 'rows': ROWS}, check_mode=True)
    assert result['json_path'] is None and not (tmp_path / 'm').exists()


def test_unwritable_directory_names_the_variable(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(AnsibleActionFail, match='byok_manifest_dir'):
        run_action({'dir': str(blocker / 'sub'), 'rows': ROWS})


def test_unknown_option_is_refused(tmp_path):
    with pytest.raises(AnsibleActionFail, match='mode'):
        run_action({'dir': str(tmp_path), 'rows': ROWS, 'mode': '0644'})
