# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a test of byok.keyvault playbooks needs around the lab, in one place (the fixtures of :mod:`pytest_plugin`
and of the project's suites are built on it):

* :class:`Lab`: a lab server in this process on free ports (``LabServer(port=0)``, the ports written to its state
  directory so that ``python -m lab ... --state-dir`` reaches it), with its state, faults, settings and an SDK client;
  or a handle on a lab started with the CLI (:meth:`Lab.attach`)
* :func:`free_base_port`: the one search for a block of free ports, for a lab started with ``python -m lab init --port``
* :class:`Token` / :func:`new_token`: SoftHSM2 tokens, each with its own ``softhsm2.conf`` and random PINs
* :func:`run_playbook`, :func:`run_module`, :func:`module_result`: real ``ansible-playbook`` / ``ansible`` runs
* :func:`write_inventory` (with :func:`token_vars`, :func:`lab_vaults`, :func:`lab_azure`): the one writer of
  transfer inventories

Standard library only at import time; the server, ``cryptography`` and the Azure SDK are imported when used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
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
from typing import Dict, Iterable, List, Optional, Sequence, Union

from . import config

SOFTHSM_LIB = "/usr/lib/softhsm/libsofthsm2.so"

#: variables of the caller's shell that would leak into the modules and change what they do
SCRUB = re.compile(r"^(AZURE_|LAB_|PKCS11_|SOFTHSM2_CONF$|ChrystokiConfigurationPath$|CKNFAST_|BYOK_|ANSIBLE_)")
#: ... and, for tests that own their temporary directory and CA trust, TMPDIR and REQUESTS_CA_BUNDLE too
SCRUB_ISOLATED = re.compile(SCRUB.pattern[:-1] + r"|TMPDIR$|REQUESTS_CA_BUNDLE$)")

PathLike = Union[str, Path]


def unique(prefix: str) -> str:
    """A vault key name / HSM label nobody else uses (0-9 a-z A-Z - only)."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


# ----------------------------------------------------------------------------------------------------------------------
# Ports and the lab
# ----------------------------------------------------------------------------------------------------------------------

def free_base_port(count: int = config.PORT_SPAN) -> int:
    """A base port such that base..base+count-1 are all free on 127.0.0.1 (for ``python -m lab init --port``).

    A lab in this process needs none: :class:`Lab` binds free ports itself.
    """
    for _dummy in range(200):
        base = 20000 + secrets.randbelow(40000)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no %d consecutive free ports found" % count)


class Lab:
    """One lab Key Vault in its own state directory.

    ``Lab(state_dir).start()`` runs the server in this process on free ports; ``Lab(state_dir).attach()`` is a handle on
    a server the CLI started (``make demo``, ``python -m lab start``).  ``env`` is what ``python -m lab env --json``
    prints.  ``base_env`` is the environment of the CLI calls (:meth:`cli`).
    """

    def __init__(self, state_dir: PathLike, base_env: Optional[Dict[str, str]] = None, python: str = sys.executable,
                 settings: Optional[dict] = None) -> None:
        self.state_dir = Path(state_dir)
        self._env = dict(os.environ if base_env is None else base_env)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, self._env.get("PYTHONPATH", "")) if p)
        self._python = python
        self._settings = settings
        self.env: Dict[str, str] = {}
        self.base_port: Optional[int] = None
        self.server = None  # the LabServer while it runs in this process
        self._in_process = False

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> "Lab":
        from .server import LabServer  # pylint: disable=import-outside-toplevel  # cryptography only when used

        self.server = LabServer(str(self.state_dir), port=0, record_ports=True, settings=self._settings).start()
        self._in_process = True
        self.base_port = self.server.port()
        self.env = self.server.env()
        return self

    def attach(self) -> "Lab":
        """A handle on the lab the CLI runs in this state directory."""
        self.env = json.loads(self.cli("env", "--json").stdout)
        self.base_port = config.load(str(self.state_dir)).base_port
        return self

    def stop(self) -> None:
        """Stop the server: this process's (again: nothing), or the one the CLI runs in this state directory."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        elif not self._in_process and (self.state_dir / config.CONFIG_FILE).exists():
            self.cli("stop", check=False)

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``python -m lab ARGS[0] --state-dir STATE_DIR ARGS[1:]``."""
        proc = subprocess.run([self._python, "-m", "lab", args[0], "--state-dir", str(self.state_dir)] + list(args[1:]),
                              env=self._env, capture_output=True, text=True, timeout=60, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError("lab %s failed (%d): %s%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
        return proc

    # -- the admin API ------------------------------------------------------------------------------------------------
    def admin(self, method: str, what: str, body: Optional[dict] = None) -> dict:
        """``/lab/<what>`` with the admin secret (in this process: the same endpoint, without the network)."""
        cfg = config.load(str(self.state_dir))
        headers = {"Content-Type": "application/json"}
        headers.update(config.admin_headers(cfg))
        data = json.dumps(body).encode("utf-8") if body is not None else b""
        if self.server is not None:
            thread = threading.current_thread()
            previous = getattr(thread, "lab_owner", None)
            thread.lab_owner = self.server  # type: ignore[attr-defined]  # what it logs goes to this lab's log
            try:
                reply = self.server.handle("login", method, "/lab/%s" % what, headers, data)
            finally:
                thread.lab_owner = previous  # type: ignore[attr-defined]
            if reply.status != 200:
                raise RuntimeError("lab admin %s /lab/%s: %d %s" % (method, what, reply.status, reply.body))
            return reply.body
        request = urllib.request.Request("%s/lab/%s" % (cfg.authority, what), data=data or None, method=method, headers=headers)
        context = ssl.create_default_context(cafile=cfg.ca_path)
        with urllib.request.urlopen(request, context=context, timeout=30) as response:  # nosec - the lab's https URL
            return json.loads(response.read().decode("utf-8") or "{}")

    def dump(self) -> dict:
        """The vault state summary (``python -m lab dump``): {vault: {keys: {name: {deleted, versions: [...]}}}}."""
        return self.admin("GET", "state")

    def keys(self, vault: str = "premium") -> dict:
        return self.dump()[vault]["keys"]

    def versions(self, name: str, vault: str = "premium") -> List[dict]:
        key = self.keys(vault).get(name)
        return list(key["versions"]) if key else []

    def reset(self) -> dict:
        return self.admin("POST", "reset", {})

    def faults(self, **body) -> dict:
        """faults(rate=0.3, kinds=[...], seed=N) | faults(next=[...], method="PUT") | faults(off=True)."""
        return self.admin("POST", "faults", body)

    def faults_state(self) -> dict:
        return self.admin("GET", "faults")

    def settings(self, body: Optional[dict] = None) -> dict:
        """Service limits and vault options (``{"limits": {...}, "vaults": {...}}``); without body: what they are."""
        return self.admin("POST", "settings", body) if body is not None else self.admin("GET", "settings")

    # -- what the modules need to reach this lab ---------------------------------------------------------------------
    @property
    def azure_env(self) -> Dict[str, str]:
        return {k: self.env[k] for k in ("AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_TENANT")}

    def vault_url(self, vault: str = "premium") -> str:
        return self.env["LAB_VAULT_%s" % vault.upper()]

    def azure_args(self, vault: str = "premium") -> Dict[str, str]:
        return {
            "vault_url": self.vault_url(vault),
            "vault_type": "managed_hsm" if vault == "mhsm" else "premium",
            "auth_source": "env",
            "cloud_environment": self.env["LAB_AUTHORITY"],
            "ca_bundle": self.env["LAB_CA"],
        }

    # -- independent checks with the real SDK --------------------------------------------------------------------------
    def key_client(self, vault: str = "premium"):
        """An azure-keyvault-keys client on a lab vault (the real SDK over real HTTPS; for setup and independent checks)."""
        from azure.identity import ClientSecretCredential  # pylint: disable=import-outside-toplevel
        from azure.keyvault.keys import KeyClient  # pylint: disable=import-outside-toplevel

        credential = ClientSecretCredential(self.env["AZURE_TENANT"], self.env["AZURE_CLIENT_ID"], self.env["AZURE_SECRET"],
                                            authority=self.env["LAB_AUTHORITY"], disable_instance_discovery=True,
                                            connection_verify=self.env["LAB_CA"])
        return KeyClient(self.vault_url(vault), credential, connection_verify=self.env["LAB_CA"])

    def vault_key_sha256(self, name: str, vault: str = "premium") -> str:
        """SHA-256 of the SPKI of the current version of a vault key, computed here from the JWK the SDK returns."""
        from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives.asymmetric import ec, rsa  # pylint: disable=import-outside-toplevel

        jwk = self.key_client(vault).get_key(name).key
        kty = str(getattr(jwk.kty, "value", jwk.kty))
        if kty.startswith("RSA"):
            public = rsa.RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()
        else:
            crv = str(getattr(jwk.crv, "value", jwk.crv))
            curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(), "P-256K": ec.SECP256K1()}[crv]
            public = ec.EllipticCurvePublicNumbers(int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"), curve).public_key()
        spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(spki).hexdigest()


# ----------------------------------------------------------------------------------------------------------------------
# SoftHSM2 tokens
# ----------------------------------------------------------------------------------------------------------------------

_OBJECT_RE = re.compile(r"^(Private Key|Public Key|Secret Key|Certificate|Data|Profile)\s+Object")
_ATTRIBUTE_RE = re.compile(r"^\s+(\w[\w ]*?):\s*(.*)$")


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

    def _tool(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(self.base_env)
        env.update(self.env)
        return subprocess.run(["pkcs11-tool", "--module", SOFTHSM_LIB, "--token-label", self.label] + list(args),
                              env=env, capture_output=True, text=True, timeout=60, check=False)

    def public_key_sha256(self, label: str) -> str:
        """SHA-256 of the DER SubjectPublicKeyInfo of the public key object ``label``, read with pkcs11-tool (no login)."""
        out = self.directory / ("pub-%s.der" % secrets.token_hex(4))
        proc = self._tool("--read-object", "--type", "pubkey", "--label", label, "--output-file", str(out))
        assert proc.returncode == 0 and out.exists(), "pkcs11-tool --read-object failed: %s%s" % (proc.stdout, proc.stderr)
        return hashlib.sha256(out.read_bytes()).hexdigest()

    def objects(self) -> List[Dict[str, Optional[str]]]:
        """Every object on the token after a user login (pkcs11-tool --list-objects): [{class, header, label, id, ...}]."""
        proc = self._tool("--login", "--pin", self.pin, "--list-objects")
        assert proc.returncode == 0, "pkcs11-tool --list-objects failed: %s%s" % (proc.stdout, proc.stderr)
        objects: List[Dict[str, Optional[str]]] = []
        for line in proc.stdout.splitlines():
            found = _OBJECT_RE.match(line)
            if found:
                objects.append({"class": found.group(1), "header": line.strip(), "label": None, "id": None})
                continue
            found = _ATTRIBUTE_RE.match(line)
            if found and objects:
                name = found.group(1).strip().lower()
                if objects[-1].get(name) is None:
                    objects[-1][name] = found.group(2).strip()
        return objects

    def census(self) -> Dict[str, Dict[str, int]]:
        """{label: {class: count}} of the token's objects."""
        out: Dict[str, Dict[str, int]] = {}
        for obj in self.objects():
            per = out.setdefault(obj["label"] or "<no label>", {})
            per[obj["class"]] = per.get(obj["class"], 0) + 1
        return out


def new_token(directory: Path, base_env: Dict[str, str], label: Optional[str] = None, pin: Optional[str] = None,
              prefix: str = "tok") -> Token:
    """A fresh SoftHSM2 token in its own directory with its own softhsm2.conf and random PINs (unless given)."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
                    % tokens)
    token = Token(label=label or unique(prefix), pin=pin or secrets.token_hex(8), so_pin=secrets.token_hex(8),
                  directory=directory, conf=conf, base_env=base_env)
    env = dict(base_env)
    env.update(token.env)
    proc = subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", token.label, "--pin", token.pin,
                           "--so-pin", token.so_pin], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, "softhsm2-util --init-token failed: %s%s" % (proc.stdout, proc.stderr)
    return token


# ----------------------------------------------------------------------------------------------------------------------
# Running ansible
# ----------------------------------------------------------------------------------------------------------------------

RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)(?:\s+skipped=(?P<skipped>\d+))?(?:\s+rescued=(?P<rescued>\d+))?(?:\s+ignored=(?P<ignored>\d+))?",
    re.M)
ONELINE_RE = re.compile(r"^(?P<host>\S+) \| (?P<state>SUCCESS|CHANGED|FAILED!) => (?P<json>\{.*\})\s*$", re.M)


def parse_recap(output: str) -> Dict[str, Dict[str, int]]:
    """{host: {ok, changed, unreachable, failed, skipped, rescued, ignored}} from the PLAY RECAP of a default-callback run."""
    tail = output.rsplit("PLAY RECAP", 1)
    if len(tail) != 2:
        return {}
    recap = {}
    for found in RECAP_RE.finditer(tail[1]):
        recap[found.group("host")] = {k: int(v) for k, v in found.groupdict().items() if k != "host" and v is not None}
    return recap


@dataclass(repr=False)
class PlaybookRun:
    """One ansible or ansible-playbook run: exit code, output (stdout + stderr), the PLAY RECAP, wall seconds."""

    rc: int
    output: str
    recap: Dict[str, Dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""

    def __str__(self) -> str:
        return "rc=%d (%.1f s)\n%s" % (self.rc, self.seconds, self.output[-12000:])

    __repr__ = __str__


def ansible_env(base_env: Dict[str, str], extra_env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """base_env with the default callback and JSON results (parseable: the project's ansible.cfg folds YAML), plus extra_env."""
    env = dict(base_env)
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"  # the project's ansible.cfg says yaml, which folds long lines
    env["COLUMNS"] = "250"  # the report table shows every column (test_transfer.report_rows reads them)
    env.update(extra_env or {})
    return env


def _tool(name: str, bin_dir: Optional[Path]) -> str:
    if bin_dir is not None and (bin_dir / name).exists():
        return str(bin_dir / name)
    return shutil.which(name) or name


def run_playbook(env: Dict[str, str], cwd: PathLike, playbook: PathLike, inventory: PathLike, check: bool = False,
                 extra_args: Sequence[str] = (), timeout: int = 300, bin_dir: Optional[Path] = None) -> PlaybookRun:
    """``ansible-playbook -i INVENTORY PLAYBOOK [--check] EXTRA_ARGS`` in cwd with exactly env."""
    cmd = playbook_cmd(inventory, playbook, (["--check"] if check else []) + list(extra_args), bin_dir)
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=str(cwd), capture_output=True, text=True, timeout=timeout, check=False)
    return PlaybookRun(rc=proc.returncode, output=proc.stdout + proc.stderr, recap=parse_recap(proc.stdout),
                       seconds=time.monotonic() - started, stdout=proc.stdout, stderr=proc.stderr)


def playbook_cmd(inventory: PathLike, playbook: PathLike, extra_args: Sequence[str] = (), bin_dir: Optional[Path] = None) -> List[str]:
    return [_tool("ansible-playbook", bin_dir), "-i", str(inventory), str(playbook)] + list(extra_args)


def run_module(env: Dict[str, str], cwd: PathLike, module: str, args: dict, check: bool = False, verbosity: int = 0,
               timeout: int = 180, python: str = sys.executable, bin_dir: Optional[Path] = None) -> PlaybookRun:
    """``ansible localhost -m byok.keyvault.MODULE -a JSON -o`` over the local connection with python (see :func:`module_result`)."""
    fqcn = module if "." in module else "byok.keyvault.%s" % module
    cmd = [_tool("ansible", bin_dir), "localhost", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % python,
           "-m", fqcn, "-a", json.dumps(args), "-o"] + (["--check"] if check else []) + (["-" + "v" * verbosity] if verbosity else [])
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=str(cwd), capture_output=True, text=True, timeout=timeout, check=False)
    return PlaybookRun(rc=proc.returncode, output=proc.stdout + proc.stderr, seconds=time.monotonic() - started,
                       stdout=proc.stdout, stderr=proc.stderr)


def module_result(run: PlaybookRun) -> dict:
    """The module's JSON as Ansible reports it on its one-line result (``failed`` set when it failed)."""
    found = list(ONELINE_RE.finditer(run.stdout))
    assert found, "no result line from ansible (rc=%d):\n%s" % (run.rc, run.output[-6000:])
    result = json.loads(found[-1].group("json"))
    if found[-1].group("state") == "FAILED!":
        result.setdefault("failed", True)
    return result


# ----------------------------------------------------------------------------------------------------------------------
# Inventories
# ----------------------------------------------------------------------------------------------------------------------

def token_vars(token: Token, keys: List[dict], pin: bool = True) -> dict:
    """The host variables of an HSM host that uses token for keys (byok_user_pin left out with pin=False)."""
    out = {"byok_token_label": token.label}
    if pin:
        out["byok_user_pin"] = token.pin
    out.update({"byok_hsm_environment": token.env, "byok_keys": keys})
    return out


def lab_vaults(env: Dict[str, str], kek_name: str, kek_size: int = 2048, names: Iterable[str] = ("premium",)) -> dict:
    """``byok_vaults`` for lab vaults (``env``: what ``python -m lab env`` prints), all with the same KEK."""
    return {name: {"url": env["LAB_VAULT_%s" % name.upper()], "type": "managed_hsm" if name == "mhsm" else "premium",
                   "kek_name": kek_name, "kek_size": kek_size} for name in names}


def lab_azure(env: Dict[str, str], **extra) -> dict:
    """``byok_azure`` for the lab: credentials from the environment, the lab's authority and CA."""
    out = {"auth_source": "env", "cloud_environment": env["LAB_AUTHORITY"], "ca_bundle": env["LAB_CA"]}
    out.update(extra)
    return out


def inventory(hsm_hosts: Dict[str, dict], vaults: Optional[dict], azure: Optional[dict], manifest_dir: PathLike,
              hsm_vars: Optional[dict] = None, extra_vars: Optional[dict] = None, python: str = "{{ ansible_playbook_python }}") -> dict:
    """A transfer inventory like playbooks/inventory/lab.yml: ``hsm_hosts`` ({host: host variables}) in byok_hsm_hosts
    (softhsm, SoftHSM2's library, plus ``hsm_vars``), localhost as the controller, ``extra_vars`` in all.vars;
    byok_vaults and byok_azure left out when None."""
    group_vars = {"byok_hsm_vendor": "softhsm", "byok_pkcs11_module": SOFTHSM_LIB}
    group_vars.update(hsm_vars or {})
    all_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": python,
        "byok_controller": "localhost",
        "byok_manifest_dir": str(manifest_dir),
    }
    if vaults is not None:
        all_vars["byok_vaults"] = vaults
    if azure is not None:
        all_vars["byok_azure"] = azure
    all_vars.update(extra_vars or {})
    hosts = {name: dict(host_vars) for name, host_vars in hsm_hosts.items()}
    return {"all": {"vars": all_vars, "children": {
        "byok_hsm_hosts": {"vars": group_vars, "hosts": hosts},
        "controllers": {"hosts": {"localhost": {}}}}}}


def write_inventory(path: PathLike, hsm_hosts: Dict[str, dict], vaults: Optional[dict], azure: Optional[dict], manifest_dir: PathLike,
                    hsm_vars: Optional[dict] = None, extra_vars: Optional[dict] = None,
                    python: str = "{{ ansible_playbook_python }}", vaulted_pins: Optional[Dict[str, str]] = None) -> Path:
    """:func:`inventory` written to path: JSON (which is YAML); with ``vaulted_pins`` ({host: ``ansible-vault
    encrypt_string`` output}) YAML with ``!vault`` blocks as each host's byok_user_pin."""
    path = Path(path)
    doc = inventory(hsm_hosts, vaults, azure, manifest_dir, hsm_vars, extra_vars, python)
    if not vaulted_pins:
        path.write_text(json.dumps(doc, indent=1))
        return path
    import yaml  # pylint: disable=import-outside-toplevel  # ansible-core depends on PyYAML

    hosts = doc["all"]["children"]["byok_hsm_hosts"]["hosts"]
    for name in vaulted_pins:
        hosts[name]["byok_user_pin"] = "__VAULTED_%s__" % name
    text = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False, width=1000)
    for name, vaulted in vaulted_pins.items():
        indent = re.search(r"^( *)byok_user_pin: __VAULTED_%s__$" % re.escape(name), text, re.M).group(1)
        block = "\n".join(indent + "  " + line for line in vaulted.strip().splitlines())
        text = text.replace("byok_user_pin: __VAULTED_%s__" % name, "byok_user_pin: !vault |\n" + block)
    path.write_text(text)
    return path
