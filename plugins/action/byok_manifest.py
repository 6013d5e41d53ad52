# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""byok_manifest: write the audit manifest of a transfer on the controller, without a module run per file."""

import binascii
import datetime
import errno
import getpass
import json
import os
import socket

from ansible.release import __version__ as ansible_core_version

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible_collections.byok.keyvault.plugins.plugin_utils.action import ByokAction

from ansible_collections.byok.keyvault.plugins.module_utils import owned_dir
from ansible_collections.byok.keyvault.plugins.module_utils import report
from ansible_collections.byok.keyvault.plugins.module_utils.byok_file import atomic_write

SCHEMA = 'byok.keyvault/manifest/2'
#: what to do about a manifest directory that is not this user's own
MANIFEST_FIX = ('point byok_manifest_dir (or BYOK_MANIFEST_DIR) at a directory of this user that only it may write, by its '
                'real path (mkdir -m 0700 DIR)')

ARGUMENT_SPEC = dict(
    dir=dict(type='path', required=True),
    rows=dict(type='list', elements='dict', required=True),
    hosts_without_report=dict(type='list', elements='str', default=[]),
    hosts_failed=dict(type='dict', default={}),
    started=dict(type='str'),
)
#: where the manifests go when neither byok_manifest_dir nor BYOK_MANIFEST_DIR says
DEFAULT_DIR = '~/byok-keyvault/manifests'


def manifest_dir(value):
    """The manifest directory: byok_manifest_dir, else BYOK_MANIFEST_DIR, else DEFAULT_DIR (not expanded)."""
    return value or os.environ.get('BYOK_MANIFEST_DIR') or DEFAULT_DIR


COLLECTION_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')


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


def collection_version():
    """The version of this collection: its MANIFEST.json when installed, else the galaxy.yml of a checkout."""
    try:
        with open(os.path.join(COLLECTION_ROOT, 'MANIFEST.json'), 'rb') as f:
            return json.loads(f.read().decode('utf-8'))['collection_info']['version']
    except (IOError, OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(COLLECTION_ROOT, 'galaxy.yml'), 'rb') as f:
            for line in f.read().decode('utf-8').splitlines():
                if line.startswith('version:'):
                    return line.split(':', 1)[1].strip().strip('\'"')
    except (IOError, OSError, ValueError):
        pass
    return None


def controller_facts():
    """Where the manifest was written: the controller's host name and the user the run ran as."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name and no passwd entry (a container with an arbitrary uid)
        user = 'uid %d' % os.getuid()
    return {'host': socket.gethostname(), 'user': user}


def manifest_documents(rows, silent_hosts, finished, check_mode, run=None):
    """(JSON text, summary text) of a run: the same rows, for machines and for people.

    run holds what identifies the run: run_id, started, controller {host, user}, versions {collection, ansible_core}
    and hosts_failed {host: why it stopped}; the vaults (each one's KEK kid and fingerprint) come from the rows."""
    run = run or {}
    document = {'schema': SCHEMA, 'run_id': run.get('run_id'), 'started': run.get('started'), 'finished': finished,
                'check_mode': check_mode, 'controller': run.get('controller'), 'versions': run.get('versions'),
                'vaults': report.vaults_of(rows), 'hosts_without_report': silent_hosts,
                'hosts_failed': run.get('hosts_failed') or {}, 'keys': rows}
    lines = ['byok.keyvault transfer finished %s%s' % (finished, ' (check mode: nothing was changed)' if check_mode else ''),
             'run %s, started %s' % (run.get('run_id') or '-', run.get('started') or '-')]
    controller, versions = run.get('controller') or {}, run.get('versions') or {}
    lines.append('controller %s, user %s; byok.keyvault %s, ansible-core %s' % (
        controller.get('host') or '-', controller.get('user') or '-', versions.get('collection') or '-',
        versions.get('ansible_core') or '-'))
    for name, vault in sorted(document['vaults'].items()):
        lines.append('vault %s (%s): KEK %s, fingerprint %s' % (
            name, vault.get('url') or '-', vault.get('kek_kid') or 'none in this run', vault.get('kek_fingerprint') or '-'))
    lines.extend(report.table(rows))
    lines.extend(report.details(rows))
    if silent_hosts:
        lines.append('hosts without a report (failed before planning): %s' % ', '.join(silent_hosts))
    for host, why in sorted((run.get('hosts_failed') or {}).items()):
        lines.append('host %s stopped: %s' % (host, why))
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
        run = {'started': args['started'] or None, 'controller': controller_facts(), 'hosts_failed': args['hosts_failed'],
               'versions': {'collection': collection_version(), 'ansible_core': ansible_core_version}}

        def documents(rid):
            json_text, summary = manifest_documents(args['rows'], args['hosts_without_report'], finished, False,
                                                    dict(run, run_id=rid))
            return [('.json', json_text), ('.txt', summary)]

        try:
            base = write_run_files(args['dir'], 'byok-transfer-', finished, documents, 'the audit manifest')
        except AnsibleActionFail as exc:
            # a failed result, not an exception: the report role prints the table first and fails the run at its end
            why = to_native(getattr(exc, 'message', None) or exc)
            result.update(failed=True, msg=why, not_written=why)
            return result
        result.update(json_path=base + '.json', text_path=base + '.txt', run_id=os.path.basename(base)[len('byok-transfer-'):])
        return result


def write_run_files(directory, prefix, finished, documents, what):
    """Write the files of one run into the private directory (created 0700 when missing, refused when not this user's
    own): documents(run_id) gives [(suffix, text)], the first written under a name no other run has taken (a fresh
    random run id otherwise).  Returns the path without its suffix; AnsibleActionFail naming what and the fix."""
    directory = os.path.expanduser(directory)
    try:
        private_directory(directory)
        for dummy in range(5):
            rid = run_id(finished)
            files = documents(rid)
            base = os.path.join(directory, prefix + rid)
            try:
                write_new(base + files[0][0], to_bytes(files[0][1]))
                break
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
        else:
            raise OSError(errno.EEXIST, 'no free file name after 5 random run ids')
        for suffix, text in files[1:]:
            write_new(base + suffix, to_bytes(text))
    except (OSError, IOError) as exc:
        text = to_native(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
        if MANIFEST_FIX in text:
            raise AnsibleActionFail('cannot write %s: %s' % (what, text))
        raise AnsibleActionFail('cannot write %s into %s: %s; set byok_manifest_dir (or BYOK_MANIFEST_DIR) to a directory the '
                                'controller user can write' % (what, directory, text))
    return base
