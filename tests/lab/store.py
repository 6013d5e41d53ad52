# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state directory's vault files: ``<state_dir>/vaults/<vault>.json``, written atomically, mode 0600 (they hold
private keys).  The file format is the lab's own (not Key Vault's wire format): a new server on other ports reads the
keys the last one left.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from typing import Callable, Dict, Optional

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import byok
from .errors import BadParameter
from .limits import Throttle
from .models import Key, KeyVersion, Material, ReleasePolicy, Vault, VaultOptions

LOG = logging.getLogger("lab.store")


def version_to_state(item: KeyVersion) -> dict:
    state = {
        "version": item.version, "kty": item.kty, "key_ops": list(item.key_ops),
        "created": item.created, "updated": item.updated, "enabled": item.enabled, "nbf": item.nbf, "exp": item.exp,
        "tags": dict(item.tags), "origin": item.origin, "lab_trailing_zero_bytes": item.lab_trailing_zero_bytes,
        "generator": item.generator, "kek_kid": item.kek_kid, "exportable": item.exportable,
    }
    if item.release_policy is not None:
        state["release_policy"] = {"data": byok.b64url_encode(item.release_policy.data), "content_type": item.release_policy.content_type,
                                   "immutable": item.release_policy.immutable}
    if isinstance(item.material, bytes):
        state["oct"] = byok.b64url_encode(item.material)
    else:
        state["private_pem"] = item.material.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode("ascii")
    return state


def version_from_state(state: dict) -> KeyVersion:
    material: Material
    if "oct" in state:
        material = byok.b64url_decode(state["oct"], "oct")
    else:
        loaded = serialization.load_pem_private_key(state["private_pem"].encode("ascii"), password=None)
        if not isinstance(loaded, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise ValueError("unexpected key type in state")
        material = loaded
    return KeyVersion(
        version=state["version"], kty=state["kty"], key_ops=list(state["key_ops"]), material=material,
        created=state["created"], updated=state["updated"], enabled=state["enabled"], nbf=state.get("nbf"),
        exp=state.get("exp"), tags=dict(state.get("tags") or {}), origin=state.get("origin", "generated"),
        lab_trailing_zero_bytes=state.get("lab_trailing_zero_bytes", 0), generator=state.get("generator", ""),
        kek_kid=state.get("kek_kid", ""), exportable=bool(state.get("exportable", False)), release_policy=_policy_from_state(state.get("release_policy")),
    )


def _policy_from_state(state: Optional[dict]) -> Optional[ReleasePolicy]:
    if not state:
        return None
    return ReleasePolicy(data=byok.b64url_decode(state["data"], "release_policy.data"), content_type=state["content_type"],
                         immutable=bool(state["immutable"]))


def vault_to_state(vault: Vault) -> dict:
    return {
        "name": vault.name, "kind": vault.kind,
        "keys": {
            key.name: {"versions": [version_to_state(v) for v in key.versions], "deleted_date": key.deleted_date,
                       "scheduled_purge_date": key.scheduled_purge_date, "visible_at": key.visible_at}
            for key in vault.keys.values()
        },
    }


class VaultFile:
    """One vault's state file (the :class:`models.VaultStore` of a vault in a state directory)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self, vault: Vault) -> Dict[str, Key]:
        """The keys of the file, by lowercase name (none when there is no file yet)."""
        keys: Dict[str, Key] = {}
        if not os.path.exists(self.path):
            return keys
        with open(self.path, encoding="utf-8") as handle:
            state = json.load(handle)
        for name, item in state.get("keys", {}).items():
            if name.lower() in keys:
                LOG.warning("vault=%s state file holds key %s and %s, one name for Key Vault; keeping %s", vault.name,
                            keys[name.lower()].name, name, keys[name.lower()].name)
                continue
            keys[name.lower()] = Key(
                name=name, versions=[version_from_state(v) for v in item["versions"]],
                deleted_date=item.get("deleted_date"), scheduled_purge_date=item.get("scheduled_purge_date"),
                visible_at=item.get("visible_at"))
        return keys

    def save(self, vault: Vault) -> None:
        """Write the state atomically (temp file + rename), mode 0600: it holds private keys."""
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        tmp = "%s.%s.tmp" % (self.path, secrets.token_hex(4))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(vault_to_state(vault), handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def remove(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)


class LabState:
    """All vaults of a lab (and the service limits they share), persisted under ``<state_dir>/vaults/`` (or in memory)."""

    def __init__(self, state_dir: Optional[str] = None, clock: Callable[[], float] = time.time,
                 throttle: Optional[Throttle] = None) -> None:
        self.state_dir = state_dir
        self.base_clock = clock
        #: seconds added to the lab clock of every vault (``clock_offset`` setting): keys age without waiting
        self.clock_offset = 0.0
        self.vaults: Dict[str, Vault] = {}
        self.throttle = throttle or Throttle()

    def add_vault(self, name: str, kind: str, url: str, options: Optional[VaultOptions] = None) -> Vault:
        store = VaultFile(os.path.join(self.state_dir, "vaults", "%s.json" % name)) if self.state_dir else None
        vault = Vault(name, kind, url, store=store, clock=self.clock, options=options, timer=self.base_clock)
        self.vaults[name] = vault
        return vault

    def clock(self) -> float:
        """The vaults' clock: the machine's clock plus ``clock_offset`` (created, updated, nbf, exp, deletion dates)."""
        return self.base_clock() + self.clock_offset

    def set_clock_offset(self, seconds: object) -> float:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise BadParameter("clock_offset must be a number of seconds (negative: the past).")
        self.clock_offset = float(seconds)
        LOG.info("lab clock offset %+.0f s", self.clock_offset)
        return self.clock_offset

    def vault(self, name: str) -> Vault:
        return self.vaults[name]

    def reset(self) -> None:
        for vault in self.vaults.values():
            vault.reset()
