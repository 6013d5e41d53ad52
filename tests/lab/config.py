# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's state directory.

::

    DIR/                 0700
      config.json        tenant, ports, vaults, identities (no secrets)
      identities.json    0600: client secrets and the token signing key
      admin-secret       0600: the secret the admin endpoints /lab/... want in the X-Lab-Admin-Secret header
      client-cert.pem    0600: key + certificate of the operator's certificate credential
      ca.pem ca-key.pem  the lab CA
      server.pem server-key.pem
      vaults/<vault>.json  keys (with private material: this is a lab)
      server.log server.pid
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .tokens import ALL_KEY_PERMISSIONS, READER_PERMISSIONS, Identity

DEFAULT_STATE_DIR = ".lab"
DEFAULT_PORT = 18443
#: (name, kind, offset from the base port)
VAULT_LAYOUT = (("premium", "premium", 1), ("mhsm", "managedhsm", 2), ("premium2", "premium", 3), ("premium3", "premium", 4))
#: ports a lab uses: the login endpoint on the base port and one per vault
PORT_SPAN = 1 + len(VAULT_LAYOUT)
OPERATOR = "lab-operator"
READER = "lab-reader"

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server-key.pem"
CONFIG_FILE = "config.json"
IDENTITIES_FILE = "identities.json"
CLIENT_CERT_FILE = "client-cert.pem"
LOG_FILE = "server.log"
PID_FILE = "server.pid"
ADMIN_SECRET_FILE = "admin-secret"
#: the header that carries the admin secret to /lab/... (any local user can reach the port; only the state dir's
#: owner can read the secret)
ADMIN_HEADER = "X-Lab-Admin-Secret"
#: seconds a lab vault takes to finish a delete (the key appears under /deletedkeys) and a purge (the name is free):
#: asynchronous, as in Azure, but short
DEFAULT_DELETE_DELAY = 0.2
DEFAULT_PURGE_DELAY = 0.2


@dataclass
class VaultDef:
    name: str
    kind: str
    port: int


def _state_file(name: str, doc: Optional[str] = None) -> property:
    """A read-only attribute of :class:`LabConfig`: the path of the file ``name`` in the state directory."""
    return property(lambda cfg: cfg.path(name), doc=doc)


@dataclass
class LabConfig:
    state_dir: str
    tenant_id: str
    base_port: int
    vaults: List[VaultDef]
    identities: List[Identity]
    signing_key: bytes = field(repr=False)
    admin_secret: str = field(default="", repr=False)
    #: what the server applies at start ({"limits": {...}, "vaults": {...}}, see LabServer.configure); config.json "settings"
    settings: dict = field(default_factory=dict)

    def path(self, name: str) -> str:
        return os.path.join(self.state_dir, name)

    ca_path = _state_file(CA_FILE)
    client_certificate_path = _state_file(CLIENT_CERT_FILE, "PEM with the private key and certificate registered on the operator "
                                                            "(a certificate credential).")
    log_path = _state_file(LOG_FILE)
    pid_path = _state_file(PID_FILE)

    @property
    def authority(self) -> str:
        return "https://127.0.0.1:%d" % self.base_port

    @property
    def urls(self) -> Dict[str, str]:
        return {v.name: "https://127.0.0.1:%d" % v.port for v in self.vaults}

    def identity(self, name: str) -> Identity:
        for identity in self.identities:
            if identity.name == name:
                return identity
        raise KeyError(name)


def env_vars(cfg: LabConfig, authority: str, urls: Dict[str, str]) -> Dict[str, str]:
    """The variables ``python -m lab env`` prints (operator credentials named as AWX injects them)."""
    operator, reader = cfg.identity(OPERATOR), cfg.identity(READER)
    out = {
        "AZURE_CLIENT_ID": operator.client_id,
        "AZURE_SECRET": operator.secret,
        "AZURE_TENANT": cfg.tenant_id,
        "LAB_AUTHORITY": authority,
        "LAB_RESOURCE_MANAGER": authority + "/",
        "LAB_CA": os.path.abspath(cfg.ca_path),
    }
    for name in sorted(urls):
        out["LAB_VAULT_%s" % name.upper().replace("-", "_")] = urls[name]
    out["LAB_READER_CLIENT_ID"] = reader.client_id
    out["LAB_READER_SECRET"] = reader.secret
    out["LAB_ADMIN_SECRET"] = cfg.admin_secret
    if operator.certificates and os.path.exists(cfg.client_certificate_path):
        # the operator's certificate credential: AZURE_CLIENT_CERTIFICATE_PATH / x509_certificate_path
        out["LAB_CLIENT_CERTIFICATE"] = os.path.abspath(cfg.client_certificate_path)
    return out


def admin_headers(cfg: "LabConfig") -> Dict[str, str]:
    """The headers of an admin call (/lab/...) to the server of this state dir."""
    return {ADMIN_HEADER: cfg.admin_secret}


def _write_json(path: str, data: dict, mode: int) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _new_secret() -> str:
    # shaped like an Entra client secret value (contains '~', which must survive form encoding)
    return "Lab8Q~" + secrets.token_urlsafe(30)


def init(state_dir: str, port: Optional[int] = None) -> LabConfig:
    """Create whatever is missing; keep what exists (tenant, identities, secrets, CA). ``port`` moves the base port."""
    state_dir = os.path.abspath(state_dir)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)
    from . import pki  # pylint: disable=import-outside-toplevel  # cryptography only when needed

    pki.ensure_pki(*(os.path.join(state_dir, name) for name in (CA_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE)))
    config_path = os.path.join(state_dir, CONFIG_FILE)
    ident_path = os.path.join(state_dir, IDENTITIES_FILE)
    config: dict = {}
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    private: dict = {}
    if os.path.exists(ident_path):
        with open(ident_path, encoding="utf-8") as handle:
            private = json.load(handle)
    changed = not config
    config.setdefault("tenant_id", str(uuid.uuid4()))
    base = port if port is not None else config.get("base_port", DEFAULT_PORT)
    layout = [n for n, dummy, dummy2 in VAULT_LAYOUT]
    if config.get("base_port") != base or [v.get("name") for v in config.get("vaults") or []] != layout:
        config["base_port"] = base
        config["vaults"] = [{"name": n, "kind": k, "port": base + off} for n, k, off in VAULT_LAYOUT]
        changed = True
    if "identities" not in config:
        config["identities"] = [
            {"name": OPERATOR, "client_id": str(uuid.uuid4()), "permissions": {"*": list(ALL_KEY_PERMISSIONS)}},
            {"name": READER, "client_id": str(uuid.uuid4()), "permissions": {"*": list(READER_PERMISSIONS)}},
        ]
        changed = True
    private_changed = False
    if "token_signing_key" not in private:
        private["token_signing_key"] = secrets.token_hex(32)
        private_changed = True
    secrets_map = private.setdefault("secrets", {})
    for ident in config["identities"]:
        if ident["client_id"] not in secrets_map:
            secrets_map[ident["client_id"]] = _new_secret()
            private_changed = True
    if private_changed or not os.path.exists(ident_path):
        _write_json(ident_path, private, 0o600)
    os.chmod(ident_path, 0o600)
    changed = _ensure_client_certificate(state_dir, config) or changed
    if changed:
        _write_json(config_path, config, 0o644)
    admin_path = os.path.join(state_dir, ADMIN_SECRET_FILE)
    if not os.path.exists(admin_path):
        fd = os.open(admin_path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        os.replace(admin_path + ".tmp", admin_path)
    os.chmod(admin_path, 0o600)
    return load(state_dir)


def record_ports(state_dir: str, base_port: int, vault_ports: Dict[str, int]) -> LabConfig:
    """Write the ports a server listens on (e.g. free ports it was given) into ``config.json``."""
    config_path = os.path.join(os.path.abspath(state_dir), CONFIG_FILE)
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    config["base_port"] = base_port
    for vault in config["vaults"]:
        vault["port"] = vault_ports.get(vault["name"], vault["port"])
    _write_json(config_path, config, 0o644)
    return load(state_dir)


def _ensure_client_certificate(state_dir: str, config: dict) -> bool:
    """Give the operator a certificate credential (key + certificate in client-cert.pem; the public part registered
    in config.json), unless it has one; True if config changed."""
    from . import pki  # pylint: disable=import-outside-toplevel

    path = os.path.join(state_dir, CLIENT_CERT_FILE)
    for ident in config["identities"]:
        if ident["name"] == OPERATOR and not (ident.get("certificates") and os.path.exists(path)):
            ident["certificates"] = [pki.create_client_certificate(path, "%s %s" % (OPERATOR, ident["client_id"]))]
            return True
    return False


def load(state_dir: str) -> LabConfig:
    """Read an initialised state directory (FileNotFoundError if ``init`` never ran)."""
    state_dir = os.path.abspath(state_dir)
    with open(os.path.join(state_dir, CONFIG_FILE), encoding="utf-8") as handle:
        config = json.load(handle)
    with open(os.path.join(state_dir, IDENTITIES_FILE), encoding="utf-8") as handle:
        private = json.load(handle)
    try:
        with open(os.path.join(state_dir, ADMIN_SECRET_FILE), encoding="ascii") as handle:
            admin_secret = handle.read().strip()
    except FileNotFoundError:
        admin_secret = ""  # a state dir from before the admin secret: `init` (or `start`) creates it
    identities = [
        Identity(name=i["name"], client_id=i["client_id"], secret=private["secrets"][i["client_id"]],
                 permissions={k: list(v) for k, v in i["permissions"].items()}, certificates=list(i.get("certificates", [])))
        for i in config["identities"]
    ]
    return LabConfig(
        state_dir=state_dir, tenant_id=config["tenant_id"], base_port=int(config["base_port"]),
        vaults=[VaultDef(v["name"], v["kind"], int(v["port"])) for v in config["vaults"]],
        identities=identities, signing_key=bytes.fromhex(private["token_signing_key"]), admin_secret=admin_secret,
        settings=dict(config.get("settings") or {}),
    )
