# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""The base of the collection's action plugins: they run on the controller, in-process, with a checked argument spec."""

from ansible.plugins.action import ActionBase


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
