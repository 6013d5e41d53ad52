# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exclusive per-host locks, so that two runs on one host do not act on the same key at once.

The HSM side locks per token around find-or-generate; the vault side locks per vault key around
check-then-import.  Two runs on different controllers are not serialised by this.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import fcntl
import hashlib
import os
import tempfile


@contextlib.contextmanager
def exclusive(*parts):
    """Hold an exclusive lock named after `parts` for the duration of the block (waits for another holder)."""
    digest = hashlib.sha256('\x00'.join(str(p) for p in parts).encode('utf-8')).hexdigest()[:32]
    directory = os.path.join(tempfile.gettempdir(), 'byok-keyvault-locks-%d' % os.getuid())
    try:
        os.mkdir(directory, 0o700)
    except OSError:
        if not os.path.isdir(directory):
            raise
    path = os.path.join(directory, '%s.lock' % digest)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
