# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How far a long module step has got, for the byok.keyvault.progress callback on the controller.

A step that goes through many keys (the vault read, the import, key generation and wrapping) counts the keys it has
done.  When the callback is enabled it gives the modules a private folder (BYOK_PROGRESS_DIR, mode 0700, its own user)
in their environment; a module that runs where that folder is (the controller's vault steps, and HSM steps on hosts
that run locally) writes there, at most once a second, one small JSON file: the step, the host, keys done and keys in
all.  Counts only: no key name, no module argument, no secret.  Without the folder, or when it is not this user's own
private folder, nothing is written and nothing fails.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import threading
import time

ENV = 'BYOK_PROGRESS_DIR'
#: seconds between two writes of one step's file (the callback reads them every few seconds)
EVERY = 1.0


def _folder():
    """The progress folder when it is set and is this user's own private folder (not a link), else None."""
    path = os.environ.get(ENV)
    if not path:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return path


class Progress(object):
    """Keys done / keys in all of one step on one host; tick() after each key."""

    def __init__(self, step, host, total):
        self.step, self.host, self.total, self.done = step, host or 'localhost', int(total), 0
        self.folder = _folder()
        self.last = 0.0
        self.lock = threading.Lock()  # the vault steps count from one thread per vault and request
        self.write()

    def tick(self, count=1):
        with self.lock:
            self.done += count
            if self.done >= self.total or time.time() - self.last >= EVERY:
                self.write()

    def write(self):
        if self.folder is None:
            return
        self.last = time.time()
        name = '%s-%s-%d.json' % (self.step, ''.join(c if c.isalnum() or c in '.-_' else '_' for c in self.host), os.getpid())
        path = os.path.join(self.folder, name)
        body = json.dumps({'step': self.step, 'host': self.host, 'done': self.done, 'total': self.total, 'time': self.last})
        tmp = path + '.tmp'
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, 'O_NOFOLLOW', 0), 0o600)
            with os.fdopen(fd, 'w') as handle:
                handle.write(body)
            os.rename(tmp, path)
        except OSError:  # progress is a courtesy: a full disk or a vanished folder never fails the step
            self.folder = None


class NoProgress(object):
    """A Progress that counts nothing (a module run outside a step that reports progress)."""

    def tick(self, count=1):
        pass
