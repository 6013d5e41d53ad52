# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end fixtures: a REAL lab Key Vault server, REAL SoftHSM2 tokens, REAL ansible / ansible-playbook runs.

Nothing here mocks the collection: modules run through ansible-core against the lab's HTTPS Key Vault API and
SoftHSM2 over PKCS#11.

Built on the lab's own pytest plugin (``lab_factory``) and on ``lab.testing`` (the Lab, the SoftHSM2 tokens, the
ansible runs, the inventory writer), which every suite uses; this file only binds them to this checkout (its .venv,
its ansible.cfg, the collection as this directory) under the names the tests use.

    source scripts/env.sh && python -m pytest tests/e2e -q -x
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))  # the lab package (PYTHONPATH=tests)

from lab import testing  # noqa: E402 pylint: disable=wrong-import-position
from lab.pytest_plugin import lab_factory  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import
from lab.testing import (  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import
    ONELINE_RE, RECAP_RE, SOFTHSM_LIB, Lab, PlaybookRun, Token, new_token, parse_recap, unique)

VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
ANSIBLE = str(VENV_BIN / "ansible") if (VENV_BIN / "ansible").exists() else "ansible"
ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook") if (VENV_BIN / "ansible-playbook").exists() else "ansible-playbook"
TRANSFER_PLAYBOOK = ROOT / "playbooks" / "transfer.yml"
ANSIBLE_CFG = ROOT / "playbooks" / "ansible.cfg"

# Variables of the caller's shell that would leak into the modules and change what they do
_SCRUB = testing.SCRUB
_free_base_port = testing.free_base_port
_env = testing.ansible_env


def project_env(collections: str, scrub: "re.Pattern" = _SCRUB, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The caller's environment without what would leak into the modules, the venv first on PATH, this collection and
    the project's ansible.cfg (plus extra)."""
    env = {k: v for k, v in os.environ.items() if not scrub.match(k)}
    env.update({
        "PATH": "%s:%s" % (VENV_BIN, env.get("PATH", "")),
        "ANSIBLE_COLLECTIONS_PATH": collections,
        "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    env.update(extra or {})
    return env


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory) -> str:
    """An ANSIBLE_COLLECTIONS_PATH whose ansible_collections/byok/keyvault is this checkout (independent of `make`)."""
    base = tmp_path_factory.mktemp("collections")
    ns = base / "ansible_collections" / "byok"
    ns.mkdir(parents=True)
    (ns / "keyvault").symlink_to(ROOT, target_is_directory=True)
    return str(base)


@pytest.fixture(scope="session")
def base_env(collections_path) -> Dict[str, str]:
    """Environment of every ansible run: the venv first on PATH, this collection, the project's ansible.cfg."""
    return project_env(collections_path)


@pytest.fixture(scope="session")
def lab(lab_factory, base_env):
    """The lab vault shared by the whole session (tests use unique key names, so they do not see each other)."""
    return lab_factory("lab", base_env=base_env)


@pytest.fixture
def fresh_lab(lab_factory, tmp_path, base_env):
    """A lab vault of its own, empty, for a test that must prove that nothing at all was created."""
    instance = lab_factory(state_dir=tmp_path / "fresh-vault", base_env=base_env)
    try:
        yield instance
    finally:
        instance.stop()


def lab_of_the_module(name: str):
    """A module-scoped fixture: a lab vault of the test module's own, for tests that change its settings or must find
    it as they left it; stopped after the module's last test. ``limits_lab = lab_of_the_module("limits-lab")``."""

    @pytest.fixture(scope="module")
    def _own_lab(tmp_path_factory, base_env):
        with Lab(tmp_path_factory.mktemp(name) / "vault", base_env) as instance:
            yield instance

    return _own_lab


@pytest.fixture
def make_token(tmp_path, base_env):
    """Factory of fresh SoftHSM2 tokens, each in its own directory with its own softhsm2.conf and random PINs."""
    counter = itertools.count(1)

    def _make(label: Optional[str] = None, pin: Optional[str] = None) -> Token:
        return new_token(tmp_path / ("softhsm-%d" % next(counter)), base_env, label, pin)

    return _make


@pytest.fixture
def run_playbook(base_env, tmp_path):
    """run_playbook(playbook, inventory, extra_env=None, check=False, extra_args=()) -> PlaybookRun(rc, output, recap)."""

    def _run(playbook, inventory, extra_env: Optional[Dict[str, str]] = None, check: bool = False,
             extra_args=(), timeout: int = 300) -> PlaybookRun:
        return testing.run_playbook(_env(base_env, extra_env), tmp_path, playbook, inventory, check=check, extra_args=extra_args,
                                    timeout=timeout, bin_dir=VENV_BIN)

    return _run


class ModuleRun(PlaybookRun):
    """A module run with the module's result (``result``, ``failed``, ``changed``, ``msg``)."""

    result: dict

    @classmethod
    def of(cls, run: PlaybookRun) -> "ModuleRun":
        out = cls(rc=run.rc, output=run.output, seconds=run.seconds, stdout=run.stdout, stderr=run.stderr)
        out.result = testing.module_result(run)
        return out

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    @property
    def msg(self) -> str:
        return self.result.get("msg", "")

    def __str__(self) -> str:
        return "rc=%d result=%s\n%s" % (self.rc, json.dumps(self.result, indent=1, default=str)[:8000], self.output[-4000:])

    __repr__ = __str__


@pytest.fixture
def run_module(base_env, tmp_path):
    """run_module(module, args, env=None, check=False) -> ModuleRun(rc, output, result).

    Runs ``byok.keyvault.<module>`` ad hoc (``ansible localhost -m ... -a '<json>' -o``) over the local connection with
    the venv's Python, and parses the one-line result (the module's JSON as Ansible reports it, without warnings and
    invocation; warnings stay in ``output``). ``env`` is added to the environment of the ansible process, which the
    local connection hands on to the module (SOFTHSM2_CONF, AZURE_*).
    """
    counter = itertools.count(1)  # next() is atomic: tests may run modules from several threads at once

    def _run(module: str, args: dict, env: Optional[Dict[str, str]] = None, check: bool = False,
             timeout: int = 180) -> ModuleRun:
        work = tmp_path / ("module-run-%d" % next(counter))
        work.mkdir()
        return ModuleRun.of(testing.run_module(_env(base_env, env), work, module, args, check=check, timeout=timeout,
                                               python=PYTHON, bin_dir=VENV_BIN))

    return _run


def wrap_under_new_kek(run_module, lab, token, label: str, dest: Path, kek: str) -> ModuleRun:
    """The token's key ``label`` wrapped into the .byok file ``dest`` under a new KEK ``kek`` of the lab's premium vault
    (fetched to ``<kek>.pem`` beside dest): the byok_wrap run. Either step failing fails the test."""
    kek_pem = dest.parent / ("%s.pem" % kek)
    fetched = run_module("byok_kek_fetch", dict(lab.azure_args(), name=kek, key_size=2048, dest=str(kek_pem)), env=lab.azure_env)
    assert not fetched.failed, str(fetched)
    wrapped = run_module("byok_wrap", dict(token.pkcs11_args(), label=label, dest=str(dest), kek_file=str(kek_pem),
                                           kek_kid=fetched.result["kid"]), env=token.env)
    assert not wrapped.failed, str(wrapped)
    return wrapped


# --------------------------------------------------------------------------------------------------------------------
# The test PKCS#11 shim (tests/pkcs11_shim): SoftHSM2 behind it, presented as another token
# --------------------------------------------------------------------------------------------------------------------

SHIM_LIB = ROOT / "build" / "pkcs11_shim" / "librsaaesshim.so"


def ensure_shim() -> Path:
    """The shim's library, built when absent or older than its source."""
    src = ROOT / "tests" / "pkcs11_shim" / "rsa_aes_shim.c"
    if not SHIM_LIB.exists() or SHIM_LIB.stat().st_mtime < src.stat().st_mtime:
        proc = subprocess.run(["bash", str(ROOT / "tests" / "pkcs11_shim" / "build.sh")], capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0 and SHIM_LIB.exists(), "shim build failed: %s%s" % (proc.stdout, proc.stderr)
    return SHIM_LIB


def luna_client(work: Path) -> Path:
    """For tokens the shim presents as a Thales Luna: the shim built, and a Luna client configuration directory in work
    (ChrystokiConfigurationPath; the client's Chrystoki.conf must exist, SoftHSM behind the shim ignores it)."""
    ensure_shim()
    chrystoki = work / "chrystoki"
    chrystoki.mkdir()
    (chrystoki / "Chrystoki.conf").write_text("")
    return chrystoki


# --------------------------------------------------------------------------------------------------------------------
# Assertions shared by the tests
# --------------------------------------------------------------------------------------------------------------------

def assert_one_line_failure(run: ModuleRun, *must_contain: str) -> str:
    """The module failed with a one-line message (no traceback, no newline) containing each of ``must_contain``."""
    assert run.failed, "expected a failure, got:\n%s" % run
    msg = run.msg
    assert isinstance(msg, str) and msg.strip(), "failure without msg:\n%s" % run
    assert "\n" not in msg and "\r" not in msg, "msg has a line break: %r" % msg
    assert "Traceback" not in msg, "msg carries a traceback: %r" % msg
    assert "MODULE FAILURE" not in msg, "the module crashed instead of failing cleanly:\n%s" % run
    assert "Traceback" not in (run.result.get("module_stderr") or ""), "the module crashed:\n%s" % run
    for needle in must_contain:
        assert needle.lower() in msg.lower(), "msg does not mention %r: %r" % (needle, msg)
    return msg


# Words a message uses when it tells the user what to do
FIX_HINT = re.compile(r"\b(set|use|give|check|create|choose|pick|remove|rename|delete|correct|fix|pass|add|"
                      r"try|run|make sure|ensure|supply|provide|generate|install|change|update|rotate|renew|did you mean|"
                      r"one of|must be|must|should|instead|allowed|accepts|supported)\b", re.I)


def assert_says_how_to_fix(msg: str) -> None:
    assert FIX_HINT.search(msg), "msg does not say how to fix it: %r" % msg
