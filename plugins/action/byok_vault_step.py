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
same function the module runs (record.import_without_vault), after checking the task's arguments against the module's
own argument spec (azure_options), and starts the module whenever a vault has work, or when anything in the arguments
is not what it can answer for (arguments the spec refuses, another step, the air-gapped bundle, delete_keks, an
import_parallel out of range, records the step cannot read): the module then answers as always.
"""

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.utils.vars import merge_hash

from ansible_collections.byok.keyvault.plugins.module_utils import record
from ansible_collections.byok.keyvault.plugins.module_utils.azure_options import azure_argument_spec, vault_step_argument_spec
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import parallel_in_range
from ansible_collections.byok.keyvault.plugins.plugin_utils.action import ModuleAction


def checked(args):
    """The arguments as the module's argument spec takes them (its types, choices and defaults), or None when the spec
    refuses them: the module then says why, as always."""
    spec = azure_argument_spec()
    spec.update(vault_step_argument_spec())
    result = ArgumentSpecValidator(spec).validate(dict(args))
    return None if result.error_messages else result.validated_parameters


def answerable(args):
    """Whether the arguments (as checked() gives them: records a list of mappings) are an import step this action may
    answer without the module: no air-gapped bundle, no KEK to delete, import_parallel in range."""
    if args is None or args['step'] != 'import' or args['bundle'] or args['delete_keks']:
        return False
    return parallel_in_range(args['import_parallel'])


def quiet_import(records, check_mode):
    """record.import_without_vault, or None (the module then runs) when it cannot compute the result: records the
    module would fail on too (a record without a field the step reads), which the module reports in its own words."""
    try:
        return record.import_without_vault(records, check_mode)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


class ActionModule(ModuleAction):

    MODULE = 'byok.keyvault.byok_vault_step'

    def act(self, args, task_vars, result):
        if not self.runs_async() and args.get('step') == 'import':
            valid = checked(args)
            if answerable(valid):
                quiet = quiet_import(valid['records'], bool(self._play_context.check_mode))
                if quiet is not None:
                    return merge_hash(result, quiet)
        return self.start_module(args, task_vars, result)
