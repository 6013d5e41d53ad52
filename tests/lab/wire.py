# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model objects in Key Vault's REST JSON shapes (key bundles, list items, deleted keys, operation results), and the
lab's own state summary (``GET /lab/state``, ``python -m lab dump``).  No rules here: :mod:`models` decides, this module
only renders.
"""

from __future__ import annotations

from typing import Dict, Optional

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .byok import b64url_encode
from .models import Key, KeyVersion, Vault


def _int_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def public_jwk(item: KeyVersion) -> Dict[str, str]:
    """Public JWK members of a version (none for oct keys)."""
    if isinstance(item.material, rsa.RSAPrivateKey):
        numbers = item.material.public_key().public_numbers()
        return {"n": b64url_encode(_int_bytes(numbers.n)), "e": b64url_encode(_int_bytes(numbers.e))}
    if isinstance(item.material, ec.EllipticCurvePrivateKey):
        numbers = item.material.public_key().public_numbers()
        size = (item.material.curve.key_size + 7) // 8
        return {
            "crv": item.crv or "",
            "x": b64url_encode(numbers.x.to_bytes(size, "big")),
            "y": b64url_encode(numbers.y.to_bytes(size, "big")),
        }
    return {}


def attributes(vault: Vault, item: KeyVersion) -> dict:
    out: dict = {"enabled": item.enabled}
    if item.nbf is not None:
        out["nbf"] = item.nbf
    if item.exp is not None:
        out["exp"] = item.exp
    out.update({"created": item.created, "updated": item.updated, "recoveryLevel": vault.recovery_level,
                "recoverableDays": vault.options.retention_days, "exportable": item.exportable})
    return out


def release_policy(item: KeyVersion) -> Optional[dict]:
    """``release_policy`` of a key bundle (Secure Key Release), or None."""
    policy = item.release_policy
    if policy is None:
        return None
    return {"contentType": policy.content_type, "data": b64url_encode(policy.data), "immutable": policy.immutable}


def key_bundle(vault: Vault, key: Key, item: KeyVersion) -> dict:
    jwk: dict = {"kid": vault.kid(key.name, item.version), "kty": item.kty, "key_ops": list(item.key_ops)}
    jwk.update(public_jwk(item))
    bundle: dict = {"key": jwk, "attributes": attributes(vault, item)}
    if item.tags:
        bundle["tags"] = dict(item.tags)
    policy = release_policy(item)
    if policy is not None:
        bundle["release_policy"] = policy
    return bundle


def _deleted_fields(vault: Vault, key: Key) -> dict:
    return {"recoveryId": "%s/deletedkeys/%s" % (vault.url, key.name), "deletedDate": key.deleted_date,
            "scheduledPurgeDate": key.scheduled_purge_date}


def deleted_key_bundle(vault: Vault, key: Key) -> dict:
    bundle = key_bundle(vault, key, key.current)
    bundle.update(_deleted_fields(vault, key))
    return bundle


def key_item(vault: Vault, key: Key, item: Optional[KeyVersion] = None) -> dict:
    """An entry of ``GET /keys`` (unversioned kid) or of ``/versions`` (versioned kid, pass ``item``)."""
    shown = item or key.current
    entry: dict = {"kid": vault.kid(key.name, item.version if item else None), "attributes": attributes(vault, shown)}
    if shown.tags:
        entry["tags"] = dict(shown.tags)
    return entry


def deleted_key_item(vault: Vault, key: Key) -> dict:
    entry = key_item(vault, key)
    entry.update(_deleted_fields(vault, key))
    return entry


def operation_result(vault: Vault, name: str, item: KeyVersion, value: bytes, iv: Optional[bytes] = None) -> dict:
    """The answer of ``sign`` and ``encrypt``: the versioned kid and the result (base64url)."""
    out = {"kid": vault.kid(name, item.version), "value": b64url_encode(value)}
    if iv is not None:
        out["iv"] = b64url_encode(iv)
    return out


def page(items: list, next_link: Optional[str]) -> dict:
    return {"value": items, "nextLink": next_link}


# -- the lab's own documents (admin API, CLI) -------------------------------------------------------
def version_summary(item: KeyVersion) -> dict:
    out: dict = {"version": item.version, "kty": item.kty, "key_ops": list(item.key_ops), "enabled": item.enabled,
                 "origin": item.origin, "created": item.created, "updated": item.updated}
    if item.nbf is not None:
        out["nbf"] = item.nbf
    if item.exp is not None:
        out["exp"] = item.exp
    if item.exportable:
        out["exportable"] = True
    if item.release_policy is not None:
        out["release_policy_immutable"] = item.release_policy.immutable
    if item.size:
        out["size"] = item.size
    if item.crv:
        out["crv"] = item.crv
    if item.origin == "byok":
        out["lab_trailing_zero_bytes"] = item.lab_trailing_zero_bytes
        out["kek_kid"] = item.kek_kid
        out["generator"] = item.generator
    if item.tags:
        out["tags"] = dict(item.tags)
    return out


def vault_summary(vault: Vault) -> dict:
    keys = vault.all_keys()
    return {
        "kind": vault.kind, "url": vault.url, "purge_protection": vault.purge_protection,
        "keys": {key.name: {"deleted": key.deleted, "versions": [version_summary(v) for v in key.versions]} for key in keys},
    }


def state_summary(state) -> dict:
    """``{vault: vault_summary}`` of a :class:`store.LabState`."""
    return {name: vault_summary(vault) for name, vault in state.vaults.items()}
