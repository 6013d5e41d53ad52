# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fresh SoftHSM2 token for a unit test whose PKCS#11 part runs in a child process (the test file run as a script):
SoftHSM reads SOFTHSM2_CONF once per process, so each such test gets its own process and its own token directory."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import sys

import pytest

SOFTHSM_LIB = '/usr/lib/softhsm/libsofthsm2.so'
PIN = '1234'


def missing():
    """Why such a test cannot run here, or None."""
    if not os.path.exists(SOFTHSM_LIB) or not shutil.which('softhsm2-util'):
        return 'SoftHSM2 is not installed (apt-get install softhsm2)'
    try:
        import pkcs11  # noqa: F401 pylint: disable=unused-import
    except ImportError:
        return 'python-pkcs11 is not installed'
    return None


#: the mark of a module of such tests: skipped, with the reason, where SoftHSM2 or python-pkcs11 is missing
NEEDS_SOFTHSM = pytest.mark.skipif(missing() is not None, reason=missing() or '')


def run_child(tmp_path_factory, script, label):
    """Run script (a test file whose __main__ calls its child()) against a fresh token labelled label; the JSON it
    printed last."""
    base = tmp_path_factory.mktemp(label)
    (base / 'tokens').mkdir()
    conf = base / 'softhsm2.conf'
    conf.write_text('directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' % (base / 'tokens'))
    env = dict(os.environ, SOFTHSM2_CONF=str(conf), PYTHONPATH=os.pathsep.join(p for p in sys.path if p), TMPDIR=str(base))
    subprocess.run(['softhsm2-util', '--init-token', '--free', '--label', label, '--pin', PIN, '--so-pin', '5678'], env=env,
                   check=True, capture_output=True)
    proc = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
