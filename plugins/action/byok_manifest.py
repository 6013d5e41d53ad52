# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""byok_manifest: write the audit manifest of a transfer on the controller, without a module run per file."""

import datetime
import json
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.action import ActionBase

from ansible_collections.byok.keyvault.plugins.module_utils import report
from ansible_collections.byok.keyvault.plugins.module_utils.byok_file import atomic_write

SCHEMA = 'byok.keyvault/manifest/1'

ARGUMENT_SPEC = dict(
    dir=dict(type='path', required=True),
    rows=dict(type='list', elements='dict', required=True),
    hosts_without_report=dict(type='list', elements='str', default=[]),
)


def manifest_documents(rows, silent_hosts, finished, check_mode):
    """(JSON text, summary text) of a run: the same rows, for machines and for people."""
    document = {'schema': SCHEMA, 'finished': finished, 'check_mode': check_mode,
                'hosts_without_report': silent_hosts, 'keys': rows}
    lines = ['byok.keyvault transfer finished %s%s' % (finished, ' (check mode: nothing was changed)' if check_mode else '')]
    lines.extend(report.table(rows))
    if silent_hosts:
        lines.append('hosts without a report (failed before planning): %s' % ', '.join(silent_hosts))
    return json.dumps(document, indent=4, sort_keys=True) + '\n', '\n'.join(lines) + '\n'


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        finished = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        result.update(changed=False, finished=finished, json_path=None, text_path=None)
        if self._task.check_mode:
            result['msg'] = 'check mode: no manifest written'
            return result
        directory = os.path.expanduser(args['dir'])
        base = os.path.join(directory, 'byok-transfer-%s' % finished.replace(':', ''))
        json_text, summary = manifest_documents(args['rows'], args['hosts_without_report'], finished, False)
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            atomic_write(base + '.json', to_bytes(json_text))
            atomic_write(base + '.txt', to_bytes(summary))
        except (OSError, IOError) as exc:
            raise AnsibleActionFail('cannot write the audit manifest into %s: %s; set byok_manifest_dir (or BYOK_MANIFEST_DIR) to a '
                                    'directory the controller user can write' % (directory, to_native(exc)))
        result.update(json_path=base + '.json', text_path=base + '.txt')
        return result
