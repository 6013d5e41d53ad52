# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""Filters of the plan: a module's message in the words of the inventory (documented in byok_inventory_terms.yml)."""

from ansible_collections.byok.keyvault.plugins.module_utils import inventory


def byok_inventory_terms(message):
    return inventory.in_inventory_terms(' '.join(str(message or '').split()))


class FilterModule(object):

    def filters(self):
        return {'byok_inventory_terms': byok_inventory_terms}
