# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""Filters of the transfer, staged and report roles: thin wrappers over module_utils/fleet.py and report.py.

Each takes the plan (registered by byok.keyvault.plan) and the results the roles registered, and returns plain
data for the next step; each is documented in its own plugins/filter/<name>.yml.
"""

import shutil

# Pure Python only: filters load in every worker, the Azure SDK would cost a second each time.
from ansible_collections.byok.keyvault.plugins.module_utils import fleet
from ansible_collections.byok.keyvault.plugins.module_utils import report
from ansible_collections.byok.keyvault.plugins.module_utils import sealing


def byok_per_host(registered, plan):
    return fleet.per_host(registered, plan)


def byok_kek_vaults(plan, vault_state, hosts=None):
    return fleet.kek_vaults(plan, vault_state, hosts)


def byok_vault_problems(host_plan, vault_state, keks):
    return fleet.vault_problems(host_plan, vault_state, keks)


def byok_decide(host_plan, keygen, vault_state, keks):
    return fleet.decide(host_plan, keygen, vault_state, keks)


def byok_outbox(work, wrapped, check_mode=False):
    return fleet.outbox(work, wrapped, check_mode)


def byok_imports(hosts_vars, plan):
    return fleet.imports_by_vault(hosts_vars, plan)


def byok_bundle_items(host_plan, vault, bundle_dir):
    return fleet.bundle_items(host_plan, vault, bundle_dir)


def byok_wrap_files(keys, directory):
    return fleet.wrap_files(keys, directory)


def byok_report_rows(work, host, keygen=None, imports=None, wrapped=None, keks=None, vault_state=None, host_plan=None,
                     failure=None, verify_signature=False):
    return report.host_rows(work, host, keygen, imports, wrapped, keks, vault_state, host_plan, failure, verify_signature)


def byok_outside_rows(hosts, hostvars):
    """Rows of the keys of HSM hosts this run did not plan (outside its --limit), from their byok_keys."""
    keys = {}
    for host in hosts or []:
        try:
            value = hostvars[host].get('byok_keys') or []
            keys[host] = [dict(k) for k in value if isinstance(k, dict)] if isinstance(value, list) else 'byok_keys is not a list'
        except Exception as exc:  # an inventory value that does not resolve: say so, it is not this run's to fix
            keys[host] = ' '.join(str(exc).split())[:200]
    return report.outside_rows(keys)


def byok_failed_rows(entries, host, message):
    return report.failed_rows(entries, host, message)


def byok_import_rows(results, verify_signature=False):
    return report.import_rows(results, verify_signature=verify_signature)


#: characters the default and YAML callbacks put around each line of a debug message list (indentation, "- ", quotes)
CALLBACK_MARGIN = 8


def byok_table(rows, columns=None):
    if columns in (None, '', 0):
        columns = shutil.get_terminal_size((80, 24)).columns
    return report.table(rows, max(40, int(columns) - CALLBACK_MARGIN))


def byok_details(rows):
    return report.details(rows)


def byok_closing_message(rows, silent_hosts=None, manifest_path=None, failed_hosts=None):
    return report.closing_message(rows, silent_hosts, manifest_path, failed_hosts)


def byok_seal_items(rows, host_plan, keygen=None, check_mode=False):
    return sealing.seal_items(rows, host_plan, keygen, check_mode)


def byok_sealed_rows(rows, keygen=None, sealed=None, check_mode=False):
    return sealing.sealed_rows(rows, keygen, sealed, check_mode)


class FilterModule(object):
    def filters(self):
        return dict((f.__name__, f) for f in (
            byok_per_host, byok_kek_vaults, byok_vault_problems, byok_decide, byok_outbox, byok_imports, byok_bundle_items, byok_wrap_files,
            byok_report_rows, byok_outside_rows, byok_failed_rows, byok_import_rows, byok_table, byok_details, byok_closing_message,
            byok_seal_items, byok_sealed_rows))
