# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: progress
type: aggregate
short_description: Progress of the long steps of a transfer - keys done, rate and estimate, every few seconds
version_added: 2.0.0
description:
  - While a step of the byok.keyvault roles runs (the vault read, the HSM contact, key generation and wrapping, the
    import), prints a line every O(interval) seconds once the step has run that long - the keys done of all, the rate
    and an estimate of the time left, such as C([progress] import - 230/1000 keys, 9.8 keys/s, about 1m18s left). Short
    steps print nothing.
  - The modules count the keys they have done in a private folder this callback makes (mode 0700, removed at the end).
    It holds counts only, no key name, no module argument and no secret. The controller's vault steps and HSM steps on
    hosts that run locally count key by key; HSM steps on remote hosts count host by host (a host's keys once it is done).
  - Works with any stdout callback, and in AWX or ansible-runner (the lines are part of the job output). Enable it in
    C(callbacks_enabled) of ansible.cfg (the collection's C(playbooks/ansible.cfg) does), or with
    C(ANSIBLE_CALLBACKS_ENABLED=byok.keyvault.progress).
requirements:
  - enabled in configuration
options:
  interval:
    description: Seconds between two progress lines of a step (1 to 10).
    type: int
    default: 5
    env:
      - name: BYOK_PROGRESS_INTERVAL
    ini:
      - section: byok_progress
        key: interval
'''

import atexit
import json
import os
import shutil
import tempfile
import threading
import time

from ansible.plugins.callback import CallbackBase

#: the environment variable the modules read (plugins/module_utils/progress.py), and the steps worth counting
ENV = 'BYOK_PROGRESS_DIR'
STEP_MODULES = ('byok_vault_step', 'byok_hsm_step')
NAMES = {'read': 'vault read', 'contact': 'HSM contact', 'transfer': 'generate and wrap', 'import': 'import',
         'kek': 'KEK', 'seal': 'seal'}


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return '%ds' % seconds
    if seconds < 3600:
        return '%dm%02ds' % (seconds // 60, seconds % 60)
    return '%dh%02dm' % (seconds // 3600, seconds % 3600 // 60)


def progress_line(step, done, total, elapsed, hosts_done=None, hosts=None):
    """One progress line: keys done of all, the rate and the estimate (no estimate before the first key)."""
    parts = ['%d/%d keys' % (done, total)]
    if hosts:
        parts.append('%d of %d hosts done' % (hosts_done or 0, hosts))
    if done and elapsed > 0:
        rate = done / elapsed
        parts.append('%.1f keys/s' % rate)
        if total > done:
            parts.append('about %s left' % _duration((total - done) / rate))
    return "[progress] %s: %s (elapsed %s)" % (NAMES.get(step, step), ', '.join(parts), _duration(elapsed))


def _remove_stale_folders():
    """Remove the progress folders of this user that a killed run left (its process is gone): they hold counts only,
    but a run should not leave anything behind it."""
    base = tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        parts = name.split('-')
        if not name.startswith('byok-progress-') or len(parts) < 4 or not parts[2].isdigit():
            continue
        path = os.path.join(base, name)
        try:
            if os.lstat(path).st_uid != os.getuid():
                continue
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'byok.keyvault.progress'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        _remove_stale_folders()
        # the modules the workers start inherit this environment (a local module writes its counts there)
        self.folder = tempfile.mkdtemp(prefix='byok-progress-%d-' % os.getpid())
        os.chmod(self.folder, 0o700)
        os.environ[ENV] = self.folder
        atexit.register(shutil.rmtree, self.folder, True)
        self.keys_of = {}      # host -> keys the plan gave it
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = None
        self.task = None       # (step, start time, hosts that finished: {host: keys})
        self.interval = 5

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super(CallbackModule, self).set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        try:
            self.interval = min(10, max(1, int(self.get_option('interval'))))
        except (TypeError, ValueError):
            self.interval = 5

    # -- what a step has done ------------------------------------------------------------------------------------------
    def _files(self, step, since):
        """{host: (done, total)} of the modules' counts for this step, written since the step began."""
        out = {}
        try:
            names = os.listdir(self.folder)
        except OSError:
            return out
        for name in names:
            if not name.endswith('.json') or not name.startswith(step + '-'):
                continue
            try:
                with open(os.path.join(self.folder, name)) as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                continue
            if data.get('time', 0) >= since - 1 and data.get('step') == step:
                done, total = out.get(data.get('host'), (0, 0))
                out[data.get('host')] = (done + int(data.get('done', 0)), total + int(data.get('total', 0)))
        return out

    def _counts(self, step, since, finished):
        files = self._files('keygen' if step == 'transfer' else step, since)
        if step == 'transfer':  # generate, then wrap: the wrap counts after the keys are made
            wraps = self._files('wrap', since)
            files = dict((h, (files.get(h, (0, 0))[0] + wraps.get(h, (0, 0))[0], files.get(h, (0, 0))[1] + wraps.get(h, (0, 0))[1]))
                         for h in set(files) | set(wraps))
        if step in ('read', 'import'):
            # once on the controller for every host: its module counts (none when byok_controller is another machine)
            done = sum(d for d, _t in files.values())
            total = sum(t for _d, t in files.values())
            return done, total, None, None
        hosts = sorted(self.keys_of)
        done = total = 0
        for host in hosts:
            keys = self.keys_of[host]
            total += keys
            if host in finished:
                done += keys
            elif host in files and files[host][1]:
                d, t = files[host]
                done += int(keys * min(d, t) / float(t))
        return done, total, len([h for h in hosts if h in finished]), len(hosts)

    def _tick(self, step, start, finished):
        while not self.stop.wait(self.interval):
            with self.lock:
                if self.task is None or self.task[1] != start:
                    return
                try:
                    done, total, hosts_done, hosts = self._counts(step, start, finished)
                except Exception:  # pylint: disable=broad-except  # progress is a courtesy: it never stops a run
                    continue
            if total:
                self._display.display(progress_line(step, done, total, time.time() - start, hosts_done, hosts))

    def _end_task(self):
        with self.lock:
            self.task = None
        self.stop.set()
        if self.thread is not None:
            self.thread.join(2)
        self.thread = None

    # -- Ansible's events ------------------------------------------------------------------------------------------------
    def v2_playbook_on_task_start(self, task, is_conditional):
        self._end_task()
        action = (getattr(task, 'action', '') or '').split('.')[-1]
        step = (getattr(task, 'args', None) or {}).get('step')
        if action not in STEP_MODULES or step not in NAMES or step in ('kek', 'seal'):
            return
        start = time.time()
        finished = {}
        with self.lock:
            self.task = (step, start, finished)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._tick, args=(step, start, finished), name='byok-progress')
        self.thread.daemon = True
        self.thread.start()

    def v2_runner_on_ok(self, result):
        res = getattr(result, '_result', None) or {}
        records = res.get('records') if isinstance(res, dict) else None
        if isinstance(records, list) and getattr(result, '_task', None) is not None:
            action = (getattr(result._task, 'action', '') or '').split('.')[-1]
            if action == 'byok_plan':
                keys = {}
                for rec in records:
                    keys[rec.get('host')] = keys.get(rec.get('host'), 0) + 1
                self.keys_of = keys
        self._host_done(result)

    def _host_done(self, result):
        host = getattr(getattr(result, '_host', None), 'name', None)
        with self.lock:
            if self.task is not None and host is not None:
                self.task[2][host] = True

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._host_done(result)

    def v2_runner_on_skipped(self, result):
        self._host_done(result)

    def v2_runner_on_unreachable(self, result):
        self._host_done(result)

    def v2_playbook_on_stats(self, stats):
        self._end_task()
        shutil.rmtree(self.folder, ignore_errors=True)
        os.environ.pop(ENV, None)
