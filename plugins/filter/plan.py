# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""Filters of the plan and the vendor roles: a module's message in the words of the inventory, the variables of an
environment named as secrets, and the default library paths of a vendor profile (documented in byok_inventory_terms.yml,
byok_secret_variables.yml and byok_vendor_libraries.yml)."""

from ansible_collections.byok.keyvault.plugins.module_utils import user_terms
from ansible_collections.byok.keyvault.plugins.module_utils import vendors


def byok_inventory_terms(message):
    return user_terms.in_inventory_terms(' '.join(str(message or '').split()))


def byok_secret_variables(environment):
    """The variables of an environment whose names say they hold a secret (PKCS11_USER_PIN, ...)."""
    return user_terms.secret_variables(environment)


def byok_vendor_libraries(vendor):
    """The default PKCS#11 library paths of a vendor profile, in the order the modules try them."""
    return list(vendors.get_profile(vendor)['library_paths'])


class FilterModule(object):

    def filters(self):
        return {'byok_inventory_terms': byok_inventory_terms, 'byok_secret_variables': byok_secret_variables,
                'byok_vendor_libraries': byok_vendor_libraries}
