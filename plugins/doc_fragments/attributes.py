# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

#: what each attribute means, written once: every fragment below gives these descriptions with a kind's support levels
_DESCRIPTIONS = {
    'check_mode': 'Can run in C(check_mode) and return changed status prediction without modifying the HSM or the vault.',
    'diff_mode': 'Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.',
    'idempotent': [
        'When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.',
        'This assumes that the HSM and the vault are not changed by anything else in between.',
    ],
}


def _attributes(details=None, extra=None, **support):
    """A fragment (JSON, which is YAML) of the attributes with their descriptions, support levels and details, and the
    extra attributes given."""
    attributes = dict(extra or {})
    for name, description in _DESCRIPTIONS.items():
        attributes[name] = {'description': description}
        if name in support:
            attributes[name]['support'] = support[name]
            if details:
                attributes[name]['details'] = [details]
    return json.dumps({'options': {}, 'attributes': attributes}, indent=2, sort_keys=True)


class ModuleDocFragment(object):

    # the descriptions alone (the kinds below include them, so a module names only its kind)
    DOCUMENTATION = _attributes()

    # a module that only reads
    INFO_MODULE = _attributes(details='This action does not modify state.', check_mode='full', diff_mode='N/A',
                              idempotent='full')

    # a module that changes the HSM or the vault and shows it in --diff
    FULL = _attributes(check_mode='full', diff_mode='full', idempotent='full')

    # the same without --diff
    NO_DIFF = _attributes(check_mode='full', diff_mode='none', idempotent='full')

    # an action plugin that runs on the controller (with the descriptions, for a module that gives its own levels)
    ACTION_PLUGIN = _attributes(extra={
        'action': {'description': 'Runs as an action plugin on the controller.', 'support': 'full'},
        'async': {'description': 'Cannot run asynchronously.', 'support': 'none'},
    })
