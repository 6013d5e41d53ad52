# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""The vault step's action: an import that gives no vault anything to do is answered on the controller, as the module
would answer it; anything else starts the module with the task's arguments."""

import pytest

from ansible_collections.byok.keyvault.plugins.action.byok_vault_step import ActionModule, answerable, checked
from ansible_collections.byok.keyvault.plugins.module_utils import record

from action_harness import make_action as _make_action

URL = 'https://contoso.vault.azure.net'


def in_place(**extra):
    """A record whose vault holds the HSM key as its current version, as the read and the contact left it."""
    e = {'host': 'hsm1', 'name': 'app-ec', 'vault': 'prod', 'vault_url': URL, 'vault_kind': 'premium', 'label': 'app-ec',
         'key_type': 'EC', 'key_size': None, 'curve': 'P-256', 'key_ops': ['sign', 'verify'], 'tags': None,
         'enabled': True, 'not_before': None, 'expires_on': None, 'force': False, 'kek_name': 'byok-kek',
         'kek_size': 4096, 'verify_signature': False}
    e.update(extra)
    records = [record.new(e)]
    fp = 'f2' * 32
    record.note_reads(records, [{'name': 'prod', 'keys': [{'name': 'app-ec', 'exists': True, 'fingerprint': fp, 'kid': 'k2',
                                                           'version': 'v2', 'enabled': True, 'key_ops': ['sign', 'verify'],
                                                           'tags': {'byok-fingerprint': fp}}]}])
    record.note_keys(records, {'app-ec': {'action': 'keep', 'changed': False, 'fingerprint': fp, 'sealed': False}},
                     'contact', {'label': 'tok', 'serial': '1'})
    record.decide(records)
    return records


def make_action(args, check_mode=False):
    """(action, started): started gets one dict per module start (module_name, module_args, environment)."""
    return _make_action(ActionModule, args, check_mode=check_mode,
                        answer={'changed': True, 'records': [], 'from': 'module'})


def test_an_import_with_nothing_to_do_is_answered_without_the_module():
    records = in_place()
    args = {'step': 'import', 'records': records, 'import_parallel': 4, 'delete_keks': False, 'secret': 's3cret',
            'vault_url': URL}
    action, started = make_action(args)
    result = action.run(task_vars={})
    assert started == []
    assert result['records'] == record.import_without_vault(records, False)['records']
    assert result['changed'] is False and result['destroy_hosts'] == []
    assert 's3cret' not in repr(result)  # no invocation: the arguments (the Azure secret) are not in the result


def test_an_import_with_work_starts_the_module_with_the_task_arguments():
    records = in_place(enabled=False, stated=['enabled'])  # the inventory disables the key: an update in place
    args = {'step': 'import', 'records': records}
    action, started = make_action(args)
    assert action.run(task_vars={})['from'] == 'module'
    assert [(s['module_name'], s['module_args']) for s in started] == [('byok.keyvault.byok_vault_step', args)]


@pytest.mark.parametrize('changes', [
    {'step': 'read'}, {'step': 'audit'}, {'step': 'kek'},
    {'delete_keks': True}, {'delete_keks': 'yes'}, {'delete_keks': 'maybe'},
    {'bundle': {'path': '/srv/bundle'}},
    {'import_parallel': 17}, {'import_parallel': 0}, {'import_parallel': 'four'}, {'import_parallel': '\u00b2'},
    {'records': 'app-ec'}, {'records': ['app-ec']},
    # what the module's argument spec refuses: the module says so (a misspelt option, a wrong choice or type)
    {'delete_kek': True}, {'auth_source': 'password'}, {'vault_type': 'standard'}, {'purge': 'maybe'},
    {'lock_timeout': 'soon'}, {'bundle': {}}, {'list_unlisted': 'perhaps'},
], ids=lambda c: '%s=%r' % next(iter(c.items())))
def test_anything_the_action_cannot_answer_for_goes_to_the_module(changes):
    args = dict({'step': 'import', 'records': in_place(), 'import_parallel': 4}, **changes)
    assert not answerable(checked(args))
    action, started = make_action(args)
    assert action.run(task_vars={})['from'] == 'module'
    assert started and started[0]['module_args'] == args


def test_check_mode_is_the_plays():
    records = in_place(verify_signature=True)  # a signature is asked for each run, except in check mode
    action, started = make_action({'step': 'import', 'records': records}, check_mode=False)
    action.run(task_vars={})
    assert len(started) == 1
    action, started = make_action({'step': 'import', 'records': records}, check_mode=True)
    assert action.run(task_vars={})['changed'] is False
    assert started == []


def test_an_import_parallel_given_as_text_is_taken_as_ansible_takes_it():
    assert answerable(checked({'step': 'import', 'records': [], 'import_parallel': '8'}))


def test_records_the_step_cannot_read_go_to_the_module():
    broken = in_place()
    del broken[0]['label']
    action, started = make_action({'step': 'import', 'records': broken})
    assert action.run(task_vars={})['from'] == 'module'
    assert len(started) == 1
