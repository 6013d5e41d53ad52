# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Another local user prepares the lock directory of a root run (mode 0777, a symlink named like the lock file):
hsm_keygen must refuse with a one-line message naming the directory, and must not create the symlink's target.

Needs root (to add a throwaway user); skipped with the reason otherwise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from conftest import SOFTHSM_LIB, assert_one_line_failure, unique


@pytest.fixture
def other_user():
    if os.geteuid() != 0:
        pytest.skip("adding a throwaway local user needs root")
    if not shutil.which("useradd") or not shutil.which("setpriv"):
        pytest.skip("useradd or setpriv is not installed")
    name = "byoklk%s" % uuid.uuid4().hex[:8]
    proc = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("useradd failed: %s" % proc.stderr.strip())
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


def as_user(user: str, *cmd: str) -> None:
    proc = subprocess.run(["setpriv", "--reuid", user, "--regid", user, "--clear-groups", "--"] + list(cmd),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "as %s: %s failed: %s" % (user, " ".join(cmd), proc.stderr)


@pytest.fixture
def shared_tmp():
    """A sticky world-writable directory like /tmp (the test's own, so the real /tmp is not touched)."""
    path = Path(tempfile.mkdtemp(prefix="byok-shared-tmp-", dir="/tmp"))
    os.chmod(str(path), 0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(str(path), ignore_errors=True)


def test_lock_directory_prepared_by_another_user_is_refused(run_module, make_token, other_user, shared_tmp, tmp_path):
    token = make_token()
    label = unique("lock")
    serial = run_module("hsm_keygen", dict(token.pkcs11_args(), label=label, key_type="EC", curve="P-256"), env=dict(
        token.env, TMPDIR=str(tmp_path))).result["token"]["serial"]

    lock_dir = shared_tmp / ("byok-keyvault-locks-%d" % os.geteuid())
    lock_name = hashlib.sha256("\x00".join(["token", SOFTHSM_LIB, serial, token.label]).encode()).hexdigest()[:32] + ".lock"
    target = shared_tmp / "created-by-root"
    as_user(other_user, "mkdir", "-m", "0777", str(lock_dir))
    as_user(other_user, "chmod", "0777", str(lock_dir))
    as_user(other_user, "ln", "-s", str(target), str(lock_dir / lock_name))
    assert lock_dir.stat().st_uid != 0 and (lock_dir / lock_name).is_symlink()

    run = run_module("hsm_keygen", dict(token.pkcs11_args(), label=unique("lock2"), key_type="EC", curve="P-256"),
                     env=dict(token.env, TMPDIR=str(shared_tmp)), timeout=120)
    msg = assert_one_line_failure(run, str(lock_dir), "owned by uid")
    assert "TMPDIR" in msg, msg
    assert not target.exists() and not os.path.lexists(str(target)), "root created the target of the other user's symlink"
    assert sorted(p.name for p in lock_dir.iterdir()) == [lock_name]
