# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""The HSM step's action: the vendor's environment (hsm_environment) goes into the module's process, not its arguments."""

import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.byok.keyvault.plugins.action.byok_hsm_step import ActionModule, checked_environment

from action_harness import make_action as _make_action


def make_action(args, keyword_environment=None):
    """(action, seen): seen is what the action started the module with, empty when it started none."""
    action, started = _make_action(ActionModule, args, keyword_environment=keyword_environment)
    return action, Seen(started)


class Seen(object):
    """The last module start of an action, as a mapping (module_name, module_args, environment)."""

    def __init__(self, started):
        self._started = started

    def __getitem__(self, key):
        return self._started[-1][key]

    def __bool__(self):
        return bool(self._started)


def test_the_vendor_environment_prefixes_the_module_command_and_is_not_an_argument():
    action, seen = make_action({'step': 'contact', 'records': [],
                                'hsm_environment': {'SOFTHSM2_CONF': '/etc/hsm a.conf', 'CKNFAST_LOAD_KEYS': 1}})
    action.run(task_vars={})
    assert seen['module_name'] == 'byok.keyvault.byok_hsm_step'
    assert 'hsm_environment' not in seen['module_args']
    assert seen['module_args'] == {'step': 'contact', 'records': []}
    assert "SOFTHSM2_CONF='/etc/hsm a.conf'" in seen['environment']
    assert 'CKNFAST_LOAD_KEYS=1' in seen['environment']


def test_the_task_keyword_environment_is_kept_and_the_vendor_value_wins():
    action, seen = make_action({'step': 'contact', 'records': [], 'hsm_environment': {'SOFTHSM2_CONF': '/etc/b.conf'}},
                               keyword_environment=[{'HTTPS_PROXY': 'http://proxy:3128', 'SOFTHSM2_CONF': '/etc/a.conf'}])
    action.run(task_vars={})
    assert 'HTTPS_PROXY=http://proxy:3128' in seen['environment']
    assert 'SOFTHSM2_CONF=/etc/b.conf' in seen['environment']
    assert '/etc/a.conf' not in seen['environment']


def test_without_a_vendor_environment_the_command_has_none():
    action, seen = make_action({'step': 'finish', 'records': []})
    action.run(task_vars={})
    assert seen['environment'] == ''


@pytest.mark.parametrize('value, words', [
    (['SOFTHSM2_CONF=/x'], 'give a mapping'),
    ({'1BAD': 'x'}, 'not an environment variable name'),
    ({'PKCS11_USER_PIN': '1234'}, 'names a secret'),
    ({'LUNA_PASSWORD': 'x'}, 'names a secret'),
    ({'SOFTHSM2_CONF': ['/a', '/b']}, 'one value'),
    ({'SOFTHSM2_CONF': None}, 'empty'),
])
def test_a_wrong_vendor_environment_is_refused_naming_the_variable_and_the_fix(value, words):
    with pytest.raises(AnsibleActionFail, match=words):
        checked_environment(value)
    action, seen = make_action({'step': 'contact', 'records': [], 'hsm_environment': value})
    with pytest.raises(AnsibleActionFail):
        action.run(task_vars={})
    assert not seen  # refused before the module started


def test_numbers_and_words_are_kept_as_given():
    assert checked_environment({'A': 1, 'B': 'x', 'C': True}) == {'A': 1, 'B': 'x', 'C': True}
    assert checked_environment(None) == {}
