# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""byok_audit: the read-only audit's rows from the key records, written as JSON and JUnit XML on the controller."""

import datetime

from ansible.errors import AnsibleActionFail
from ansible.release import __version__ as ansible_core_version
from ansible_collections.byok.keyvault.plugins.plugin_utils.action import ByokAction

from ansible_collections.byok.keyvault.plugins.action.byok_manifest import collection_version, controller_facts
from ansible_collections.byok.keyvault.plugins.action.byok_manifest import manifest_dir, write_run_files
from ansible_collections.byok.keyvault.plugins.module_utils import audit

ARGUMENT_SPEC = dict(
    dir=dict(type='path'),
    records=dict(type='list', elements='dict', required=True),
    unlisted=dict(type='list', elements='dict', default=[]),
    listing_failures=dict(type='list', elements='str', default=[]),
    warning_days=dict(type='int', default=audit.DEFAULT_WARNING_DAYS),
    unlisted_checked=dict(type='bool', default=True),
    started=dict(type='str'),
)


class ActionModule(ByokAction):

    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def act(self, args, task_vars, result):
        now = datetime.datetime.now(datetime.timezone.utc)
        finished = now.strftime('%Y-%m-%dT%H:%M:%SZ')
        if args['warning_days'] < 0:
            raise AnsibleActionFail('byok_expiry_warning_days is %d; give the days ahead to warn of an expiry, 0 or more'
                                    % args['warning_days'])
        rows = audit.rows(args['records'], args['unlisted'], now, args['warning_days'])
        rows += [audit.listing_row(line) for line in args['listing_failures']]
        drift = any(r['status'] == audit.DRIFT for r in rows)
        lines = audit.table(rows)
        if not args['unlisted_checked']:
            lines.append('vault keys no inventory entry names: not looked for (the run is limited with --limit)')
        result.update(changed=False, rows=rows, drift=drift, summary=audit.summary(rows), lines=lines,
                      json_path=None, junit_path=None, finished=finished, unlisted_checked=args['unlisted_checked'])
        if self._task.check_mode:
            return result
        run = {'started': args['started'] or None, 'finished': finished, 'controller': controller_facts(),
               'versions': {'collection': collection_version(), 'ansible_core': ansible_core_version},
               'warning_days': args['warning_days'], 'unlisted_checked': args['unlisted_checked']}

        def documents(rid):
            return [('.json', audit.document(rows, dict(run, run_id=rid))), ('.xml', audit.junit(rows, finished))]

        base = write_run_files(manifest_dir(args['dir']), 'byok-verify-', finished, documents, 'the audit report')
        result.update(json_path=base + '.json', junit_path=base + '.xml')
        return result
