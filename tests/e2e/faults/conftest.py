# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the "nothing lost, nothing leaked" tests: a REAL lab Key Vault (with fault injection), REAL SoftHSM2
tokens, REAL ansible-playbook runs of playbooks/transfer.yml, and the tools to kill them, scan what they wrote and
count what they created.

Self-contained on purpose (tests/e2e/conftest.py is written at the same time by someone else): every fixture here has
its own name (fl_*), so nothing shadows or depends on the parent conftest.

    cd /work/main && source scripts/env.sh && python -m pytest tests/e2e/faults -q

Isolation: every test gets its own TMPDIR (tempfile.gettempdir() of ansible and of the modules), so the byok-* work
directories and lock files it finds are its own, not those of other test runs on this machine.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
ANSIBLE = str(VENV_BIN / "ansible") if (VENV_BIN / "ansible").exists() else "ansible"
ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook") if (VENV_BIN / "ansible-playbook").exists() else "ansible-playbook"
ANSIBLE_VAULT = str(VENV_BIN / "ansible-vault") if (VENV_BIN / "ansible-vault").exists() else "ansible-vault"
SOFTHSM_LIB = "/usr/lib/softhsm/libsofthsm2.so"
PLAYBOOKS = ROOT / "playbooks"
TRANSFER = PLAYBOOKS / "transfer.yml"
ANSIBLE_CFG = PLAYBOOKS / "ansible.cfg"

# Variables of the caller's shell that would change what the modules do
_SCRUB = re.compile(r"^(AZURE_|LAB_|PKCS11_|SOFTHSM2_CONF$|ChrystokiConfigurationPath$|CKNFAST_|BYOK_|ANSIBLE_|TMPDIR$|"
                    r"REQUESTS_CA_BUNDLE$)")

RECAP_RE = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
                      r"failed=(?P<failed>\d+)", re.M)


def unique(prefix: str) -> str:
    """A vault key name / HSM label nobody else uses (0-9 a-z A-Z - only)."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


# ----------------------------------------------------------------------------------------------------------------------
# Environment
# ----------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def fl_collections(tmp_path_factory) -> str:
    """An ANSIBLE_COLLECTIONS_PATH whose ansible_collections/byok/keyvault is this checkout (not a stale build)."""
    base = tmp_path_factory.mktemp("fl-collections")
    ns = base / "ansible_collections" / "byok"
    ns.mkdir(parents=True)
    (ns / "keyvault").symlink_to(ROOT, target_is_directory=True)
    return str(base)


@pytest.fixture(scope="session")
def fl_base_env(fl_collections) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _SCRUB.match(k)}
    env.update({
        "PATH": "%s:%s" % (VENV_BIN, env.get("PATH", "")),
        "ANSIBLE_COLLECTIONS_PATH": fl_collections,
        "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


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

def _free_base_port(count: int = 5) -> int:
    for _dummy in range(200):
        base = 20000 + secrets.randbelow(40000)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no %d consecutive free ports" % count)


class Lab:
    """One lab Key Vault server (tests/lab) with its own state dir and ports."""

    def __init__(self, state_dir: Path, base_env: Dict[str, str]):
        self.state_dir = state_dir
        self._env = dict(base_env)
        self._env["PYTHONPATH"] = str(ROOT / "tests")
        self.env: Dict[str, str] = {}
        self.base_port: Optional[int] = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([PYTHON, "-m", "lab", args[0], "--state-dir", str(self.state_dir)] + list(args[1:]),
                              env=self._env, cwd=str(ROOT), capture_output=True, text=True, timeout=60, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError("lab %s failed (%d): %s%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def start(self) -> "Lab":
        last = None
        for _dummy in range(3):
            self.base_port = _free_base_port()
            self.cli("init", "--port", str(self.base_port))
            proc = self.cli("start", check=False)
            if proc.returncode == 0:
                self.env = json.loads(self.cli("env", "--json").stdout)
                return self
            last = proc
        raise RuntimeError("lab did not start: %s%s" % (last.stdout, last.stderr))

    def stop(self) -> None:
        self.cli("stop", check=False)

    # state
    def dump(self) -> dict:
        return json.loads(self.cli("dump").stdout)

    def keys(self, vault: str = "premium") -> dict:
        return self.dump()[vault]["keys"]

    def versions(self, name: str, vault: str = "premium") -> List[dict]:
        key = self.keys(vault).get(name)
        return list(key["versions"]) if key else []

    # faults (admin endpoint on the base port, HTTPS with the lab CA, the admin secret of `lab env`)
    def _admin(self, method: str, what: str, body: Optional[dict] = None) -> dict:
        ctx = ssl.create_default_context(cafile=self.env["LAB_CA"])
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("https://127.0.0.1:%d/lab/%s" % (self.base_port, what), data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "X-Lab-Admin-Secret": self.env["LAB_ADMIN_SECRET"]})
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return json.loads(resp.read().decode() or "{}")

    def faults(self, **body) -> dict:
        """POST /lab/faults: faults(rate=0.3, kinds=[...], seed=N) | faults(next=[...], method="PUT") | faults(off=True)."""
        return self._admin("POST", "faults", body)

    def faults_state(self) -> dict:
        return self._admin("GET", "faults")

    @property
    def azure_env(self) -> Dict[str, str]:
        return {k: self.env[k] for k in ("AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_TENANT")}

    def azure_args(self, vault: str = "premium") -> Dict[str, str]:
        return {"vault_url": self.env["LAB_VAULT_%s" % vault.upper()], "vault_type": "premium", "auth_source": "env",
                "cloud_environment": self.env["LAB_AUTHORITY"], "ca_bundle": self.env["LAB_CA"]}

    def vault_url(self, vault: str = "premium") -> str:
        return self.env["LAB_VAULT_%s" % vault.upper()]


@pytest.fixture(scope="session")
def fl_lab(tmp_path_factory, fl_base_env):
    """The lab vault of this package's tests (its own server; tests use unique key and KEK names)."""
    instance = Lab(tmp_path_factory.mktemp("fl-lab") / "vault", fl_base_env).start()
    try:
        yield instance
    finally:
        instance.stop()


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

@dataclass
class Token:
    label: str
    pin: str
    so_pin: str
    directory: Path
    conf: Path
    base_env: Dict[str, str] = field(repr=False)

    @property
    def env(self) -> Dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    def pkcs11_args(self) -> Dict[str, str]:
        return {"vendor": "softhsm", "pkcs11_module": SOFTHSM_LIB, "token_label": self.label, "user_pin": self.pin}

    def objects(self) -> List[Dict[str, str]]:
        """Every object of the token after a user login (pkcs11-tool --list-objects): [{class, label, id}]."""
        env = dict(self.base_env)
        env.update(self.env)
        proc = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_LIB, "--token-label", self.label, "--login", "--pin",
                               self.pin, "--list-objects"], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, "pkcs11-tool --list-objects failed: %s%s" % (proc.stdout, proc.stderr)
        objects: List[Dict[str, str]] = []
        for line in proc.stdout.splitlines():
            m = re.match(r"^(Private Key|Public Key|Secret Key|Certificate|Data|Profile)\s+Object", line)
            if m:
                objects.append({"class": m.group(1), "label": None, "id": None})
                continue
            m = re.match(r"^\s+(label|ID):\s*(.*)$", line)
            if m and objects:
                objects[-1][m.group(1).lower()] = m.group(2).strip()
        return objects

    def census(self) -> Dict[str, Dict[str, int]]:
        """{label: {class: count}} of the token's objects."""
        out: Dict[str, Dict[str, int]] = {}
        for o in self.objects():
            per = out.setdefault(o["label"] or "<no label>", {})
            per[o["class"]] = per.get(o["class"], 0) + 1
        return out


def new_token(directory: Path, base_env: Dict[str, str], label: Optional[str] = None, pin: Optional[str] = None) -> Token:
    """A fresh SoftHSM2 token in directory (own softhsm2.conf, random PINs unless given)."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
                    % tokens)
    token = Token(label=label or unique("ftok"), pin=pin or secrets.token_hex(8), so_pin=secrets.token_hex(8),
                  directory=directory, conf=conf, base_env=base_env)
    env = dict(base_env)
    env.update(token.env)
    proc = subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", token.label, "--pin", token.pin,
                           "--so-pin", token.so_pin], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, "softhsm2-util --init-token failed: %s%s" % (proc.stdout, proc.stderr)
    return token


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
    if vaults is None:
        vaults = {"premium": {"url": lab.vault_url("premium"), "type": "premium", "kek_name": kek_name, "kek_size": 2048}}
    hsm_hosts = {}
    for name, token in hosts.items():
        hsm_hosts[name] = {"byok_token_label": token.label, "byok_hsm_environment": token.env, "byok_keys": keys[name]}
        if not pin_values:
            hsm_hosts[name]["byok_user_pin"] = token.pin
    all_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": PYTHON,
        "byok_controller": "localhost",
        "byok_manifest_dir": str(manifest_dir),
        "byok_vaults": vaults,
        "byok_azure": azure or {"auth_source": "env", "cloud_environment": lab.env["LAB_AUTHORITY"],
                                "ca_bundle": lab.env["LAB_CA"]},
    }
    all_vars.update(extra_vars or {})
    inventory = {"all": {"vars": all_vars, "children": {
        "byok_hsm_hosts": {"vars": {"byok_hsm_vendor": "softhsm", "byok_pkcs11_module": SOFTHSM_LIB}, "hosts": hsm_hosts},
        "controllers": {"hosts": {"localhost": {}}}}}}
    text = json.dumps(inventory, indent=1)  # JSON is YAML
    if pin_values:
        # "byok_user_pin": !vault | ... per host: inserted as YAML after the JSON is turned into flow-free YAML
        import yaml  # ansible-core depends on PyYAML
        for name, vaulted in pin_values.items():
            hsm_hosts[name]["byok_user_pin"] = "__VAULTED_%s__" % name
        text = yaml.safe_dump(inventory, default_flow_style=False, sort_keys=False, width=1000)
        for name, vaulted in pin_values.items():
            indent = re.search(r"^( *)byok_user_pin: __VAULTED_%s__$" % re.escape(name), text, re.M).group(1)
            block = "\n".join(indent + "  " + line for line in vaulted.strip().splitlines())
            text = text.replace("byok_user_pin: __VAULTED_%s__" % name, "byok_user_pin: !vault |\n" + block)
    path.write_text(text)
    return path


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

@dataclass(repr=False)
class Run:
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def recap(self) -> Dict[str, Dict[str, int]]:
        tail = self.stdout.rsplit("PLAY RECAP", 1)
        if len(tail) != 2:
            return {}
        return {m.group("host"): {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                for m in RECAP_RE.finditer(tail[1])}

    def __str__(self) -> str:
        return "rc=%d\n%s" % (self.rc, self.output[-12000:])

    __repr__ = __str__


def playbook_cmd(inventory: Path, playbook: Path = TRANSFER, extra_args: Sequence[str] = ()) -> List[str]:
    return [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook)] + list(extra_args)


def run_playbook(work: Work, inventory: Path, playbook: Path = TRANSFER, extra_args: Sequence[str] = (),
                 env: Optional[Dict[str, str]] = None, timeout: int = 300) -> Run:
    run_env = dict(work.env)
    run_env.update(env or {})
    proc = subprocess.run(playbook_cmd(inventory, playbook, extra_args), env=run_env, cwd=str(work.path),
                          capture_output=True, text=True, timeout=timeout, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)


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
        return Run(rc, self.output, "")


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run_module(work: Work, module: str, args: dict, env: Optional[Dict[str, str]] = None, verbosity: int = 0,
               timeout: int = 180) -> Run:
    """ansible localhost -m byok.keyvault.<module> -a <json> (-o), the module's JSON result in .result."""
    run_env = dict(work.env)
    run_env.update(env or {})
    cmd = [ANSIBLE, "localhost", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % PYTHON,
           "-m", "byok.keyvault.%s" % module, "-a", json.dumps(args), "-o"] + (["-" + "v" * verbosity] if verbosity else [])
    proc = subprocess.run(cmd, env=run_env, cwd=str(work.path), capture_output=True, text=True, timeout=timeout, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)


ONELINE_RE = re.compile(r"^\S+ \| (?P<state>SUCCESS|CHANGED|FAILED!) => (?P<json>\{.*\})\s*$", re.M)


def module_result(run: Run) -> dict:
    found = list(ONELINE_RE.finditer(run.stdout))
    assert found, "no one-line result from ansible:\n%s" % run
    result = json.loads(found[-1].group("json"))
    if found[-1].group("state") == "FAILED!":
        result.setdefault("failed", True)
    return result


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
