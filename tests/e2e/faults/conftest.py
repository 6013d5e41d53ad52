# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the "nothing lost, nothing leaked" tests: a REAL lab Key Vault (with fault injection), REAL SoftHSM2
tokens, REAL ansible-playbook runs of playbooks/transfer.yml, and the tools to kill them, scan what they wrote and
count what they created.

Built on the same lab, tokens, ansible runs and inventory writer as tests/e2e/conftest.py (``lab.testing`` and the
lab's pytest plugin); the fixtures here keep their own names (fl_*): this package has its own lab server, and its
processes get a TMPDIR of their own.

    source scripts/env.sh && python -m pytest tests/e2e/faults -q

Isolation: every test gets its own TMPDIR (tempfile.gettempdir() of ansible and of the modules), so the byok-* work
directories and lock files it finds are its own, not those of other test runs on this machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import pytest

# tests/e2e/conftest.py (tests/e2e is on sys.path); ensure_shim for the tests of this package
from conftest import PYTHON, ROOT, VENV_BIN, ModuleRun, ensure_shim, project_env, wrap_under_new_kek  # noqa: F401 pylint: disable=unused-import
from lab import testing
from lab.testing import ONELINE_RE, SOFTHSM_LIB, Lab, Token, module_result, unique  # noqa: F401 pylint: disable=unused-import

ANSIBLE = str(VENV_BIN / "ansible") if (VENV_BIN / "ansible").exists() else "ansible"
ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook") if (VENV_BIN / "ansible-playbook").exists() else "ansible-playbook"
ANSIBLE_VAULT = str(VENV_BIN / "ansible-vault") if (VENV_BIN / "ansible-vault").exists() else "ansible-vault"
PLAYBOOKS = ROOT / "playbooks"
TRANSFER = PLAYBOOKS / "transfer.yml"

Run = testing.PlaybookRun


# ----------------------------------------------------------------------------------------------------------------------
# Environment
# ----------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def fl_collections(collections_path) -> str:
    """An ANSIBLE_COLLECTIONS_PATH whose ansible_collections/byok/keyvault is this checkout (not a stale build)."""
    return collections_path


@pytest.fixture(scope="session")
def fl_base_env(fl_collections) -> Dict[str, str]:
    """As base_env, without the caller's TMPDIR and REQUESTS_CA_BUNDLE, the default callback, unbuffered Python."""
    return project_env(fl_collections, testing.SCRUB_ISOLATED, {
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    })


@dataclass
class Work:
    """A test's private places: its dir, its TMPDIR, and the environment every process of the test gets."""
    path: Path
    tmpdir: Path
    env: Dict[str, str]

    def byok_dirs(self) -> List[str]:
        """byok-* directories in this test's tempfile.gettempdir() (work dirs holding .byok or KEK files).

        The host-lock folder (lock files hold at most their holder's pid, host and start time) is meant to stay and
        is not counted.
        """
        return sorted(p.name for p in self.tmpdir.glob("byok-*") if p.is_dir() and not _is_lock_dir(p))

    def byok_entries(self) -> List[str]:
        return sorted(p.name for p in self.tmpdir.glob("byok-*") if not _is_lock_dir(p))


_LOCK_HOLDER = re.compile(r"^(pid=\d+ host=\S+ started=\S+\n)?$")


def _is_lock_dir(path: Path) -> bool:
    """The collection's lock folder: byok-keyvault-locks-<uid>, holding only *.lock files that are empty or name their
    holder (a run killed while holding a lock leaves its file; lock files are removed on release otherwise)."""
    return path.name.startswith("byok-keyvault-locks-") and all(
        f.suffix == ".lock" and not f.is_symlink() and _LOCK_HOLDER.match(f.read_text()) for f in path.iterdir())


def new_work(path: Path, base_env: Dict[str, str]) -> Work:
    """A Work in path: TMPDIR, ansible's remote_tmp and local_tmp all inside it."""
    tmpdir = path / "tmp"
    tmpdir.mkdir(parents=True)
    (path / "ansible-remote-tmp").mkdir()
    (path / "ansible-local-tmp").mkdir()
    env = dict(base_env)
    env["TMPDIR"] = str(tmpdir)
    env["ANSIBLE_REMOTE_TMP"] = str(path / "ansible-remote-tmp")
    env["ANSIBLE_LOCAL_TEMP"] = str(path / "ansible-local-tmp")
    return Work(path=path, tmpdir=tmpdir, env=env)


@pytest.fixture
def fl_work(tmp_path, fl_base_env) -> Work:
    return new_work(tmp_path, fl_base_env)


# ----------------------------------------------------------------------------------------------------------------------
# The lab vault
# ----------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def fl_lab(lab_factory, fl_base_env) -> Lab:
    """The lab vault of this package's tests (its own server; tests use unique key and KEK names)."""
    return lab_factory("fl-lab", base_env=fl_base_env)


@pytest.fixture(autouse=True)
def _fl_faults_off(request):
    """Whatever a test did to the fault injector, the next test starts without faults."""
    yield
    if "fl_lab" in request.fixturenames:
        try:
            request.getfixturevalue("fl_lab").faults(off=True, slow_seconds=2)
        except Exception:  # pragma: no cover - the lab may already be gone at session end
            pass


# ----------------------------------------------------------------------------------------------------------------------
# SoftHSM2 tokens
# ----------------------------------------------------------------------------------------------------------------------

def new_token(directory: Path, base_env: Dict[str, str], label: Optional[str] = None, pin: Optional[str] = None) -> Token:
    """A fresh SoftHSM2 token in directory (own softhsm2.conf, random PINs unless given)."""
    return testing.new_token(directory, base_env, label, pin, prefix="ftok")


@pytest.fixture
def fl_make_token(tmp_path, fl_base_env):
    """Factory of fresh SoftHSM2 tokens."""
    counter = {"n": 0}

    def _make(label: Optional[str] = None, pin: Optional[str] = None) -> Token:
        counter["n"] += 1
        return new_token(tmp_path / ("softhsm-%d" % counter["n"]), fl_base_env, label, pin)

    return _make


# ----------------------------------------------------------------------------------------------------------------------
# Inventories of a fleet
# ----------------------------------------------------------------------------------------------------------------------

def rsa(name: str, **extra) -> dict:
    d = {"name": name, "vault": "premium", "key_type": "RSA", "key_size": 2048, "key_ops": ["sign", "verify"]}
    d.update(extra)
    return d


def ec(name: str, **extra) -> dict:
    d = {"name": name, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign", "verify"]}
    d.update(extra)
    return d


@dataclass
class Fleet:
    """HSM hosts (each a token and its byok_keys) and the inventory file that describes them."""
    inventory: Path
    hosts: Dict[str, Token]
    keys: Dict[str, List[dict]]
    kek_name: str
    manifest_dir: Path

    @property
    def names(self) -> List[str]:
        return [k["name"] for keys in self.keys.values() for k in keys]

    def key_vault(self, name: str) -> str:
        for keys in self.keys.values():
            for k in keys:
                if k["name"] == name:
                    return k["vault"]
        raise KeyError(name)


def write_inventory(path: Path, lab: Lab, hosts: Dict[str, Token], keys: Dict[str, List[dict]], kek_name: str,
                    manifest_dir: Path, vaults: Optional[Dict[str, dict]] = None, pin_values: Optional[Dict[str, str]] = None,
                    azure: Optional[dict] = None, extra_vars: Optional[dict] = None) -> Path:
    """An inventory like playbooks/inventory/lab.yml for these tokens and keys (YAML; pin_values may be !vault text)."""
    return testing.write_inventory(
        path, {name: testing.token_vars(token, keys[name], pin=not pin_values) for name, token in hosts.items()},
        vaults if vaults is not None else testing.lab_vaults(lab.env, kek_name),
        azure or testing.lab_azure(lab.env), manifest_dir, extra_vars=extra_vars, python=PYTHON, vaulted_pins=pin_values)


def new_fleet(lab: Lab, work: Work, keys_per_host: Dict[str, List[dict]], kek_name: Optional[str] = None,
              inventory_name: str = "inventory.yml", pins: Optional[Dict[str, str]] = None, **options) -> Fleet:
    """One fresh token per host (in work.path), and the inventory of these hosts and keys."""
    kek_name = kek_name or unique("fkek")
    hosts = {h: new_token(work.path / ("softhsm-%s-%s" % (h, uuid.uuid4().hex[:6])), work.env,
                          pin=(pins or {}).get(h)) for h in keys_per_host}
    manifest_dir = work.path / "manifests"
    inventory = write_inventory(work.path / inventory_name, lab, hosts, keys_per_host, kek_name, manifest_dir, **options)
    return Fleet(inventory=inventory, hosts=hosts, keys=keys_per_host, kek_name=kek_name, manifest_dir=manifest_dir)


@pytest.fixture
def fl_fleet(fl_lab, fl_work):
    """make(keys_per_host, kek_name=None, **inventory options) -> Fleet with one fresh token per host."""

    def _make(keys_per_host: Dict[str, List[dict]], kek_name: Optional[str] = None, **options) -> Fleet:
        return new_fleet(fl_lab, fl_work, keys_per_host, kek_name, **options)

    return _make


def eight_keys(tag: str) -> Dict[str, List[dict]]:
    """3 HSM hosts, 8 keys mixed RSA-2048 / EC P-256."""
    return {
        "hsm1": [rsa(unique("%s-r1" % tag)), ec(unique("%s-e1" % tag)), rsa(unique("%s-r2" % tag))],
        "hsm2": [ec(unique("%s-e2" % tag)), rsa(unique("%s-r3" % tag)), ec(unique("%s-e3" % tag))],
        "hsm3": [rsa(unique("%s-r4" % tag)), ec(unique("%s-e4" % tag))],
    }


# ----------------------------------------------------------------------------------------------------------------------
# Running ansible
# ----------------------------------------------------------------------------------------------------------------------

def playbook_cmd(inventory: Path, playbook: Path = TRANSFER, extra_args: Sequence[str] = ()) -> List[str]:
    return testing.playbook_cmd(inventory, playbook, extra_args, VENV_BIN)


def run_playbook(work: Work, inventory: Path, playbook: Path = TRANSFER, extra_args: Sequence[str] = (),
                 env: Optional[Dict[str, str]] = None, timeout: int = 300) -> Run:
    run_env = dict(work.env)
    run_env.update(env or {})
    return testing.run_playbook(run_env, work.path, playbook, inventory, extra_args=extra_args, timeout=timeout, bin_dir=VENV_BIN)


def _descendants(pid: int) -> List[int]:
    """Every process below pid (walks /proc), so a kill also reaches children that left the process group."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class Background:
    """ansible-playbook in its own process group, its output read line by line, killable with SIGKILL."""

    def __init__(self, work: Work, cmd: List[str], env: Optional[Dict[str, str]] = None):
        run_env = dict(work.env)
        run_env.update(env or {})
        self.proc = subprocess.Popen(cmd, env=run_env, cwd=str(work.path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True)
        self.lines: List[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.killed = False

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def wait_for(self, marker: str, timeout: float = 180) -> bool:
        """True when a line containing marker appeared; False when the process ended first or timed out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if any(marker in line for line in self.lines):
                    return True
                if self.proc.poll() is not None and not self._reader.is_alive():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))

    def kill(self) -> None:
        """SIGKILL to the whole process group and to every descendant (workers, module processes)."""
        pgid = self.proc.pid
        victims = _descendants(self.proc.pid)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.killed = True
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        # module processes that were reparented: wait until none of them is alive any more
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(os.path.exists("/proc/%d" % p) and _alive(p) for p in victims):
            time.sleep(0.05)

    def wait(self, timeout: float = 300) -> Run:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        output = self.output
        return Run(rc=rc, output=output, recap=testing.parse_recap(output), stdout=output)


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run_module(work: Work, module: str, args: dict, env: Optional[Dict[str, str]] = None, verbosity: int = 0,
               timeout: int = 180) -> Run:
    """ansible localhost -m byok.keyvault.<module> -a <json> (-o); module_result(run) is the module's JSON result."""
    run_env = dict(work.env)
    run_env.update(env or {})
    return testing.run_module(run_env, work.path, module, args, verbosity=verbosity, timeout=timeout, python=PYTHON, bin_dir=VENV_BIN)


def new_wrapped_key(lab: Lab, token: Token, work: Work, tag: str):
    """A new RSA-2048 key on the token, wrapped into work.path/<label>.byok under a new KEK of the lab's premium vault:
    (label, the .byok file, hsm_keygen's result, an environment for modules that need the token and the vault)."""
    label = unique(tag)
    env = dict(lab.azure_env, **token.env)
    gen = module_result(run_module(work, "hsm_keygen", dict(token.pkcs11_args(), label=label, key_type="RSA", key_size=2048),
                                   env=env))
    assert not gen.get("failed"), gen
    byok = work.path / ("%s.byok" % label)
    wrap_under_new_kek(lambda module, args, env=None: ModuleRun.of(run_module(work, module, args, env=env)), lab, token, label,
                       byok, unique("fkek"))
    return label, str(byok), gen, env


# ----------------------------------------------------------------------------------------------------------------------
# Assertions
# ----------------------------------------------------------------------------------------------------------------------

def version_counts(lab: Lab, names: Iterable[str], vault: str = "premium") -> Dict[str, int]:
    keys = lab.keys(vault)
    return {n: len(keys[n]["versions"]) if n in keys else 0 for n in names}


def assert_each_key_once(lab: Lab, fleet: Fleet, context: str = "") -> None:
    """Every key of the fleet is in its vault with exactly one version (nothing lost, nothing duplicated)."""
    dump = lab.dump()
    counts = {}
    for name in fleet.names:
        entry = dump[fleet.key_vault(name)]["keys"].get(name)
        counts[name] = len(entry["versions"]) if entry and not entry.get("deleted") else 0
    wrong = {n: c for n, c in counts.items() if c != 1}
    assert not wrong, "keys without exactly one vault version %s (0 = lost, >1 = duplicated): %s" % (context, wrong)


def assert_tokens_exact(fleet: Fleet, context: str = "") -> None:
    """Each token holds exactly one private and one public key object per expected label, and nothing else."""
    problems = {}
    for host, token in fleet.hosts.items():
        census = token.census()
        wanted = {k.get("label") or k["name"]: {"Private Key": 1, "Public Key": 1} for k in fleet.keys[host]}
        if census != wanted:
            problems[host] = {"found": census, "wanted": wanted}
    assert not problems, "token objects are not exactly the expected labels %s: %s" % (context, json.dumps(problems, indent=1))
