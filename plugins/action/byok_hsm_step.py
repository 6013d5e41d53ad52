# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""byok_hsm_step: the module on the HSM host, started with the vendor's environment (option hsm_environment).

The vendor's variables (SOFTHSM2_CONF, ChrystokiConfigurationPath, LD_LIBRARY_PATH, ...) must be in the environment the
module's process starts with: the loader reads LD_LIBRARY_PATH before any Python runs.  As the task keyword environment
would, this action prefixes them to the command that starts the module; as an option of the HSM step they come with the
other PKCS#11 options (module_defaults), so no HSM step can run without them and the controller's vault steps never get
them.  The module itself never sees the option.
"""

from ansible.errors import AnsibleActionFail
from ansible.module_utils.six import string_types

from ansible_collections.byok.keyvault.plugins.module_utils import user_terms
from ansible_collections.byok.keyvault.plugins.plugin_utils.action import ModuleAction

OPTION = 'hsm_environment'


def checked_environment(value):
    """The hsm_environment option as {name: str}; AnsibleActionFail naming the variable and the fix otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AnsibleActionFail('%s is %s; give a mapping of environment variable names to values (byok_hsm_environment)'
                                % (OPTION, type(value).__name__))
    out = {}
    for name, item in value.items():
        if not isinstance(name, string_types) or not user_terms.ENV_NAME_RE.match(name):
            raise AnsibleActionFail('%s: %r is not an environment variable name; use letters, digits and _ (not first a '
                                    'digit)' % (OPTION, name))
        if user_terms.secret_variables({name: item}) or name == user_terms.OPTION_ENVIRONMENT['user_pin']:
            raise AnsibleActionFail('%s: %s names a secret, and the environment is put on the command line that starts the '
                                    'module (ps on the HSM host, -vvv); give the PIN as user_pin (byok_user_pin)' % (OPTION, name))
        if isinstance(item, (dict, list)) or item is None:
            raise AnsibleActionFail('%s.%s is %s; give the variable one value (a string or a number)'
                                    % (OPTION, name, 'empty' if item is None else type(item).__name__))
        out[name] = item  # a number or a word as the keyword environment gives it (env_prefix makes it text)
    return out


class ActionModule(ModuleAction):

    MODULE = 'byok.keyvault.byok_hsm_step'

    def act(self, args, task_vars, result):
        self._hsm_environment = checked_environment(args.pop(OPTION, None))
        return self.start_module(args, task_vars, result)

    def _compute_environment_string(self, raw_environment_out=None):
        """The task's environment (keyword), then the vendor's (hsm_environment), as the prefix of the module's command."""
        environment = {}
        super(ActionModule, self)._compute_environment_string(environment)
        environment.update(getattr(self, '_hsm_environment', {}))
        if isinstance(raw_environment_out, dict):
            raw_environment_out.clear()
            raw_environment_out.update(environment)
        return self._connection._shell.env_prefix(**environment)
