# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An action plugin of the collection that starts its module (plugin_utils.action.ModuleAction), built for a unit test:
the module is not started; what the action would start it with is recorded."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from unittest.mock import MagicMock

from ansible.playbook.task import Task
from ansible.plugins.shell.sh import ShellModule
from ansible.template import Templar


def make_action(action_class, args, check_mode=False, keyword_environment=None, answer=None):
    """(action, started): started gets one dict per module start (module_name, module_args, environment: the prefix of
    the command that starts it); the module's result is answer (default: no change, no records)."""
    task = Task()
    task.args = args
    task.environment = keyword_environment
    connection = MagicMock()
    connection._shell = ShellModule()
    connection.has_native_async = False
    action = action_class(task, connection, MagicMock(check_mode=check_mode), loader=None, templar=Templar(loader=None),
                          shared_loader_obj=None)
    started = []

    def execute_module(module_name=None, module_args=None, task_vars=None, wrap_async=False):
        started.append(dict(module_name=module_name, module_args=module_args,
                            environment=action._compute_environment_string()))
        return dict(answer if answer is not None else {'changed': False, 'records': []})

    action._execute_module = execute_module
    action._remove_tmp_path = lambda path: None
    return action, started
