# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""host_lock: a safe lock directory, lock files that never follow symlinks, bounded waits, no pile-up of files."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import multiprocessing
import os
import secrets
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils import host_lock
from ansible_collections.byok.keyvault.plugins.module_utils import vault_backend
from ansible_collections.byok.keyvault.plugins.module_utils.azure_errors import KeyVaultError
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import VaultTarget


@pytest.fixture
def tmpdir_env(tmp_path, monkeypatch):
    """tempfile.gettempdir() is tmp_path for the test (and for child processes)."""
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    monkeypatch.setenv('TMPDIR', str(tmp_path))
    return tmp_path


def lock_dir(base):
    return base / ('byok-keyvault-locks-%d' % os.geteuid())


def test_directory_is_created_private(tmpdir_env):
    with host_lock.exclusive('token', 'lib', 'serial', 'label'):
        st = os.lstat(str(lock_dir(tmpdir_env)))
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()


def test_a_shared_directory_is_refused_naming_path_problem_and_fix(tmpdir_env):
    d = lock_dir(tmpdir_env)
    d.mkdir()
    os.chmod(str(d), 0o777)
    with pytest.raises(host_lock.LockError) as info:
        with host_lock.exclusive('token', 'lib', 'serial', 'label'):
            pytest.fail('the lock was taken in a directory other users may write')
    msg = str(info.value)
    assert str(d) in msg and 'mode 0777' in msg and 'TMPDIR' in msg and '\n' not in msg
    assert list(d.iterdir()) == []


def test_a_symlinked_directory_is_refused(tmpdir_env):
    elsewhere = tmpdir_env / 'elsewhere'
    elsewhere.mkdir(mode=0o700)
    lock_dir(tmpdir_env).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(host_lock.LockError, match='symbolic link'):
        with host_lock.exclusive('vault-key', 'https://v', 'k'):
            pass
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_lock_file_is_refused_and_its_target_not_created(tmpdir_env):
    with host_lock.exclusive('vault-key', 'https://v', 'k'):
        pass  # creates the directory; the file is gone again
    d = lock_dir(tmpdir_env)
    assert list(d.iterdir()) == []
    target = tmpdir_env / 'victim'
    import hashlib
    name = hashlib.sha256('\x00'.join(['vault-key', 'https://v', 'k']).encode()).hexdigest()[:32] + '.lock'
    (d / name).symlink_to(target)
    with pytest.raises(host_lock.LockError) as info:
        with host_lock.exclusive('vault-key', 'https://v', 'k'):
            pytest.fail('the lock followed a symbolic link')
    assert 'symbolic link' in str(info.value) and name in str(info.value)
    assert not target.exists()


def test_the_vault_side_reports_lock_problems_as_keyvault_errors(tmpdir_env):
    d = lock_dir(tmpdir_env)
    d.mkdir()
    os.chmod(str(d), 0o755)

    class NoVault(object):
        target = VaultTarget.parse('https://contoso.vault.azure.net')
        url = target.url

        def get(self, name):
            raise AssertionError('the vault was asked although the lock directory is unsafe')

    with pytest.raises(KeyVaultError, match='mode 0755'):
        vault_backend.ensure_kek(NoVault(), 'byok-kek', 2048, True, None, False)


def test_timeout_names_the_lock_and_its_holder(tmpdir_env):
    with host_lock.exclusive('vault-key', 'https://contoso.vault.azure.net', 'app-rsa'):
        with pytest.raises(host_lock.LockError) as info:
            with host_lock.exclusive('vault-key', 'https://contoso.vault.azure.net', 'app-rsa', timeout=0.3):
                pytest.fail('a second holder got the lock')
    msg = str(info.value)
    assert 'waited 0.3 s' in msg and 'vault-key https://contoso.vault.azure.net app-rsa' in msg
    assert 'pid %d on host %s since ' % (os.getpid(), socket.gethostname()) in msg
    assert 'lock_timeout' in msg and str(lock_dir(tmpdir_env)) in msg and '\n' not in msg


def test_set_timeout_bounds_the_default_wait(tmpdir_env):
    host_lock.set_timeout(0)
    try:
        with host_lock.exclusive('token', 'x'):
            with pytest.raises(host_lock.LockError, match='waited 0 s'):
                with host_lock.exclusive('token', 'x'):
                    pass
    finally:
        host_lock.set_timeout(None)
    with pytest.raises(host_lock.LockError, match='lock_timeout'):
        host_lock.set_timeout(-1)


def test_lock_files_do_not_pile_up(tmpdir_env):
    for n in range(50):
        with host_lock.exclusive('vault-key', 'https://v', 'key-%d' % n):
            pass
    assert list(lock_dir(tmpdir_env).iterdir()) == []


def _count(path, rounds, tmp):
    tempfile.tempdir = tmp
    for dummy in range(rounds):
        with host_lock.exclusive('vault-key', 'https://v', 'contended'):
            with open(path) as f:
                value = int(f.read())
            with open(path, 'w') as f:
                f.write(str(value + 1))


def test_removal_on_release_keeps_the_lock_exclusive(tmpdir_env):
    """Four processes increment a counter 100 times each under the lock: no update is lost."""
    counter = tmpdir_env / 'counter'
    counter.write_text('0')
    ctx = multiprocessing.get_context('fork')
    procs = [ctx.Process(target=_count, args=(str(counter), 100, str(tmpdir_env))) for dummy in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert counter.read_text() == '400'
    assert list(lock_dir(tmpdir_env).iterdir()) == []


def test_a_waiter_that_locked_a_removed_file_starts_over(tmpdir_env, monkeypatch):
    """The race removal on release must survive: a waiter opened the file, the holder released (and removed) it, a
    third run created and holds the new file; the waiter then gets the lock on the removed file, and must not proceed."""
    parts = ('vault-key', 'https://v', 'raced')
    with host_lock.exclusive(*parts):
        stale = list(lock_dir(tmpdir_env).iterdir())
        assert len(stale) == 1
        stale_fd = os.open(str(stale[0]), os.O_RDWR)  # what a waiter holds when the holder releases
    assert list(lock_dir(tmpdir_env).iterdir()) == []
    real_open = host_lock._open_lock_file
    calls = []

    def open_stale_first(dir_fd, name, path):
        calls.append(name)
        return stale_fd if len(calls) == 1 else real_open(dir_fd, name, path)

    with host_lock.exclusive(*parts):  # the third run, holding the new file
        monkeypatch.setattr(host_lock, '_open_lock_file', open_stale_first)
        with pytest.raises(host_lock.LockError, match='waited'):
            with host_lock.exclusive(*parts, timeout=0.3):
                pytest.fail('two runs held the lock at once (the waiter proceeded on a removed lock file)')
    assert len(calls) >= 2


@pytest.mark.parametrize('mode', [0o770, 0o720, 0o750, 0o705], ids=lambda mode: '%04o' % mode)
def test_a_lock_directory_its_group_or_others_may_enter_is_refused(tmpdir_env, mode):
    """The lock directory is 0700: group write (0770, 0720) lets a member create or replace lock files, group or
    others' read (0750, 0705) lets them see who locks which key; each is refused, and the directory is left as it is."""
    d = lock_dir(tmpdir_env)
    d.mkdir()
    os.chmod(str(d), mode)
    with pytest.raises(host_lock.LockError) as info:
        with host_lock.exclusive('token', 'lib', 'serial', 'label'):
            pytest.fail('the lock was taken in a directory of mode %04o' % mode)
    msg = str(info.value)
    assert str(d) in msg and 'mode %04o' % mode in msg and 'not 0700' in msg and '\n' not in msg
    assert list(d.iterdir()) == [] and stat.S_IMODE(d.stat().st_mode) == mode


def test_a_private_lock_directory_of_another_user_is_refused(tmp_path, monkeypatch):
    """A lock directory another user prepared with the right mode (0700) is still theirs: they may replace the lock
    files in it at any time, so it is refused because of its owner, and neither chmod-ed nor used.

    As root the directory is given to an unused uid.  Otherwise the running user's own directory is looked at as by
    another user (os.geteuid() answers an unused uid), under /tmp, whose owner (root) is trusted."""
    if os.geteuid() == 0:
        base, other = tmp_path, 54321
        d = lock_dir(base)
        d.mkdir(mode=0o700)
        os.chown(str(d), other, other)
    else:
        base, other = Path('/tmp'), os.geteuid()
        fake = 2000000000 + secrets.randbelow(100000000)
        d = base / ('byok-keyvault-locks-%d' % fake)
        d.mkdir(mode=0o700)
        monkeypatch.setattr(os, 'geteuid', lambda: fake)
    monkeypatch.setattr(tempfile, 'tempdir', str(base))
    try:
        os.chmod(str(d), 0o700)
        with pytest.raises(host_lock.LockError) as info:
            with host_lock.exclusive('token', 'lib', 'serial', 'label'):
                pytest.fail('the lock was taken in a directory owned by uid %d' % other)
        msg = str(info.value)
        assert str(d) in msg and 'owned by uid %d' % other in msg and 'TMPDIR' in msg and '\n' not in msg
        st = d.stat()
        assert list(d.iterdir()) == [] and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == other
    finally:
        if base != tmp_path:
            shutil.rmtree(str(d))
