# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""Filters of the transfer, staged and report roles: thin wrappers over module_utils/fleet.py and report.py.

Each takes the plan (registered by byok.keyvault.plan) and the results the roles registered, and returns plain
data for the next step; each is documented in its own plugins/filter/<name>.yml.
"""

# Pure Python only: filters load in every worker, the Azure SDK would cost a second each time.
from ansible_collections.byok.keyvault.plugins.module_utils import fleet
from ansible_collections.byok.keyvault.plugins.module_utils import report
from ansible_collections.byok.keyvault.plugins.module_utils import sealing


def byok_per_host(registered, plan):
    return fleet.per_host(registered, plan)


def byok_kek_vaults(plan, vault_state):
    return fleet.kek_vaults(plan, vault_state)


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


def byok_report_rows(work, host, keygen=None, imports=None, wrapped=None, keks=None):
    return report.host_rows(work, host, keygen, imports, wrapped, keks)


def byok_failed_rows(entries, host, message):
    return report.failed_rows(entries, host, message)


def byok_import_rows(results):
    return report.import_rows(results)


def byok_table(rows):
    return report.table(rows)


def byok_details(rows):
    return report.details(rows)


def byok_closing_message(rows, silent_hosts=None, manifest_path=None):
    return report.closing_message(rows, silent_hosts, manifest_path)


def byok_seal_items(rows, host_plan, keygen=None, check_mode=False):
    return sealing.seal_items(rows, host_plan, keygen, check_mode)


def byok_sealed_rows(rows, keygen=None, sealed=None, check_mode=False):
    return sealing.sealed_rows(rows, keygen, sealed, check_mode)


class FilterModule(object):
    def filters(self):
        return dict((f.__name__, f) for f in (
            byok_per_host, byok_kek_vaults, byok_vault_problems, byok_decide, byok_outbox, byok_imports, byok_bundle_items, byok_wrap_files,
            byok_report_rows, byok_failed_rows, byok_import_rows, byok_table, byok_details, byok_closing_message,
            byok_seal_items, byok_sealed_rows))
