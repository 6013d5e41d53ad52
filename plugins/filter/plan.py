# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""Filters of the plan and the vendor roles: a module's message in the words of the inventory, the variables of an
environment named as secrets, the default library paths of a vendor profile, and why an inventory has no HSM hosts
(documented in byok_inventory_terms.yml, byok_secret_variables.yml, byok_vendor_libraries.yml and byok_no_hsm_hosts.yml)."""

import os

from ansible_collections.byok.keyvault.plugins.module_utils import inventory
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


#: the group of the HSM hosts every playbook of the collection runs on
HSM_GROUP = 'byok_hsm_hosts'


def byok_no_hsm_hosts(groups, sources=None):
    """Why an inventory (its groups: the magic variable groups) has no HSM host, in one line naming the fix; '' when
    group byok_hsm_hosts has one."""
    groups = groups or {}
    if groups.get(HSM_GROUP):
        return ''
    missing = [str(s) for s in sources or [] if '://' not in str(s) and not os.path.exists(str(s))]
    details = (['inventory source %s does not exist (check -i)' % ', '.join(missing)] if missing else
               ['inventory: %s' % ', '.join(str(s) for s in sources)] if sources else [])
    near = inventory.nearest(HSM_GROUP, [g for g in groups if g not in ('all', 'ungrouped', HSM_GROUP)], cutoff=0.6)
    if near:
        details.append('did you mean group %s?' % near)
    what = 'is empty' if HSM_GROUP in groups else 'is missing'
    return ('the inventory has no HSM hosts: group %s %s%s. Put each HSM host in group %s (docs/inventory.md); nothing '
            'was done' % (HSM_GROUP, what, ' (%s)' % '; '.join(details) if details else '', HSM_GROUP))


class FilterModule(object):

    def filters(self):
        return {'byok_inventory_terms': byok_inventory_terms, 'byok_secret_variables': byok_secret_variables,
                'byok_vendor_libraries': byok_vendor_libraries, 'byok_no_hsm_hosts': byok_no_hsm_hosts}
