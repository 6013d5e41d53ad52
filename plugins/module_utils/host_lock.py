# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exclusive per-host locks, so that two runs on one host do not act on the same key at once.

The HSM side locks per token around find-or-generate; the vault side locks per vault key around
check-then-import.  Two runs on different controllers are not serialised by this.

The locks live in ``$TMPDIR/byok-keyvault-locks-<uid>``, a directory that must be owned by the
running user, mode 0700, with no symbolic link on its path: owned_dir opens each component with
O_DIRECTORY|O_NOFOLLOW and checks it with fstat on that descriptor, so another local user cannot
swap it between the check and the use.  Lock files are opened relative to that descriptor with O_NOFOLLOW and must be regular
files owned by the running user.  Waiting is bounded (lock_timeout); the holder writes its pid,
host name and start time into the lock file, so a timeout can say who holds the lock.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import errno
import fcntl
import hashlib
import os
import socket
import stat
import tempfile
import time

from ansible_collections.byok.keyvault.plugins.module_utils import owned_dir
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError

DEFAULT_TIMEOUT = 300
_POLL = 0.1
_settings = {'timeout': DEFAULT_TIMEOUT}


class LockError(ByokError):
    """The lock directory or a lock file is unsafe, or the lock was not obtained in time (one-line message)."""


def set_timeout(seconds):
    """The longest wait for a lock in this process (the modules' lock_timeout option); None keeps the default."""
    if seconds is None:
        seconds = DEFAULT_TIMEOUT
    if seconds < 0:
        raise LockError('lock_timeout is %s; give the number of seconds to wait for another run (0 or more)' % seconds)
    _settings['timeout'] = seconds


def lock_directory():
    return os.path.join(tempfile.gettempdir(), 'byok-keyvault-locks-%d' % os.geteuid())


def _open_directory(directory):
    """A descriptor of the lock directory, created 0700 when missing: owned_dir's walk (no link anywhere, fstat-checked
    owner and mode, ancestors owned by root or this user), with the lock directory itself 0700."""
    try:
        return owned_dir.open_directory(directory, create=True, forbid=0o077)
    except owned_dir.UnsafeDirectory as exc:
        if exc.component == directory and exc.missing:
            raise LockError('cannot create the lock directory %s: %s; set TMPDIR to a directory this user may write'
                            % (directory, exc.problem))
        problem = exc.problem
        if exc.problem.startswith('mode '):
            problem = '%s, not 0700 (other users may create or replace lock files in it)' % exc.problem.split(' (')[0]
        elif exc.component != directory:
            problem = 'under %s, which is %s' % (exc.component, exc.problem)
        raise LockError('lock directory %s is %s; remove it (as root: rm -rf %s) so that the next run creates it, or set '
                        'TMPDIR to a directory only this user may write' % (directory, problem, directory))


def _open_lock_file(dir_fd, name, path):
    flags = os.O_RDWR | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        what = 'a symbolic link' if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise LockError('lock file %s cannot be used (%s); remove it, and check who else writes into %s'
                        % (path, what, os.path.dirname(path)))
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise LockError('lock file %s is not a regular file of this user (uid %d); remove it, and check who else writes '
                        'into %s' % (path, os.geteuid(), os.path.dirname(path)))
    return fd


def _same_file(dir_fd, name, fd):
    """True while `name` in the directory still is the file open as fd (a releaser unlinks it)."""
    try:
        named = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def holder(path):
    """'pid N on host H since T' from a lock file, or None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, 512).decode('utf-8', 'replace')
    finally:
        os.close(fd)
    fields = dict(part.split('=', 1) for part in text.split() if '=' in part)
    if not fields.get('pid'):
        return None
    return 'pid %s on host %s since %s' % (fields.get('pid'), fields.get('host', '?'), fields.get('started', '?'))


def timeout_message(what, path, waited, held_by):
    return ('waited %s s for the lock of %s (%s), held by %s; another run is working on it: wait for it to finish or raise '
            'lock_timeout; if that process no longer runs, remove the lock file'
            % (waited, what, path, held_by or 'another process (its pid is not recorded)'))


@contextlib.contextmanager
def exclusive(*parts, **kwargs):
    """Hold an exclusive lock named after `parts` (kind first) for the duration of the block.

    Waits up to lock_timeout seconds (set_timeout(), or timeout=) for another holder.  Failures raise
    LockError, or the exception class given as error= (so each side reports them its own way).

    The lock file is removed on release, so files do not pile up one per key.  This is race-free with
    flock: a file is only unlinked by the process that holds the lock on it, and a process that obtained
    the lock only proceeds after checking (still holding it) that the name in the directory still is the
    file it locked; a waiter that locked an unlinked file sees another or no file under the name, lets go
    and starts over on the current one.  So at any time the one file the name points to is the only one
    whose holder proceeds.  Only a run killed while holding a lock leaves its file behind, and the next
    lock of that key reuses and removes it.
    """
    error = kwargs.get('error') or LockError
    timeout = kwargs.get('timeout')
    if timeout is None:
        timeout = _settings['timeout']
    what = ' '.join(str(p) for p in parts)
    digest = hashlib.sha256('\x00'.join(str(p) for p in parts).encode('utf-8')).hexdigest()[:32]
    directory = lock_directory()
    name = '%s.lock' % digest
    path = os.path.join(directory, name)
    try:
        dir_fd = _open_directory(directory)
    except LockError as exc:
        raise error(str(exc))
    fd = None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = _open_lock_file(dir_fd, name, path)
            except LockError as exc:
                raise error(str(exc))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                os.close(fd)
                fd = None
                if time.monotonic() >= deadline:
                    raise error(timeout_message(what, path, timeout, holder(path)))
                time.sleep(_POLL)
                continue
            if _same_file(dir_fd, name, fd):
                break
            os.close(fd)  # the previous holder removed this file on release: lock the current one
            fd = None
        started = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        os.ftruncate(fd, 0)
        os.write(fd, ('pid=%d host=%s started=%s\n' % (os.getpid(), socket.gethostname(), started)).encode('utf-8'))
        try:
            yield
        finally:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        if fd is not None:
            os.close(fd)
        os.close(dir_fd)
