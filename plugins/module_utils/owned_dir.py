# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Directories the collection writes into are its own: the one check of a directory path, shared by every writer.

``open_directory(path, ...)`` walks the path from ``/`` one component at a time, each opened relative to its
parent's descriptor with O_NOFOLLOW and checked with fstat on that descriptor, so nothing can be swapped between
the check and the use of a component:

- no component is a symbolic link (give the real path: ``realpath`` shows it) and none is ``..``;
- the directories above the collection's own (the *ancestors*) are owned by root or by the running user and are not
  writable by group or others, unless sticky like ``/tmp`` (then others cannot rename or remove what is not theirs);
- the collection's own directories (from ``own_from`` down, or the last one) are owned by the running user and not
  writable by group or others (``forbid``, 0o022; the lock directory asks for 0o077).

With ``create``, missing components are created with mode 0700 (``mkdir`` relative to the parent descriptor); an
existing directory is never chmod-ed: one with the wrong owner or mode is refused and left as it is.  Another local
user can therefore neither redirect a write (``keks -> /etc``) nor remove what the collection wrote (audit records).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat

from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError

_PATH = getattr(os, 'O_PATH', 0)
_FLAGS = (_PATH or os.O_RDONLY) | getattr(os, 'O_DIRECTORY', 0) | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
#: mode bits that make a directory writable by group or others
GROUP_OTHER_WRITE = 0o022


class UnsafeDirectory(ByokError):
    """A directory path that is not the collection's own: ``component`` (a path) and ``problem`` (what is wrong)."""

    def __init__(self, path, component, problem, missing=False):
        self.path = path
        self.component = component
        self.problem = problem
        self.missing = missing
        where = '' if component == path else ' (its component %s)' % component
        super(UnsafeDirectory, self).__init__('%s%s is %s' % (path, where, problem))


def components(path):
    """The names of an absolute or relative path, from the root; '..' is refused (it would be resolved lexically here
    and through links by the kernel later)."""
    path = os.path.expanduser(path or '')
    if not path or '\x00' in path:
        raise UnsafeDirectory(path, path, 'not a usable path (empty or with a NUL character)')
    if '..' in path.split('/'):
        raise UnsafeDirectory(path, path, "a path with a '..' component (give the directory itself)")
    full = path if path.startswith('/') else os.path.join(os.getcwd(), path)
    return [part for part in full.split('/') if part not in ('', '.')]


def _problem(st, own, forbid, euid):
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return 'a symbolic link'
    if not stat.S_ISDIR(st.st_mode):
        return 'not a directory'
    if own:
        if st.st_uid != euid:
            return 'owned by uid %d, not by this user (uid %d)' % (st.st_uid, euid)
        if mode & forbid:
            who = 'group or others' if forbid == GROUP_OTHER_WRITE else 'not 0700: other users'
            return 'mode %04o (%s may write into it)' % (mode, who)
        return None
    if st.st_uid not in (0, euid):
        return 'owned by uid %d, neither root nor this user (uid %d), who could replace what it holds' % (st.st_uid, euid)
    if mode & GROUP_OTHER_WRITE and not mode & stat.S_ISVTX:
        return 'mode %04o (group or others may replace what it holds; only a sticky directory like /tmp may be shared)' % mode
    return None


def _open_at(parent, name, where, path):
    """The descriptor of directory `name` under the parent descriptor, never through a link; raises UnsafeDirectory."""
    try:
        fd = os.open(name, _FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                link = stat.S_ISLNK(st.st_mode)
            except OSError:
                link = exc.errno == errno.ELOOP
            raise UnsafeDirectory(path, where, 'a symbolic link' if link else 'not a directory')
        if exc.errno == errno.ENOENT:
            raise UnsafeDirectory(path, where, 'missing', missing=True)
        raise UnsafeDirectory(path, where, 'not usable (%s)' % (exc.strerror or exc))
    return fd


def open_directory(path, create=False, own_from=None, forbid=GROUP_OTHER_WRITE, created=None):
    """A descriptor (O_PATH where the system has it) of directory `path`, checked as the module doc says.

    own_from: the first directory of the path that must be the running user's own (a prefix of path, or None: only
    the last one).  create: make missing components (0700).  created: a list that receives the paths made.
    Raises UnsafeDirectory (with .missing set when a component does not exist and create is false).
    """
    parts = components(path)
    own_depth = len(components(own_from)) if own_from else len(parts)
    if own_from and parts[:own_depth] != components(own_from):
        raise UnsafeDirectory(path, path, 'not inside %s' % own_from)
    euid = os.geteuid()
    fd = os.open('/', _FLAGS)
    try:
        problem = _problem(os.fstat(fd), own_depth == 0, forbid, euid)
        if problem:
            raise UnsafeDirectory(path, '/', problem)
        for index, name in enumerate(parts):
            where = '/' + '/'.join(parts[:index + 1])
            try:
                child = _open_at(fd, name, where, path)
            except UnsafeDirectory as exc:
                if not (exc.missing and create):
                    raise
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                    if created is not None:
                        created.append(where)
                except OSError as mk:
                    if mk.errno != errno.EEXIST:
                        raise UnsafeDirectory(path, where, 'missing and cannot be created (%s)' % (mk.strerror or mk))
                child = _open_at(fd, name, where, path)
            os.close(fd)
            fd = child
            problem = _problem(os.fstat(fd), index >= own_depth - 1, forbid, euid)
            if problem:
                raise UnsafeDirectory(path, where, problem)
        return fd
    except BaseException:
        os.close(fd)
        raise


def check_directory(path, create=False, own_from=None, forbid=GROUP_OTHER_WRITE, created=None):
    """open_directory, then close the descriptor: for a check (and creation) before other code writes by path."""
    os.close(open_directory(path, create=create, own_from=own_from, forbid=forbid, created=created))


def problem_of(path, own_from=None, forbid=GROUP_OTHER_WRITE):
    """None when path is fine or would be created by this user under fine ancestors, else the UnsafeDirectory."""
    try:
        check_directory(path, own_from=own_from, forbid=forbid)
    except UnsafeDirectory as exc:
        if exc.missing:
            return None
        return exc
    return None


def open_file(dir_fd, name, where):
    """A regular file `name` of a checked directory, opened for reading without following a link; (fd, stat)."""
    flags = os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0) | getattr(os, 'O_NONBLOCK', 0)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise UnsafeDirectory(where, where, 'missing', missing=True)
        raise UnsafeDirectory(where, where, 'a symbolic link' if exc.errno == errno.ELOOP else
                              'not readable (%s)' % (exc.strerror or exc))
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeDirectory(where, where, 'not a regular file')
    return fd, st
