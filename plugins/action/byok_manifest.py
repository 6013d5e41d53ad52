# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""byok_manifest: write the audit manifest of a transfer on the controller, without a module run per file."""

import binascii
import datetime
import errno
import json
import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible_collections.byok.keyvault.plugins.plugin_utils.action import ByokAction

from ansible_collections.byok.keyvault.plugins.module_utils import owned_dir
from ansible_collections.byok.keyvault.plugins.module_utils import report
from ansible_collections.byok.keyvault.plugins.module_utils.byok_file import atomic_write

SCHEMA = 'byok.keyvault/manifest/1'
#: what to do about a manifest directory that is not this user's own
MANIFEST_FIX = ('point byok_manifest_dir (or BYOK_MANIFEST_DIR) at a directory of this user that only it may write, by its '
                'real path (mkdir -m 0700 DIR)')

ARGUMENT_SPEC = dict(
    dir=dict(type='path', required=True),
    rows=dict(type='list', elements='dict', required=True),
    hosts_without_report=dict(type='list', elements='str', default=[]),
)


def run_id(finished):
    """The id of one run in the manifest names: its UTC finish time and a random suffix (two runs never share one)."""
    return '%s-%s' % (finished.replace(':', ''), binascii.hexlify(os.urandom(4)).decode('ascii'))


def private_directory(directory):
    """Create the manifest directory (0700) when missing, or check it: no symbolic link on its path, owned by this user
    and not writable by group or others, under directories of root or this user (owned_dir); never chmod-ed."""
    try:
        owned_dir.check_directory(directory, create=True)
    except owned_dir.UnsafeDirectory as exc:
        raise OSError(errno.EPERM, '%s; %s' % (exc, MANIFEST_FIX))


def write_new(path, data, mode=0o600):
    """Write bytes to a new file atomically, never replacing an existing one (byok_file.atomic_write, replace=False),
    and make the directory entry durable."""
    atomic_write(path, data, mode=mode, replace=False)
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def manifest_documents(rows, silent_hosts, finished, check_mode):
    """(JSON text, summary text) of a run: the same rows, for machines and for people."""
    document = {'schema': SCHEMA, 'finished': finished, 'check_mode': check_mode,
                'hosts_without_report': silent_hosts, 'keys': rows}
    lines = ['byok.keyvault transfer finished %s%s' % (finished, ' (check mode: nothing was changed)' if check_mode else '')]
    lines.extend(report.table(rows))
    if silent_hosts:
        lines.append('hosts without a report (failed before planning): %s' % ', '.join(silent_hosts))
    return json.dumps(document, indent=4, sort_keys=True) + '\n', '\n'.join(lines) + '\n'


class ActionModule(ByokAction):

    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def act(self, args, task_vars, result):
        finished = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        result.update(changed=False, finished=finished, json_path=None, text_path=None, run_id=None)
        if self._task.check_mode:
            result['msg'] = 'check mode: no manifest written'
            return result
        directory = os.path.expanduser(args['dir'])
        json_text, summary = manifest_documents(args['rows'], args['hosts_without_report'], finished, False)
        try:
            private_directory(directory)
            for dummy in range(5):
                base = os.path.join(directory, 'byok-transfer-%s' % run_id(finished))
                try:
                    write_new(base + '.json', to_bytes(json_text))
                    break
                except OSError as exc:
                    if exc.errno != errno.EEXIST:
                        raise
            else:
                raise OSError(errno.EEXIST, 'no free manifest name after 5 random run ids')
            write_new(base + '.txt', to_bytes(summary))
        except (OSError, IOError) as exc:
            text = to_native(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
            if MANIFEST_FIX in text:
                raise AnsibleActionFail('cannot write the audit manifest: %s' % text)
            raise AnsibleActionFail('cannot write the audit manifest into %s: %s; set byok_manifest_dir (or BYOK_MANIFEST_DIR) to a '
                                    'directory the controller user can write' % (directory, text))
        result.update(json_path=base + '.json', text_path=base + '.txt', run_id=os.path.basename(base)[len('byok-transfer-'):])
        return result
