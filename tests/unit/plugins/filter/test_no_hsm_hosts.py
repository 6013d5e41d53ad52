# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""An inventory without HSM hosts (group byok_hsm_hosts missing or empty) is named, with its cause and the fix."""

from ansible_collections.byok.keyvault.plugins.filter.plan import byok_no_hsm_hosts


def test_an_inventory_with_hsm_hosts_has_nothing_to_say():
    assert byok_no_hsm_hosts({'all': ['hsm1'], 'byok_hsm_hosts': ['hsm1']}, ['inventory.yml']) == ''


def test_a_misspelt_group_is_named_with_the_group_meant(tmp_path):
    source = tmp_path / 'inventory.yml'
    source.write_text('{}')
    message = byok_no_hsm_hosts({'all': ['hsm1'], 'ungrouped': [], 'byok_hsm_host': ['hsm1']}, [str(source)])
    assert message == ('the inventory has no HSM hosts: group byok_hsm_hosts is missing (inventory: %s; did you mean group '
                       'byok_hsm_host?). Put each HSM host in group byok_hsm_hosts (docs/inventory.md); nothing was done'
                       % source)


def test_a_wrong_inventory_path_is_named(tmp_path):
    message = byok_no_hsm_hosts({'all': [], 'ungrouped': []}, [str(tmp_path / 'nowhere.yml')])
    assert 'inventory source %s does not exist (check -i)' % (tmp_path / 'nowhere.yml') in message
    assert 'did you mean' not in message


def test_an_empty_group_is_said_to_be_empty():
    message = byok_no_hsm_hosts({'all': [], 'byok_hsm_hosts': []}, None)
    assert 'group byok_hsm_hosts is empty. Put' in message
