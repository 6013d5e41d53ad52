# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import json
import os
import stat

import pytest
from unittest.mock import MagicMock

from ansible.errors import AnsibleActionFail
from ansible.playbook.task import Task

from ansible_collections.byok.keyvault.plugins.action import byok_manifest as manifest_plugin
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
    # a failed result (the report role prints its table first), not an exception
    result = run_action({'dir': str(blocker / 'sub'), 'rows': ROWS})
    assert result['failed'] and 'byok_manifest_dir' in result['not_written'] and result['msg'] == result['not_written']
    assert result['json_path'] is None


def test_unknown_option_is_refused(tmp_path):
    with pytest.raises(AnsibleActionFail, match='mode'):
        run_action({'dir': str(tmp_path), 'rows': ROWS, 'mode': '0644'})


class _FrozenDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 11, 28, 21, 5, 0, tzinfo=tz)


def test_two_runs_in_the_same_second_keep_two_manifests(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_plugin.datetime, 'datetime', _FrozenDatetime)
    first = run_action({'dir': str(tmp_path), 'rows': ROWS})
    other_rows = [dict(ROWS[0], name='other-key')]
    second = run_action({'dir': str(tmp_path), 'rows': other_rows})
    assert first['finished'] == second['finished'] == '2026-11-28T21:05:00Z'
    assert first['json_path'] != second['json_path'] and first['text_path'] != second['text_path']
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        os.path.basename(p) for p in (first['json_path'], first['text_path'], second['json_path'], second['text_path']))
    assert json.load(open(first['json_path']))['keys'] == ROWS
    assert json.load(open(second['json_path']))['keys'] == other_rows
    assert first['run_id'] in first['json_path'] and first['run_id'].startswith('2026-11-28T210500Z-')


def test_an_existing_manifest_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_plugin.datetime, 'datetime', _FrozenDatetime)
    ids = iter(['2026-11-28T210500Z-aaaa', '2026-11-28T210500Z-aaaa', '2026-11-28T210500Z-bbbb'])
    monkeypatch.setattr(manifest_plugin, 'run_id', lambda finished: next(ids))
    first = run_action({'dir': str(tmp_path), 'rows': ROWS})
    before = open(first['json_path']).read()
    second = run_action({'dir': str(tmp_path), 'rows': [dict(ROWS[0], name='other-key')]})
    assert second['run_id'] == '2026-11-28T210500Z-bbbb'
    assert open(first['json_path']).read() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith('.tmp')]


def test_write_new_refuses_an_existing_name(tmp_path):
    target = tmp_path / 'byok-transfer-x.json'
    target.write_text('earlier run')
    with pytest.raises(OSError) as info:
        manifest_plugin.write_new(str(target), b'later run')
    assert info.value.errno == errno.EEXIST
    assert target.read_text() == 'earlier run' and sorted(p.name for p in tmp_path.iterdir()) == ['byok-transfer-x.json']


def test_a_directory_others_may_write_is_refused(tmp_path):
    shared = tmp_path / 'shared'
    shared.mkdir()
    os.chmod(str(shared), 0o777)
    result = run_action({'dir': str(shared), 'rows': ROWS})
    assert result['failed'] and 'others may write' in result['not_written'], result
    assert list(shared.iterdir()) == []
