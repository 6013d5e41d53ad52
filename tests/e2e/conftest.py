# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end fixtures: a REAL lab Key Vault server, REAL SoftHSM2 tokens, REAL ansible / ansible-playbook runs.

Nothing here mocks the collection: modules run through ansible-core against the lab's HTTPS Key Vault API and
SoftHSM2 over PKCS#11.

    cd /work/main && source scripts/env.sh && python -m pytest tests/e2e -q -x
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
ANSIBLE = str(VENV_BIN / "ansible") if (VENV_BIN / "ansible").exists() else "ansible"
ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook") if (VENV_BIN / "ansible-playbook").exists() else "ansible-playbook"
SOFTHSM_LIB = "/usr/lib/softhsm/libsofthsm2.so"
TRANSFER_PLAYBOOK = ROOT / "playbooks" / "transfer.yml"
ANSIBLE_CFG = ROOT / "playbooks" / "ansible.cfg"

# Variables of the caller's shell that would leak into the modules and change what they do
_SCRUB = re.compile(r"^(AZURE_|LAB_|PKCS11_|SOFTHSM2_CONF$|ChrystokiConfigurationPath$|CKNFAST_|BYOK_|ANSIBLE_)")

RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)(?:\s+skipped=(?P<skipped>\d+))?(?:\s+rescued=(?P<rescued>\d+))?(?:\s+ignored=(?P<ignored>\d+))?",
    re.M)


# --------------------------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------------------------

def _free_base_port(count: int = 5) -> int:
    """A base port such that base..base+count-1 are all free on 127.0.0.1 (the lab uses base..base+3)."""
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
    raise RuntimeError("no 4 consecutive free ports found")


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
    env = {k: v for k, v in os.environ.items() if not _SCRUB.match(k)}
    env.update({
        "PATH": "%s:%s" % (VENV_BIN, env.get("PATH", "")),
        "ANSIBLE_COLLECTIONS_PATH": collections_path,
        "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


class Lab:
    """One lab Key Vault server (tests/lab) in its own state dir, on its own ports."""

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
        for _dummy in range(3):  # a port grabbed by someone else between the probe and the start: try other ports
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

    def dump(self) -> dict:
        """The vault state summary (`lab dump`): {vault: {keys: {name: {deleted, versions: [...]}}}}."""
        return json.loads(self.cli("dump").stdout)

    def keys(self, vault: str = "premium") -> dict:
        return self.dump()[vault]["keys"]

    def key_client(self, vault: str = "premium"):
        """An azure-keyvault-keys client on a lab vault (the real SDK over real HTTPS; for setup and independent checks)."""
        from azure.identity import ClientSecretCredential
        from azure.keyvault.keys import KeyClient

        credential = ClientSecretCredential(self.env["AZURE_TENANT"], self.env["AZURE_CLIENT_ID"], self.env["AZURE_SECRET"],
                                            authority=self.env["LAB_AUTHORITY"], disable_instance_discovery=True,
                                            connection_verify=self.env["LAB_CA"])
        return KeyClient(self.env["LAB_VAULT_%s" % vault.upper()], credential, connection_verify=self.env["LAB_CA"])

    def vault_key_sha256(self, name: str, vault: str = "premium") -> str:
        """SHA-256 of the SPKI of the current version of a vault key, computed here from the JWK the SDK returns."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        jwk = self.key_client(vault).get_key(name).key
        kty = str(getattr(jwk.kty, "value", jwk.kty))
        if kty.startswith("RSA"):
            public = rsa.RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()
        else:
            crv = str(getattr(jwk.crv, "value", jwk.crv))
            curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(), "P-256K": ec.SECP256K1()}[crv]
            public = ec.EllipticCurvePublicNumbers(int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"),
                                                   curve).public_key()
        spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(spki).hexdigest()

    # What the modules need to reach this lab
    @property
    def azure_env(self) -> Dict[str, str]:
        return {k: self.env[k] for k in ("AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_TENANT")}

    def azure_args(self, vault: str = "premium") -> Dict[str, str]:
        return {
            "vault_url": self.env["LAB_VAULT_%s" % vault.upper()],
            "vault_type": "managed_hsm" if vault == "mhsm" else "premium",
            "auth_source": "env",
            "cloud_environment": self.env["LAB_AUTHORITY"],
            "ca_bundle": self.env["LAB_CA"],
        }


@pytest.fixture(scope="session")
def lab(tmp_path_factory, base_env):
    """The lab vault shared by the whole session (tests use unique key names, so they do not see each other)."""
    state = tmp_path_factory.mktemp("lab") / "vault"
    instance = Lab(state, base_env).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def fresh_lab(tmp_path, base_env):
    """A lab vault of its own, empty, for a test that must prove that nothing at all was created."""
    instance = Lab(tmp_path / "fresh-vault", base_env).start()
    try:
        yield instance
    finally:
        instance.stop()


def unique(prefix: str) -> str:
    """A vault key name / HSM label nobody else uses (0-9 a-z A-Z - only)."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


# --------------------------------------------------------------------------------------------------------------------
# SoftHSM2 tokens
# --------------------------------------------------------------------------------------------------------------------

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
        """What a process needs to see this token (SOFTHSM2_CONF)."""
        return {"SOFTHSM2_CONF": str(self.conf)}

    def pkcs11_args(self, pin: Optional[str] = None) -> Dict[str, str]:
        """The PKCS#11 options of hsm_keygen / byok_wrap for this token."""
        return {"vendor": "softhsm", "pkcs11_module": SOFTHSM_LIB, "token_label": self.label,
                "user_pin": self.pin if pin is None else pin}

    def _env_for_tools(self) -> Dict[str, str]:
        env = dict(self.base_env)
        env.update(self.env)
        return env

    def public_key_sha256(self, label: str) -> str:
        """SHA-256 of the DER SubjectPublicKeyInfo of the public key object ``label``, read with pkcs11-tool (no login)."""
        out = self.directory / ("pub-%s.der" % secrets.token_hex(4))
        proc = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_LIB, "--token-label", self.label, "--read-object",
                               "--type", "pubkey", "--label", label, "--output-file", str(out)],
                              env=self._env_for_tools(), capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0 and out.exists(), "pkcs11-tool --read-object failed: %s%s" % (proc.stdout, proc.stderr)
        return hashlib.sha256(out.read_bytes()).hexdigest()

    def objects(self) -> List[Dict[str, str]]:
        """Every object on the token as pkcs11-tool sees it after a user login: [{class, label, ...}]."""
        proc = subprocess.run(["pkcs11-tool", "--module", SOFTHSM_LIB, "--token-label", self.label, "--login",
                               "--pin", self.pin, "--list-objects"], env=self._env_for_tools(), capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, "pkcs11-tool -O failed: %s%s" % (proc.stdout, proc.stderr)
        objects: List[Dict[str, str]] = []
        for line in proc.stdout.splitlines():
            m = re.match(r"^(Private Key|Public Key|Secret Key|Certificate|Data|Profile)\s+Object", line)
            if m:
                objects.append({"class": m.group(1), "header": line.strip()})
                continue
            m = re.match(r"^\s+(\w[\w ]*?):\s+(.*)$", line)
            if m and objects:
                objects[-1].setdefault(m.group(1).strip().lower(), m.group(2).strip())
        return objects


def new_token(directory: Path, base_env: Dict[str, str], label: Optional[str] = None) -> Token:
    """A fresh SoftHSM2 token in its own directory with its own softhsm2.conf and random PINs (any fixture scope)."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
                    % tokens)
    token = Token(label=label or unique("tok"), pin=secrets.token_hex(8), so_pin=secrets.token_hex(8),
                  directory=directory, conf=conf, base_env=base_env)
    env = dict(base_env)
    env.update(token.env)
    proc = subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", token.label, "--pin", token.pin,
                           "--so-pin", token.so_pin], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, "softhsm2-util --init-token failed: %s%s" % (proc.stdout, proc.stderr)
    return token


@pytest.fixture
def make_token(tmp_path, base_env):
    """Factory of fresh SoftHSM2 tokens, each in its own directory with its own softhsm2.conf and random PINs."""
    counter = {"n": 0}

    def _make(label: Optional[str] = None) -> Token:
        counter["n"] += 1
        return new_token(tmp_path / ("softhsm-%d" % counter["n"]), base_env, label)

    return _make


# --------------------------------------------------------------------------------------------------------------------
# Running ansible
# --------------------------------------------------------------------------------------------------------------------

@dataclass(repr=False)
class PlaybookRun:
    rc: int
    output: str
    recap: Dict[str, Dict[str, int]]
    seconds: float = 0.0

    def __str__(self) -> str:
        return "rc=%d (%.1f s)\n%s" % (self.rc, self.seconds, self.output[-12000:])

    __repr__ = __str__


def parse_recap(output: str) -> Dict[str, Dict[str, int]]:
    """{host: {ok, changed, unreachable, failed, skipped, rescued, ignored}} from the PLAY RECAP of a default-callback run."""
    tail = output.rsplit("PLAY RECAP", 1)
    if len(tail) != 2:
        return {}
    recap = {}
    for m in RECAP_RE.finditer(tail[1]):
        recap[m.group("host")] = {k: int(v) for k, v in m.groupdict().items() if k != "host" and v is not None}
    return recap


def _env(base_env: Dict[str, str], extra_env: Optional[Dict[str, str]]) -> Dict[str, str]:
    env = dict(base_env)
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"  # the project's ansible.cfg says yaml, which folds long lines
    env["COLUMNS"] = "250"  # the report table shows every column (test_transfer.report_rows reads them)
    env.update(extra_env or {})
    return env


@pytest.fixture
def run_playbook(base_env, tmp_path):
    """run_playbook(playbook, inventory, extra_env=None, check=False, extra_args=()) -> PlaybookRun(rc, output, recap)."""

    def _run(playbook, inventory, extra_env: Optional[Dict[str, str]] = None, check: bool = False,
             extra_args=(), timeout: int = 300) -> PlaybookRun:
        cmd = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook)] + (["--check"] if check else []) + list(extra_args)
        started = time.monotonic()
        proc = subprocess.run(cmd, env=_env(base_env, extra_env), cwd=str(tmp_path), capture_output=True, text=True,
                              timeout=timeout, check=False)
        output = proc.stdout + proc.stderr
        return PlaybookRun(rc=proc.returncode, output=output, recap=parse_recap(proc.stdout),
                           seconds=time.monotonic() - started)

    return _run


@dataclass(repr=False)
class ModuleRun:
    rc: int
    output: str
    result: dict

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


ONELINE_RE = re.compile(r"^(?P<host>\S+) \| (?P<state>SUCCESS|CHANGED|FAILED!) => (?P<json>\{.*\})\s*$", re.M)


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
        fqcn = module if "." in module else "byok.keyvault.%s" % module
        run_env = _env(base_env, env)
        cmd = [ANSIBLE, "localhost", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % PYTHON,
               "-m", fqcn, "-a", json.dumps(args), "-o"] + (["--check"] if check else [])
        proc = subprocess.run(cmd, env=run_env, cwd=str(work), capture_output=True, text=True, timeout=timeout, check=False)
        output = proc.stdout + proc.stderr
        found = list(ONELINE_RE.finditer(proc.stdout))
        assert found, "no result line from ansible (rc=%d):\n%s" % (proc.returncode, output[-6000:])
        result = json.loads(found[-1].group("json"))
        if found[-1].group("state") == "FAILED!":
            result.setdefault("failed", True)
        return ModuleRun(rc=proc.returncode, output=output, result=result)

    return _run


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
