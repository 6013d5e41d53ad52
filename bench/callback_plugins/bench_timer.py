# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench-only callback: records how long each task takes, per task and per host, as JSON.

Enabled by bench/bench.py (ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins,
ANSIBLE_CALLBACKS_ENABLED=bench_timer); writes to $BENCH_TIMER_OUT at the end of the playbook.
For each task: wall seconds from its start to the start of the next task (what the play waited),
and per host the seconds from the worker's start to its result, plus the number of loop items.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = '''
name: bench_timer
type: aggregate
short_description: task durations as JSON for bench/bench.py
description: Writes per-task wall time and per-host durations to the file named by BENCH_TIMER_OUT.
requirements: [enabled in configuration]
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timer'
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook):
        """The run's clock starts, with nothing measured yet."""
        self.t0 = time.time()
        self.tasks = []
        self.current = None
        self.host_start = {}

    @staticmethod
    def _machine_cpu():
        """CPU seconds the whole machine spent so far (user, nice, system, irq, softirq of /proc/stat), or None."""
        try:
            with open('/proc/stat') as handle:
                fields = handle.readline().split()[1:8]
            return (sum(int(v) for v in fields) - int(fields[3]) - int(fields[4])) / float(os.sysconf('SC_CLK_TCK'))
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def _lab_cpu():
        """CPU seconds of the bench's lab vault server so far (its pid in BENCH_LAB_PID_FILE), or None."""
        try:
            with open(os.environ['BENCH_LAB_PID_FILE']) as handle:
                pid = int(handle.read().split()[0])
            with open('/proc/%d/stat' % pid) as handle:
                fields = handle.read().rsplit(')', 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / float(os.sysconf('SC_CLK_TCK'))
        except (KeyError, OSError, ValueError, IndexError):
            return None

    def _close_current(self, now):
        if self.current is not None:
            machine, lab = self._machine_cpu(), self._lab_cpu()
            if machine is not None and self.current.get('machine_cpu') is not None:
                # CPU the task cost the machine, the lab vault's share apart (the machine runs nothing else during a bench)
                self.current['machine_cpu'] = round(machine - self.current['machine_cpu'], 3)
                if lab is not None and self.current.get('lab_cpu') is not None:
                    self.current['lab_cpu'] = round(lab - self.current['lab_cpu'], 3)
            self.current['wall'] = round(now - self.current['start'], 4)
            self.current['start'] = round(self.current['start'] - self.t0, 4)
            self.tasks.append(self.current)
            self.current = None

    def _task_start(self, task):
        now = time.time()
        self._close_current(now)
        self.current = {'name': task.get_name(), 'action': task.action, 'start': now, 'hosts': {}, 'items': 0,
                        'machine_cpu': self._machine_cpu(), 'lab_cpu': self._lab_cpu()}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_start(task)

    def v2_runner_on_start(self, host, task):
        self.host_start[(host.get_name(), task._uuid)] = time.time()

    def _host_done(self, result, status):
        if self.current is None:
            return
        key = (result._host.get_name(), result._task._uuid)
        start = self.host_start.pop(key, None)
        if start is not None:
            self.current['hosts'][result._host.get_name()] = {'seconds': round(time.time() - start, 4), 'status': status}

    def v2_runner_on_ok(self, result):
        self._host_done(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._host_done(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._host_done(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._host_done(result, 'unreachable')

    def v2_runner_item_on_ok(self, result):
        if self.current is not None:
            self.current['items'] += 1

    def v2_runner_item_on_failed(self, result):
        if self.current is not None:
            self.current['items'] += 1

    def v2_playbook_on_stats(self, stats):
        now = time.time()
        self._close_current(now)
        path = os.environ.get('BENCH_TIMER_OUT')
        if path:
            with open(path, 'w') as handle:
                json.dump({'total': round(now - self.t0, 4), 'tasks': self.tasks}, handle, indent=1)
