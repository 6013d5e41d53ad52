# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""byok_audit: the read-only audit's rows from the key records, written as JSON and JUnit XML on the controller."""

import datetime
import errno
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.release import __version__ as ansible_core_version
from ansible_collections.byok.keyvault.plugins.plugin_utils.action import ByokAction

from ansible_collections.byok.keyvault.plugins.action.byok_manifest import MANIFEST_FIX, collection_version, controller_facts
from ansible_collections.byok.keyvault.plugins.action.byok_manifest import manifest_dir
from ansible_collections.byok.keyvault.plugins.action.byok_manifest import private_directory, run_id, write_new
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
        directory = os.path.expanduser(manifest_dir(args['dir']))
        run = {'started': args['started'] or None, 'finished': finished, 'controller': controller_facts(),
               'versions': {'collection': collection_version(), 'ansible_core': ansible_core_version},
               'warning_days': args['warning_days'], 'unlisted_checked': args['unlisted_checked']}
        try:
            private_directory(directory)
            for dummy in range(5):
                run['run_id'] = run_id(finished)
                base = os.path.join(directory, 'byok-verify-%s' % run['run_id'])
                try:
                    write_new(base + '.json', to_bytes(audit.document(rows, run)))
                    break
                except OSError as exc:
                    if exc.errno != errno.EEXIST:
                        raise
            else:
                raise OSError(errno.EEXIST, 'no free audit file name after 5 random run ids')
            write_new(base + '.xml', to_bytes(audit.junit(rows, finished)))
        except (OSError, IOError) as exc:
            text = to_native(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
            if MANIFEST_FIX in text:
                raise AnsibleActionFail('cannot write the audit report: %s' % text)
            raise AnsibleActionFail('cannot write the audit report into %s: %s; set byok_manifest_dir (or BYOK_MANIFEST_DIR) to '
                                    'a directory the controller user can write' % (directory, text))
        result.update(json_path=base + '.json', junit_path=base + '.xml')
        return result
