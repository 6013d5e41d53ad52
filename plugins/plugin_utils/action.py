# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""The bases of the collection's action plugins: ByokAction runs on the controller, in-process, with a checked argument
spec; ModuleAction starts the module of the same name on the target."""

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash


class ByokAction(ActionBase):
    """An action plugin with an ARGUMENT_SPEC; subclasses implement act(args, task_vars, result)."""

    TRANSFERS_FILES = False
    _requires_connection = False
    ARGUMENT_SPEC = {}

    def run(self, tmp=None, task_vars=None):
        result = super(ByokAction, self).run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        return self.act(args, task_vars or {}, result)

    def act(self, args, task_vars, result):
        raise NotImplementedError


class ModuleAction(ActionBase):
    """The action plugin of a module that runs on the target (byok_hsm_step, byok_vault_step): start_module() starts it
    as Ansible's default action does (async included); a subclass's act(args, task_vars, result) decides when, and with
    what arguments."""

    _supports_check_mode = True
    _supports_async = True
    MODULE = None  #: the module's FQCN

    def run(self, tmp=None, task_vars=None):
        result = super(ModuleAction, self).run(tmp, task_vars)
        del tmp
        return self.act(dict(self._task.args), task_vars, result)

    def act(self, args, task_vars, result):
        return self.start_module(args, task_vars, result)

    def start_module(self, args, task_vars, result):
        """result merged with the module's own result, the module started with args."""
        wrap_async = self.runs_async()
        result = merge_hash(result, self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars,
                                                         wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def runs_async(self):
        """Whether the task runs the module asynchronously (the module must then run, as started by start_module)."""
        return bool(self._task.async_val and not self._connection.has_native_async)
