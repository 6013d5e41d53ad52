# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Vault state and the Key Vault rules, without HTTP.

A :class:`Vault` holds keys; a key holds versions; each version holds real key material (the lab
generates it or unwraps it from a BYOK blob), so sign and encrypt work and the public JWK can be
returned.  Every operation either raises an :mod:`errors` exception and changes nothing, or
changes the state and (when the vault has a path) writes it to disk atomically.

Request bodies are passed as the dicts Key Vault receives; results are returned as model objects,
and ``*_bundle``/``*_item`` render them in Key Vault's JSON shape.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import urlparse

from cryptography.hazmat.primitives import hashes, padding as sym_padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import byok
from .errors import BadParameter, Conflict, Forbidden, KeyNotFound

LOG = logging.getLogger("lab.models")

PREMIUM = "premium"
MANAGED_HSM = "managedhsm"
VAULT_KINDS = (PREMIUM, MANAGED_HSM)

RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90

NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
VERSION_RE = re.compile(r"^[0-9a-f]{32}$")

KTY_BY_KIND = {
    PREMIUM: ("RSA", "RSA-HSM", "EC", "EC-HSM"),
    MANAGED_HSM: ("RSA-HSM", "EC-HSM", "oct-HSM"),
}
KEY_OPS = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export")
OPS_BY_FAMILY = {
    "RSA": ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import"),
    "EC": ("sign", "verify"),
    "oct": ("encrypt", "decrypt", "wrapKey", "unwrapKey"),
}
DEFAULT_OPS = {
    "RSA": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"],
    "EC": ["sign", "verify"],
    "oct": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
}
RSA_SIZES = byok.RSA_SIZES
OCT_BITS = (128, 192, 256)
CURVES = byok.CURVES
_CURVE_OBJECTS = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
    "P-256K": ec.SECP256K1,
}

#: sign algorithm -> (hash, digest length, family, curve or None, scheme)
SIGN_ALGS = {
    "RS256": (hashes.SHA256, 32, "RSA", None, "pkcs1"),
    "RS384": (hashes.SHA384, 48, "RSA", None, "pkcs1"),
    "RS512": (hashes.SHA512, 64, "RSA", None, "pkcs1"),
    "PS256": (hashes.SHA256, 32, "RSA", None, "pss"),
    "PS384": (hashes.SHA384, 48, "RSA", None, "pss"),
    "PS512": (hashes.SHA512, 64, "RSA", None, "pss"),
    "ES256": (hashes.SHA256, 32, "EC", "P-256", "ecdsa"),
    "ES384": (hashes.SHA384, 48, "EC", "P-384", "ecdsa"),
    "ES512": (hashes.SHA512, 64, "EC", "P-521", "ecdsa"),
    "ES256K": (hashes.SHA256, 32, "EC", "P-256K", "ecdsa"),
}
#: encrypt algorithm for oct keys -> (key bits, PKCS#7 padding)
AES_CBC_ALGS = {
    "A128CBC": (128, False), "A192CBC": (192, False), "A256CBC": (256, False),
    "A128CBCPAD": (128, True), "A192CBCPAD": (192, True), "A256CBCPAD": (256, True),
}
RSA_ENC_ALGS = ("RSA-OAEP", "RSA-OAEP-256", "RSA1_5")

Material = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, bytes]


def family(kty: str) -> str:
    """RSA, EC or oct."""
    return kty.split("-", 1)[0]


def _new_version() -> str:
    return uuid.uuid4().hex


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BadParameter("The request URI contains an invalid name: %s. Key names are 1-127 characters of 0-9, a-z, A-Z and '-'." % (name,))


def _int_or_none(value: object, what: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadParameter("Property attributes.%s must be a number of seconds since the epoch." % what)
    return int(value)


def _check_tags(tags: object) -> Dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise BadParameter("Property tags must be an object of strings.")
    if len(tags) > 15:
        raise BadParameter("A key can have at most 15 tags.")
    return dict(tags)


def check_key_ops(kty: str, key_ops: object) -> List[str]:
    """Validate key_ops for a key type; ``None`` gives the default set."""
    fam = family(kty)
    if key_ops is None:
        return list(DEFAULT_OPS[fam])
    if not isinstance(key_ops, list) or not all(isinstance(op, str) for op in key_ops):
        raise BadParameter("Property key_ops must be a list of strings.")
    ops: List[str] = []
    for op in key_ops:
        if op not in KEY_OPS:
            raise BadParameter("Invalid key operation %r; valid operations are %s." % (op, ", ".join(KEY_OPS)))
        if op not in ops:
            ops.append(op)
    if "import" in ops and len(ops) > 1:
        raise BadParameter("The key operation 'import' is mutually exclusive with all other key operations (key_ops: %s)." % ", ".join(ops))
    if "import" in ops and kty != "RSA-HSM":
        raise BadParameter("The key operation 'import' is only valid for a key exchange key of type RSA-HSM, not %s." % kty)
    if "export" in ops:
        raise BadParameter("The key operation 'export' requires an exportable key with a release policy; the lab does not support it.")
    for op in ops:
        if op not in OPS_BY_FAMILY[fam]:
            raise BadParameter("The key operation %r is not supported by %s keys." % (op, kty))
    return ops


@dataclass
class KeyVersion:
    """One version of a key, with its private material."""

    version: str
    kty: str
    key_ops: List[str]
    material: Material
    created: int
    updated: int
    enabled: bool = True
    nbf: Optional[int] = None
    exp: Optional[int] = None
    tags: Dict[str, str] = field(default_factory=dict)
    origin: str = "generated"
    lab_trailing_zero_bytes: int = 0
    generator: str = ""
    kek_kid: str = ""

    @property
    def size(self) -> Optional[int]:
        if isinstance(self.material, bytes):
            return 8 * len(self.material)
        if isinstance(self.material, rsa.RSAPrivateKey):
            return self.material.key_size
        return None

    @property
    def crv(self) -> Optional[str]:
        if isinstance(self.material, ec.EllipticCurvePrivateKey):
            return byok.CURVE_NAMES.get(self.material.curve.name, self.material.curve.name)
        return None

    def public_jwk(self) -> Dict[str, str]:
        """Public JWK members (none for oct keys)."""
        if isinstance(self.material, rsa.RSAPrivateKey):
            numbers = self.material.public_key().public_numbers()
            return {"n": byok.b64url_encode(_int_bytes(numbers.n)), "e": byok.b64url_encode(_int_bytes(numbers.e))}
        if isinstance(self.material, ec.EllipticCurvePrivateKey):
            numbers = self.material.public_key().public_numbers()
            size = (self.material.curve.key_size + 7) // 8
            return {
                "crv": self.crv or "",
                "x": byok.b64url_encode(numbers.x.to_bytes(size, "big")),
                "y": byok.b64url_encode(numbers.y.to_bytes(size, "big")),
            }
        return {}

    def public_pem(self) -> Optional[str]:
        if isinstance(self.material, bytes):
            return None
        return self.material.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    def usable_now(self, now: int) -> Optional[str]:
        """Why the version cannot be used now, or None."""
        if not self.enabled:
            return "disabled"
        if self.nbf is not None and now < self.nbf:
            return "not yet valid (nbf %d)" % self.nbf
        if self.exp is not None and now >= self.exp:
            return "expired (exp %d)" % self.exp
        return None

    def to_state(self) -> dict:
        state = {
            "version": self.version, "kty": self.kty, "key_ops": list(self.key_ops),
            "created": self.created, "updated": self.updated, "enabled": self.enabled, "nbf": self.nbf, "exp": self.exp,
            "tags": dict(self.tags), "origin": self.origin, "lab_trailing_zero_bytes": self.lab_trailing_zero_bytes,
            "generator": self.generator, "kek_kid": self.kek_kid,
        }
        if isinstance(self.material, bytes):
            state["oct"] = byok.b64url_encode(self.material)
        else:
            state["private_pem"] = self.material.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode("ascii")
        return state

    @classmethod
    def from_state(cls, state: dict) -> "KeyVersion":
        material: Material
        if "oct" in state:
            material = byok.b64url_decode(state["oct"], "oct")
        else:
            loaded = serialization.load_pem_private_key(state["private_pem"].encode("ascii"), password=None)
            if not isinstance(loaded, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
                raise ValueError("unexpected key type in state")
            material = loaded
        return cls(
            version=state["version"], kty=state["kty"], key_ops=list(state["key_ops"]), material=material,
            created=state["created"], updated=state["updated"], enabled=state["enabled"], nbf=state.get("nbf"),
            exp=state.get("exp"), tags=dict(state.get("tags") or {}), origin=state.get("origin", "generated"),
            lab_trailing_zero_bytes=state.get("lab_trailing_zero_bytes", 0), generator=state.get("generator", ""),
            kek_kid=state.get("kek_kid", ""),
        )

    def summary(self) -> dict:
        out: dict = {"version": self.version, "kty": self.kty, "key_ops": list(self.key_ops), "enabled": self.enabled,
                     "origin": self.origin, "created": self.created}
        if self.size:
            out["size"] = self.size
        if self.crv:
            out["crv"] = self.crv
        if self.origin == "byok":
            out["lab_trailing_zero_bytes"] = self.lab_trailing_zero_bytes
            out["kek_kid"] = self.kek_kid
            out["generator"] = self.generator
        if self.tags:
            out["tags"] = dict(self.tags)
        return out


def _int_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


@dataclass
class Key:
    name: str
    versions: List[KeyVersion] = field(default_factory=list)
    deleted_date: Optional[int] = None
    scheduled_purge_date: Optional[int] = None

    @property
    def deleted(self) -> bool:
        return self.deleted_date is not None

    @property
    def current(self) -> KeyVersion:
        return self.versions[-1]

    def version(self, version: str) -> Optional[KeyVersion]:
        for item in self.versions:
            if item.version == version:
                return item
        return None


class Vault:
    """One lab vault: its keys and the rules that apply to them."""

    def __init__(self, name: str, kind: str, url: str, path: Optional[str] = None,
                 clock: Callable[[], float] = time.time) -> None:
        if kind not in VAULT_KINDS:
            raise ValueError("vault kind must be one of %s" % (VAULT_KINDS,))
        self.name = name
        self.kind = kind
        self.url = url.rstrip("/")
        self.path = path
        self.clock = clock
        self.keys: Dict[str, Key] = {}
        self.lock = threading.RLock()
        if path and os.path.exists(path):
            self._load()

    # -- persistence -------------------------------------------------------------------------
    def _load(self) -> None:
        with open(str(self.path), encoding="utf-8") as handle:
            state = json.load(handle)
        for name, item in state.get("keys", {}).items():
            self.keys[name] = Key(
                name=name, versions=[KeyVersion.from_state(v) for v in item["versions"]],
                deleted_date=item.get("deleted_date"), scheduled_purge_date=item.get("scheduled_purge_date"))

    def to_state(self) -> dict:
        return {
            "name": self.name, "kind": self.kind,
            "keys": {
                name: {"versions": [v.to_state() for v in key.versions], "deleted_date": key.deleted_date,
                       "scheduled_purge_date": key.scheduled_purge_date}
                for name, key in self.keys.items()
            },
        }

    def save(self) -> None:
        """Write the state atomically (temp file + rename), mode 0600: it holds private keys."""
        if not self.path:
            return
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        tmp = "%s.%s.tmp" % (self.path, secrets.token_hex(4))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.to_state(), handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def reset(self) -> None:
        with self.lock:
            self.keys.clear()
            if self.path and os.path.exists(self.path):
                os.unlink(self.path)

    # -- helpers -----------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self.clock())

    def _live(self, name: str) -> Key:
        _check_name(name)
        key = self.keys.get(name)
        if key is None or key.deleted:
            raise KeyNotFound(
                "A key with (name/id) %s was not found in this key vault. If you recently deleted this key you may be able to recover it "
                "using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
                % name)
        return key

    def _deleted(self, name: str) -> Key:
        _check_name(name)
        key = self.keys.get(name)
        if key is None or not key.deleted:
            raise KeyNotFound("Deleted Key not found: %s" % name)
        return key

    def _writable(self, name: str) -> None:
        """Create and import are refused on a soft-deleted name."""
        _check_name(name)
        key = self.keys.get(name)
        if key is not None and key.deleted:
            raise Conflict("Key %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, "
                           "the key can only be recovered or purged." % name)

    def _check_kty(self, kty: object) -> str:
        if not isinstance(kty, str) or not kty:
            raise BadParameter("Property kty is required.")
        if kty not in ("RSA", "RSA-HSM", "EC", "EC-HSM", "oct", "oct-HSM"):
            raise BadParameter("Invalid kty %r; valid values are RSA, RSA-HSM, EC, EC-HSM and (Managed HSM only) oct-HSM." % kty)
        if kty not in KTY_BY_KIND[self.kind]:
            if self.kind == PREMIUM:
                raise BadParameter("Key type %s is not supported by this vault (Key Vault Premium); oct-HSM keys require a Managed HSM." % kty)
            raise BadParameter("Key type %s is not supported by a Managed HSM; only HSM-protected keys (RSA-HSM, EC-HSM, oct-HSM) are." % kty)
        return kty

    def _attributes(self, attributes: object) -> Tuple[bool, Optional[int], Optional[int]]:
        if attributes is None:
            attributes = {}
        if not isinstance(attributes, dict):
            raise BadParameter("Property attributes must be an object.")
        enabled = attributes.get("enabled", True)
        if not isinstance(enabled, bool):
            raise BadParameter("Property attributes.enabled must be a boolean.")
        return enabled, _int_or_none(attributes.get("nbf"), "nbf"), _int_or_none(attributes.get("exp"), "exp")

    def _add_version(self, name: str, version: KeyVersion) -> KeyVersion:
        key = self.keys.setdefault(name, Key(name=name))
        key.versions.append(version)
        self.save()
        return version

    def kid(self, name: str, version: Optional[str] = None) -> str:
        base = "%s/keys/%s" % (self.url, name)
        return "%s/%s" % (base, version) if version else base

    # -- operations --------------------------------------------------------------------------
    def create_key(self, name: str, params: dict) -> KeyVersion:
        """``POST /keys/{name}/create``: a new key, or a new version of an existing one."""
        if not isinstance(params, dict):
            raise BadParameter("The request body must be a JSON object.")
        with self.lock:
            self._writable(name)
            kty = self._check_kty(params.get("kty"))
            fam = family(kty)
            key_ops = check_key_ops(kty, params.get("key_ops"))
            enabled, nbf, exp = self._attributes(params.get("attributes"))
            tags = _check_tags(params.get("tags"))
            material: Material
            if fam == "RSA":
                size = params.get("key_size") or 2048
                if size not in RSA_SIZES:
                    raise BadParameter("Invalid key_size %r for %s; valid sizes are 2048, 3072 and 4096." % (size, kty))
                exponent = params.get("public_exponent") or 65537
                if exponent not in (3, 65537):
                    raise BadParameter("Invalid public_exponent %r." % exponent)
                material = rsa.generate_private_key(public_exponent=exponent, key_size=size)
            elif fam == "EC":
                crv = params.get("crv") or "P-256"
                if crv not in _CURVE_OBJECTS:
                    raise BadParameter("Invalid crv %r; valid curves are %s." % (crv, ", ".join(_CURVE_OBJECTS)))
                material = ec.generate_private_key(_CURVE_OBJECTS[crv]())
            else:
                bits = params.get("key_size") or 256
                if bits not in OCT_BITS:
                    raise BadParameter("Invalid key_size %r for oct-HSM; valid sizes are 128, 192 and 256." % bits)
                material = secrets.token_bytes(bits // 8)
            now = self._now()
            version = KeyVersion(version=_new_version(), kty=kty, key_ops=key_ops, material=material, created=now, updated=now,
                                 enabled=enabled, nbf=nbf, exp=exp, tags=tags, origin="generated")
            return self._add_version(name, version)

    def find_kek(self, kid: str) -> Tuple[str, KeyVersion]:
        """Resolve the KEK named by a BYOK blob's ``header.kid`` and check the KEK rules."""
        parsed = urlparse(kid)
        mine = urlparse(self.url)
        if parsed.scheme.lower() != "https" or not parsed.netloc:
            raise BadParameter("The KEK identifier %r in the BYOK blob is not a Key Vault key identifier." % kid)
        if parsed.netloc.lower() != mine.netloc.lower():
            raise BadParameter("The KEK %r in the BYOK blob belongs to another vault (%s://%s); a BYOK blob can only be imported into the "
                               "vault that holds its KEK (%s)." % (kid, parsed.scheme, parsed.netloc, self.url))
        parts = parsed.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "keys":
            raise BadParameter("The KEK identifier %r in the BYOK blob has no version; the versioned key identifier of the KEK is required." % kid)
        if len(parts) != 3 or parts[0] != "keys" or not parts[2]:
            raise BadParameter("The KEK identifier %r in the BYOK blob is not of the form %s/keys/NAME/VERSION." % (kid, self.url))
        name, version = parts[1], parts[2]
        key = self.keys.get(name)
        if key is None or key.deleted:
            raise BadParameter("The KEK %r named by the BYOK blob does not exist in this vault." % kid)
        kek = key.version(version)
        if kek is None:
            raise BadParameter("The KEK key %s exists but has no version %s (named by the BYOK blob)." % (name, version))
        if kek.kty != "RSA-HSM" or not isinstance(kek.material, rsa.RSAPrivateKey):
            raise BadParameter("The KEK %r is %s; a key exchange key must be RSA-HSM." % (kid, kek.kty))
        if kek.key_ops != ["import"]:
            raise BadParameter("The KEK %r has key_ops %s; a key exchange key must have key_ops exactly ['import']." % (kid, kek.key_ops))
        why = kek.usable_now(self._now())
        if why:
            raise BadParameter("The KEK %r cannot be used: it is %s." % (kid, why))
        return name, kek

    def import_key(self, name: str, params: dict) -> KeyVersion:
        """``PUT /keys/{name}``: a BYOK import. Always a new version; nothing changes on failure."""
        if not isinstance(params, dict):
            raise BadParameter("The request body must be a JSON object.")
        with self.lock:
            self._writable(name)
            jwk = params.get("key")
            if not isinstance(jwk, dict):
                raise BadParameter("Property key is required.")
            kty = self._check_kty(jwk.get("kty"))
            if "key_hsm" not in jwk:
                raise BadParameter("The lab vault only supports BYOK imports: key.key_hsm is required.")
            if not kty.endswith("-HSM"):
                raise BadParameter("A BYOK import (key_hsm) needs an HSM key type (RSA-HSM, EC-HSM, oct-HSM), not %s." % kty)
            crv = jwk.get("crv")
            if family(kty) == "EC":
                if crv not in CURVES:
                    raise BadParameter("Property key.crv is required for EC-HSM and must be one of %s (got %r)." % (", ".join(CURVES), crv))
            key_ops = check_key_ops(kty, jwk.get("key_ops"))
            enabled, nbf, exp = self._attributes(params.get("attributes"))
            tags = _check_tags(params.get("tags"))
            blob = byok.parse_blob(byok.b64url_decode(jwk["key_hsm"], "key.key_hsm"))
            kek_name, kek = self.find_kek(blob.kid)
            if not isinstance(kek.material, rsa.RSAPrivateKey):
                raise BadParameter("The KEK is not an RSA key.")
            plaintext = byok.unwrap(blob.ciphertext, kek.material)
            target = byok.load_target(plaintext, kty, crv)
            material: Material = target.secret if target.secret is not None else target.private_key  # type: ignore[assignment]
            now = self._now()
            version = KeyVersion(version=_new_version(), kty=kty, key_ops=key_ops, material=material, created=now, updated=now,
                                 enabled=enabled, nbf=nbf, exp=exp, tags=tags, origin="byok",
                                 lab_trailing_zero_bytes=target.trailing_zero_bytes, generator=blob.generator[:200],
                                 kek_kid=self.kid(kek_name, kek.version))
            self._add_version(name, version)
            LOG.info("vault=%s import key=%s version=%s target=%s kek=%s trailing_zero_bytes=%d%s", self.name, name, version.version,
                     target.describe(), version.kek_kid, target.trailing_zero_bytes,
                     " (SoftHSM 2.6.1 zero padding tolerated)" if target.trailing_zero_bytes else "")
            return version

    def get_key(self, name: str, version: Optional[str] = None) -> Tuple[Key, KeyVersion]:
        with self.lock:
            key = self._live(name)
            if not version:
                return key, key.current
            found = key.version(version)
            if found is None:
                raise KeyNotFound("A key with (name/id) %s/%s was not found in this key vault. For help resolving this issue, please see "
                                  "https://go.microsoft.com/fwlink/?linkid=2125182" % (name, version))
            return key, found

    def list_keys(self) -> List[Key]:
        with self.lock:
            return [self.keys[name] for name in sorted(self.keys) if not self.keys[name].deleted]

    def list_versions(self, name: str) -> List[KeyVersion]:
        with self.lock:
            return list(self._live(name).versions)

    def update_key(self, name: str, version: Optional[str], params: dict) -> Tuple[Key, KeyVersion]:
        """``PATCH /keys/{name}/{version}``: key_ops, attributes and tags of one version."""
        if not isinstance(params, dict):
            raise BadParameter("The request body must be a JSON object.")
        with self.lock:
            key, item = self.get_key(name, version)
            key_ops = check_key_ops(item.kty, params["key_ops"]) if "key_ops" in params else item.key_ops
            attributes = params.get("attributes") or {}
            if not isinstance(attributes, dict):
                raise BadParameter("Property attributes must be an object.")
            enabled = attributes.get("enabled", item.enabled)
            if not isinstance(enabled, bool):
                raise BadParameter("Property attributes.enabled must be a boolean.")
            nbf = _int_or_none(attributes["nbf"], "nbf") if "nbf" in attributes else item.nbf
            exp = _int_or_none(attributes["exp"], "exp") if "exp" in attributes else item.exp
            tags = _check_tags(params["tags"]) if "tags" in params else item.tags
            item.key_ops, item.enabled, item.nbf, item.exp, item.tags = key_ops, enabled, nbf, exp, tags
            item.updated = self._now()
            self.save()
            return key, item

    def delete_key(self, name: str) -> Key:
        """``DELETE /keys/{name}``: soft delete, all versions."""
        with self.lock:
            key = self._live(name)
            now = self._now()
            key.deleted_date = now
            key.scheduled_purge_date = now + RECOVERABLE_DAYS * 86400
            self.save()
            return key

    def get_deleted_key(self, name: str) -> Key:
        with self.lock:
            return self._deleted(name)

    def list_deleted_keys(self) -> List[Key]:
        with self.lock:
            return [self.keys[name] for name in sorted(self.keys) if self.keys[name].deleted]

    def purge_deleted_key(self, name: str) -> None:
        with self.lock:
            self._deleted(name)
            del self.keys[name]
            self.save()

    def recover_deleted_key(self, name: str) -> Key:
        with self.lock:
            key = self._deleted(name)
            key.deleted_date = None
            key.scheduled_purge_date = None
            self.save()
            return key

    def _usable(self, name: str, version: Optional[str], op: str) -> KeyVersion:
        _key, item = self.get_key(name, version)
        why = item.usable_now(self._now())
        if why == "disabled":
            raise Forbidden("Operation %s is not allowed on a disabled key." % op)
        if why:
            raise Forbidden("Operation %s is not allowed: the key is %s." % (op, why))
        if op not in item.key_ops:
            raise Forbidden("Operation %s is not permitted on this key." % op)
        return item

    def sign(self, name: str, version: Optional[str], params: dict) -> Tuple[KeyVersion, bytes]:
        """``POST /keys/{name}/{version}/sign`` over a digest (``value``, base64url)."""
        if not isinstance(params, dict):
            raise BadParameter("The request body must be a JSON object.")
        with self.lock:
            item = self._usable(name, version, "sign")
        alg = params.get("alg")
        if alg not in SIGN_ALGS:
            raise BadParameter("Invalid signature algorithm %r; valid values are %s." % (alg, ", ".join(SIGN_ALGS)))
        hash_cls, digest_len, fam, curve, scheme = SIGN_ALGS[alg]
        digest = byok.b64url_decode(params.get("value"), "value")
        if len(digest) != digest_len:
            raise BadParameter("The digest for %s must be %d bytes, got %d." % (alg, digest_len, len(digest)))
        if family(item.kty) != fam:
            raise BadParameter("Algorithm %s cannot be used with a %s key." % (alg, item.kty))
        prehashed = utils.Prehashed(hash_cls())
        if isinstance(item.material, rsa.RSAPrivateKey):
            pad: padding.AsymmetricPadding
            if scheme == "pss":
                pad = padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=digest_len)
            else:
                pad = padding.PKCS1v15()
            return item, item.material.sign(digest, pad, prehashed)
        if isinstance(item.material, ec.EllipticCurvePrivateKey):
            if item.crv != curve:
                raise BadParameter("Algorithm %s needs a %s key; this key is on %s." % (alg, curve, item.crv))
            der = item.material.sign(digest, ec.ECDSA(prehashed))
            r, s = utils.decode_dss_signature(der)
            size = (item.material.curve.key_size + 7) // 8
            return item, r.to_bytes(size, "big") + s.to_bytes(size, "big")
        raise BadParameter("Algorithm %s cannot be used with a %s key." % (alg, item.kty))

    def encrypt(self, name: str, version: Optional[str], params: dict) -> Tuple[KeyVersion, bytes, Optional[bytes]]:
        """``POST /keys/{name}/{version}/encrypt``: AES-CBC(-PAD) for oct-HSM, RSA-OAEP(-256)/RSA1_5 for RSA."""
        if not isinstance(params, dict):
            raise BadParameter("The request body must be a JSON object.")
        with self.lock:
            item = self._usable(name, version, "encrypt")
        alg = params.get("alg")
        plaintext = byok.b64url_decode(params.get("value"), "value")
        if isinstance(item.material, bytes):
            if alg not in AES_CBC_ALGS:
                raise BadParameter("Invalid encryption algorithm %r for an oct-HSM key; valid values are %s." % (alg, ", ".join(AES_CBC_ALGS)))
            bits, pad = AES_CBC_ALGS[alg]
            if bits != 8 * len(item.material):
                raise BadParameter("Algorithm %s needs a %d-bit key; this key has %d bits." % (alg, bits, 8 * len(item.material)))
            iv = byok.b64url_decode(params.get("iv"), "iv") if params.get("iv") is not None else secrets.token_bytes(16)
            if len(iv) != 16:
                raise BadParameter("The iv must be 16 bytes, got %d." % len(iv))
            if pad:
                padder = sym_padding.PKCS7(128).padder()
                plaintext = padder.update(plaintext) + padder.finalize()
            elif len(plaintext) % 16:
                raise BadParameter("For %s (no padding) the plaintext length must be a multiple of 16 bytes, got %d." % (alg, len(plaintext)))
            encryptor = Cipher(algorithms.AES(item.material), modes.CBC(iv)).encryptor()
            return item, encryptor.update(plaintext) + encryptor.finalize(), iv
        if isinstance(item.material, rsa.RSAPrivateKey):
            if alg not in RSA_ENC_ALGS:
                raise BadParameter("Invalid encryption algorithm %r for an RSA key; valid values are %s." % (alg, ", ".join(RSA_ENC_ALGS)))
            pad_rsa: padding.AsymmetricPadding
            if alg == "RSA1_5":
                pad_rsa = padding.PKCS1v15()
            else:
                hash_alg = hashes.SHA256() if alg == "RSA-OAEP-256" else hashes.SHA1()  # nosec - RSA-OAEP is SHA-1 by definition
                pad_rsa = padding.OAEP(mgf=padding.MGF1(hash_alg), algorithm=hash_alg, label=None)
            return item, item.material.public_key().encrypt(plaintext, pad_rsa), None
        raise BadParameter("Key type %s does not support encrypt." % item.kty)

    # -- JSON shapes -------------------------------------------------------------------------
    def attributes_json(self, item: KeyVersion) -> dict:
        attributes: dict = {"enabled": item.enabled}
        if item.nbf is not None:
            attributes["nbf"] = item.nbf
        if item.exp is not None:
            attributes["exp"] = item.exp
        attributes.update({"created": item.created, "updated": item.updated, "recoveryLevel": RECOVERY_LEVEL,
                           "recoverableDays": RECOVERABLE_DAYS})
        return attributes

    def key_bundle(self, key: Key, item: KeyVersion) -> dict:
        jwk: dict = {"kid": self.kid(key.name, item.version), "kty": item.kty, "key_ops": list(item.key_ops)}
        jwk.update(item.public_jwk())
        bundle: dict = {"key": jwk, "attributes": self.attributes_json(item)}
        if item.tags:
            bundle["tags"] = dict(item.tags)
        return bundle

    def _deleted_fields(self, key: Key) -> dict:
        return {"recoveryId": "%s/deletedkeys/%s" % (self.url, key.name), "deletedDate": key.deleted_date,
                "scheduledPurgeDate": key.scheduled_purge_date}

    def deleted_key_bundle(self, key: Key) -> dict:
        bundle = self.key_bundle(key, key.current)
        bundle.update(self._deleted_fields(key))
        return bundle

    def key_item(self, key: Key, item: Optional[KeyVersion] = None) -> dict:
        """An entry of ``GET /keys`` (unversioned kid) or of ``/versions`` (versioned kid, pass ``item``)."""
        shown = item or key.current
        entry: dict = {"kid": self.kid(key.name, item.version if item else None), "attributes": self.attributes_json(shown)}
        if shown.tags:
            entry["tags"] = dict(shown.tags)
        return entry

    def deleted_key_item(self, key: Key) -> dict:
        entry = self.key_item(key)
        entry.update(self._deleted_fields(key))
        return entry

    def summary(self) -> dict:
        with self.lock:
            return {
                "kind": self.kind, "url": self.url,
                "keys": {name: {"deleted": key.deleted, "versions": [v.summary() for v in key.versions]}
                         for name, key in sorted(self.keys.items())},
            }


class LabState:
    """All vaults of a lab, persisted under ``<state_dir>/vaults/<vault>.json`` (or in memory)."""

    def __init__(self, state_dir: Optional[str] = None, clock: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.clock = clock
        self.vaults: Dict[str, Vault] = {}

    def add_vault(self, name: str, kind: str, url: str) -> Vault:
        path = os.path.join(self.state_dir, "vaults", "%s.json" % name) if self.state_dir else None
        vault = Vault(name, kind, url, path=path, clock=self.clock)
        self.vaults[name] = vault
        return vault

    def vault(self, name: str) -> Vault:
        return self.vaults[name]

    def reset(self) -> None:
        for vault in self.vaults.values():
            vault.reset()

    def summary(self) -> dict:
        return {name: vault.summary() for name, vault in self.vaults.items()}


class ResourceManager:
    """The lab's Azure Resource Manager: what a client reads before it talks to a vault.

    The cloud metadata document (``GET /metadata/endpoints``) names the lab authority as the login
    endpoint, the resource manager URL as the token audience, and DNS suffixes that turn the vault
    name ``127`` into the lab vaults' URLs (``127`` + ``.0.0.1:PORT``).  One tenant, no subscriptions.
    """

    CLOUD_NAME = "LabCloud"

    def __init__(self, url: str, tenant_id: str, login_endpoint: str, vault_urls: Dict[str, str], vault_kinds: Dict[str, str]) -> None:
        self.url = url.rstrip("/") + "/"
        self.tenant_id = tenant_id
        self.login_endpoint = login_endpoint
        self.vault_urls = dict(vault_urls)
        self.vault_kinds = dict(vault_kinds)

    @property
    def audience(self) -> str:
        """The ``aud`` of a token for the resource manager (the URL without its trailing slash)."""
        return self.url.rstrip("/")

    def _dns_suffix(self, kind: str) -> Optional[str]:
        """``0.0.1:PORT`` of the first vault (in ``vault_urls`` order) of that kind at ``https://127.0.0.1:PORT``, else None."""
        for name, url in self.vault_urls.items():
            parts = urlparse(url)
            if self.vault_kinds.get(name) == kind and parts.hostname == "127.0.0.1":
                return "0.0.1:%d" % parts.port
        return None

    def cloud_metadata(self) -> dict:
        """The document of ``GET /metadata/endpoints?api-version=2022-09-01`` (only what the lab serves)."""
        suffixes = {}
        for key, kind in (("keyVaultDns", PREMIUM), ("mhsmDns", MANAGED_HSM)):
            suffix = self._dns_suffix(kind)
            if suffix:
                suffixes[key] = suffix
        return {
            "name": self.CLOUD_NAME,
            "resourceManager": self.url,
            "authentication": {"loginEndpoint": self.login_endpoint, "audiences": [self.url], "tenant": "common",
                               "identityProvider": "AAD"},
            "suffixes": suffixes,
        }

    def tenants(self) -> List[dict]:
        """``GET /tenants``: the lab tenant."""
        return [{"id": "/tenants/%s" % self.tenant_id, "tenantId": self.tenant_id, "tenantCategory": "Home",
                 "displayName": "Lab tenant", "defaultDomain": "lab.invalid", "domains": ["lab.invalid"], "tenantType": "AAD"}]

    def subscriptions(self) -> List[dict]:
        """``GET /subscriptions``: none (the lab has vaults, no Azure subscriptions)."""
        return []
