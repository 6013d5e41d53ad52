# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""Filters of the playbook hsm_keys.yml: thin wrappers over module_utils/token_keys.py, each documented in its own
plugins/filter/<name>.yml."""

from ansible_collections.byok.keyvault.plugins.module_utils import token_keys


def byok_token_reads(states):
    return token_keys.vault_reads(states)


def byok_token_rows(states, vault_state):
    return token_keys.rows(states, vault_state)


def byok_token_removals(table, host):
    return token_keys.removals(table, host)


class FilterModule(object):
    def filters(self):
        return {
            'byok_token_reads': byok_token_reads,
            'byok_token_rows': byok_token_rows,
            'byok_token_removals': byok_token_removals,
        }
