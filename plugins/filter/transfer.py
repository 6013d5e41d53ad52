# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""Filters of the transfer, staged and report roles: thin wrappers over module_utils/record.py, bundle.py and report.py.

The transfer's key records go from step to step as the modules return them; these filters gather a host's records
(byok_records, byok_stopped) and derive the report from them (byok_report), each documented in plugins/filter/<name>.yml.
"""

import shutil
from collections.abc import Mapping

# Pure Python only: filters load in every worker, the Azure SDK would cost a second each time.
from ansible_collections.byok.keyvault.plugins.module_utils import bundle
from ansible_collections.byok.keyvault.plugins.module_utils import record
from ansible_collections.byok.keyvault.plugins.module_utils import report


def byok_records(hosts_vars):
    """Every key record of these hosts (their hostvars), each host's as its newest step left them."""
    return record.collect(hosts_vars)


def byok_stopped(host_vars, failed_task=None, failed_result=None):
    """A host's key records with the reason it stopped (in the rescue: ansible_failed_task, ansible_failed_result)."""
    task = failed_task if isinstance(failed_task, Mapping) else {}
    result = failed_result if isinstance(failed_result, Mapping) else {}
    # a step whose module gave records said in them what it did; only one that gave none is noted failed for its keys
    failed_step = None if isinstance(result.get('records'), list) else record.step_of(task)
    return record.stopped(record.latest(host_vars), ' '.join(str(result.get('msg') or 'failed').split()), failed_step,
                          task.get('name'))


def byok_rows(records):
    """The report row of each key record (the staged import's records, which are every HSM host's)."""
    return record.rows(records)


def byok_report(hosts_vars, outside_rows=None):
    return record.report_of(hosts_vars, outside_rows)


def byok_bundle_items(host_plan, vault, bundle_dir):
    return bundle.bundle_items(host_plan, vault, bundle_dir)


def byok_wrap_files(keys, directory):
    return bundle.wrap_files(keys, directory)


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


class FilterModule(object):
    def filters(self):
        return dict((f.__name__, f) for f in (
            byok_records, byok_stopped, byok_rows, byok_report, byok_bundle_items, byok_wrap_files, byok_outside_rows, byok_import_rows,
            byok_table, byok_details, byok_closing_message))
