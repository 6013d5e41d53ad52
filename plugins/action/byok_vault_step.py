# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""byok_vault_step: the module, except for an import step that gives no vault anything to do.

The import step of a run in which nothing moves (every key in place with its stated attributes, nothing retired, no
signature asked for) makes no vault request: it only notes on each record that nothing was asked of its vault
(record.import_step with no requests).  Starting a module process for that, with the Azure SDK loaded and a credential
built for no request, was a second of every such run.  This action computes that result on the controller with the
same function the module runs (record.import_without_vault) and starts the module whenever a vault has work, or when
anything in the arguments is not what it can answer for (another step, the air-gapped bundle, delete_keks, an
import_parallel out of range, records that are not a list of mappings): the module then answers as always.
"""

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.module_utils.six import integer_types, string_types
from ansible.utils.vars import merge_hash

from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import MAX_PARALLEL
from ansible_collections.byok.keyvault.plugins.plugin_utils.action import ModuleAction

from collections.abc import Mapping


def answerable(args):
    """Whether the arguments are an import step this action may answer without the module (see the module docstring)."""
    if args.get('step') != 'import' or args.get('bundle'):
        return False
    try:
        if boolean(args.get('delete_keks', False), strict=True):
            return False
    except TypeError:
        return False  # not a boolean: the module's argument spec says so
    parallel = args.get('import_parallel', 4)
    if isinstance(parallel, string_types) and parallel.strip().isdigit():
        parallel = int(parallel)
    if isinstance(parallel, bool) or not isinstance(parallel, integer_types) or not 1 <= parallel <= MAX_PARALLEL:
        return False
    records = args.get('records')
    return isinstance(records, list) and all(isinstance(r, Mapping) for r in records)


class ActionModule(ModuleAction):

    MODULE = 'byok.keyvault.byok_vault_step'

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        if not self.runs_async() and answerable(args):
            # imported here: Ansible compiles a collection's Python on every import, in each task's process, and only
            # an import step needs the records' rules
            from ansible_collections.byok.keyvault.plugins.module_utils import record
            quiet = record.import_without_vault(args['records'], bool(self._play_context.check_mode))
            if quiet is not None:
                return merge_hash(result, quiet)
        return self.start_module(args, task_vars, result)
