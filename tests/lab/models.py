# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Vault state and the Key Vault rules as state and transitions: no HTTP, no JSON, no files.

A :class:`Vault` holds keys; a key holds versions; each version holds real key material (the lab
generates it or unwraps it from a BYOK blob), so sign and encrypt work.  Every operation either
raises an :mod:`errors` exception and changes nothing, or changes the state and hands the vault to
its store (:mod:`store`: the state directory), if it has one.

The parameters of an operation are the request's parameters as Key Vault names them (``kty``,
``key_ops``, ``attributes``, ...); results are model objects.  :mod:`wire` renders them in Key Vault's
JSON shape; :mod:`store` writes them to the state directory; :mod:`limits` counts them against
Azure's service limits.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple, Union
from urllib.parse import urlparse

from cryptography.hazmat.primitives import hashes, keywrap, padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import byok
from .errors import BadParameter, Conflict, Forbidden, KeyNotFound, key_disabled

LOG = logging.getLogger("lab.models")

PREMIUM = "premium"
MANAGED_HSM = "managedhsm"
VAULT_KINDS = (PREMIUM, MANAGED_HSM)

RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90

#: Key Vault's answers while a delete or a purge is still running (both are asynchronous in Azure)
BEING_DELETED = "Key is currently being deleted."
PURGE_PROTECTED = ('Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault service '
                   "will automatically purge it after the retention period has passed.")

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

#: Secure Key Release: the key types that can be exportable, per vault kind, and the release policy grammar
EXPORTABLE_KTY = {
    PREMIUM: ("RSA-HSM", "EC-HSM"),
    MANAGED_HSM: ("RSA-HSM", "EC-HSM", "oct-HSM"),
}
POLICY_CONTENT_TYPE = "application/json; charset=utf-8"
POLICY_VERSIONS = ("1.0.0",)
#: the claim operators of the policy grammar
POLICY_OPERATORS = ("equals", "notEquals", "less", "lessOrEquals", "greater", "greaterOrEquals", "exists")
SKR_NEEDS_POLICY = "Exportable keys must have release policy"
SKR_NOT_EXPORTABLE = "AKV.SKR.1005: Non-exportable keys must not have release policy"
SKR_EXPORTABLE_FIXED = "AKV.SKR.1014: Cannot modify the exportable state of a key"
SKR_IMMUTABLE = "AKV.SKR.1011: The release policy of this key is immutable and cannot be modified"


class VaultStore(Protocol):
    """Where a vault's state lives between runs (:class:`store.VaultFile`): read once, written after each change."""

    def load(self, vault: "Vault") -> Dict[str, "Key"]: ...

    def save(self, vault: "Vault") -> None: ...

    def remove(self) -> None: ...


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


def check_key_ops(kty: str, key_ops: object, exportable: bool = False) -> List[str]:
    """Validate key_ops for a key type; ``None`` gives the default set. ``export`` only on an exportable key."""
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
    if "export" in ops and not exportable:
        raise BadParameter("The key operation 'export' requires an exportable key (attributes.exportable true) with a release policy.")
    for op in ops:
        if op == "export":
            continue
        if op not in OPS_BY_FAMILY[fam]:
            raise BadParameter("The key operation %r is not supported by %s keys." % (op, kty))
    return ops


@dataclass
class ReleasePolicy:
    """A Secure Key Release policy as the vault keeps it: the policy document's bytes (checked), content type, immutability."""

    data: bytes
    content_type: str = POLICY_CONTENT_TYPE
    immutable: bool = False

    def same_as(self, other: "ReleasePolicy") -> bool:
        """The same rules and mutability (the policy JSON compared as a document, not as bytes)."""
        return self.immutable == other.immutable and json.loads(self.data) == json.loads(other.data)


def _check_claims(rules: object, where: str) -> None:
    if not isinstance(rules, list) or not rules:
        raise BadParameter("AKV.SKR.1001: %s must be a non-empty list of claim conditions." % where)
    for index, rule in enumerate(rules):
        here = "%s[%d]" % (where, index)
        if not isinstance(rule, dict):
            raise BadParameter("AKV.SKR.1001: %s must be an object." % here)
        if "allOf" in rule or "anyOf" in rule:
            _check_claims(rule.get("allOf", rule.get("anyOf")), here + (".allOf" if "allOf" in rule else ".anyOf"))
            continue
        if not isinstance(rule.get("claim"), str) or not rule["claim"]:
            raise BadParameter("AKV.SKR.1001: %s needs a claim (string)." % here)
        operators = [name for name in POLICY_OPERATORS if name in rule]
        if len(operators) != 1:
            raise BadParameter("AKV.SKR.1001: %s needs exactly one operator of %s." % (here, ", ".join(POLICY_OPERATORS)))
        unknown = sorted(set(rule) - {"claim"} - set(POLICY_OPERATORS))
        if unknown:
            raise BadParameter("AKV.SKR.1001: %s has unknown members %s (a claim condition is a claim and one operator)." % (here, unknown))


def _claims_as_text(node: object) -> object:
    """A policy document with the values of its claim conditions as strings (true -> "true", 2 -> "2")."""
    if isinstance(node, list):
        return [_claims_as_text(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in POLICY_OPERATORS and not isinstance(value, (dict, list, str)):
            value = "true" if value is True else "false" if value is False else str(value)
        out[key] = _claims_as_text(value)
    return out


def check_policy_document(data: bytes) -> dict:
    """The release policy grammar (version 1.0.0): ``anyOf``/``allOf`` of ``{authority, allOf|anyOf: [{claim, equals}]}``."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadParameter("AKV.SKR.1001: The release policy is not valid JSON.") from exc
    if not isinstance(doc, dict):
        raise BadParameter("AKV.SKR.1001: The release policy must be a JSON object.")
    if doc.get("version") not in POLICY_VERSIONS:
        raise BadParameter("AKV.SKR.1001: The release policy version %r is not supported; supported: %s." % (doc.get("version"), ", ".join(POLICY_VERSIONS)))
    outer = [name for name in ("anyOf", "allOf") if name in doc]
    if len(outer) != 1:
        raise BadParameter("AKV.SKR.1001: The release policy needs exactly one of anyOf or allOf at its top.")
    authorities = doc[outer[0]]
    if not isinstance(authorities, list) or not authorities:
        raise BadParameter("AKV.SKR.1001: The release policy's %s must be a non-empty list of authorities." % outer[0])
    for index, item in enumerate(authorities):
        where = "%s[%d]" % (outer[0], index)
        if not isinstance(item, dict) or not isinstance(item.get("authority"), str) or not item["authority"]:
            raise BadParameter("AKV.SKR.1001: The release policy's %s needs an authority (the attestation service URL)." % where)
        inner = [name for name in ("anyOf", "allOf") if name in item]
        if len(inner) != 1:
            raise BadParameter("AKV.SKR.1001: The release policy's %s needs exactly one of allOf or anyOf (its claim conditions)." % where)
        _check_claims(item[inner[0]], "%s.%s" % (where, inner[0]))
    return doc


def parse_release_policy(value: object) -> ReleasePolicy:
    """``release_policy`` of a request: ``{"contentType", "data" (base64url policy JSON), "immutable"}``."""
    if not isinstance(value, dict):
        raise BadParameter("Property release_policy must be an object.")
    content_type = value.get("contentType") or POLICY_CONTENT_TYPE
    if content_type.replace(" ", "").lower() != POLICY_CONTENT_TYPE.replace(" ", ""):
        raise BadParameter("AKV.SKR.1001: The release policy content type %r is not supported; use %r." % (content_type, POLICY_CONTENT_TYPE))
    immutable = value.get("immutable", False)
    if immutable is None:
        immutable = False
    if not isinstance(immutable, bool):
        raise BadParameter("Property release_policy.immutable must be a boolean.")
    data = byok.b64url_decode(value.get("data"), "release_policy.data")
    check_policy_document(data)
    return ReleasePolicy(data=data, content_type=POLICY_CONTENT_TYPE, immutable=immutable)


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
    exportable: bool = False
    release_policy: Optional[ReleasePolicy] = None

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

    def usable_now(self, now: int) -> Optional[str]:
        """Why the version cannot be used now, or None."""
        if not self.enabled:
            return "disabled"
        if self.nbf is not None and now < self.nbf:
            return "not yet valid (nbf %d)" % self.nbf
        if self.exp is not None and now >= self.exp:
            return "expired (exp %d)" % self.exp
        return None


# -- settings documents (vault options here, the service limits in :mod:`limits`, the lab's in :mod:`server`) -----
def check_settings(values: object, what: str, known: Sequence[str], unknown_what: Optional[str] = None) -> None:
    """BadParameter unless ``values`` is a JSON object naming only ``known`` settings."""
    if not isinstance(values, dict):
        raise BadParameter("The %s must be a JSON object." % what)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise BadParameter("Unknown %s %s; known: %s." % (unknown_what or what, unknown, ", ".join(known)))


def flag_setting(values: dict, name: str, current: bool, label: Optional[str] = None) -> bool:
    """The true or false ``values[name]``, ``current`` when it is not given."""
    if name not in values:
        return current
    if not isinstance(values[name], bool):
        raise BadParameter("%s must be true or false." % (label or name))
    return values[name]


def number_setting(values: dict, name: str, current: Union[int, float], message: str, low: Optional[float] = None,
                   high: Optional[float] = None, whole: bool = False) -> Union[int, float]:
    """The number ``values[name]`` (a float; an int if ``whole``) from ``low`` to ``high``, ``current`` when it is not
    given; else BadParameter with ``message``."""
    if name not in values:
        return current
    value = values[name]
    if (isinstance(value, bool) or not isinstance(value, int if whole else (int, float))
            or (low is not None and not low <= value) or (high is not None and not value <= high)):
        raise BadParameter(message)
    return value if whole else float(value)


@dataclass
class VaultOptions:
    """How a lab vault behaves where Azure vaults differ or take time.

    * ``delete_delay``: seconds after a DELETE before the key appears under ``/deletedkeys`` (until then its name
      answers 409 ObjectIsBeingDeleted, and ``GET /deletedkeys/{name}`` 404, as in Azure).
    * ``purge_delay``: seconds after a purge during which the name still answers 409 ObjectIsBeingDeleted.
    * ``purge_protection``: a purge is refused (403) and a deleted key stays until its retention ends; always on for a
      Managed HSM in the lab.
    * ``retention_days``: the soft-delete retention (7-90 days).
    """

    delete_delay: float = 0.0
    purge_delay: float = 0.0
    purge_protection: bool = False
    retention_days: int = RECOVERABLE_DAYS

    def update(self, values: dict) -> "VaultOptions":
        check_settings(values, "vault options", sorted(asdict(self)))
        for name in ("delete_delay", "purge_delay"):
            setattr(self, name, number_setting(values, name, getattr(self, name), "%s must be a number of seconds (0 or more)." % name,
                                               low=0))
        self.purge_protection = flag_setting(values, "purge_protection", self.purge_protection)
        self.retention_days = number_setting(values, "retention_days", self.retention_days,
                                             "retention_days must be a whole number of days from 7 to 90.", 7, 90, whole=True)
        return self


@dataclass
class Key:
    name: str
    versions: List[KeyVersion] = field(default_factory=list)
    deleted_date: Optional[int] = None
    scheduled_purge_date: Optional[int] = None
    #: time (the vault's timer) from which a deleted key is listed under /deletedkeys (its deletion has finished)
    visible_at: Optional[float] = None

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
    """One lab vault: its keys and the rules that apply to them.

    Key names are compared case-insensitively, as Key Vault does: ``keys`` is indexed by the lowercase name and each
    :class:`Key` keeps the case of its first creation as its name.
    """

    def __init__(self, name: str, kind: str, url: str, store: Optional["VaultStore"] = None,
                 clock: Callable[[], float] = time.time, options: Optional[VaultOptions] = None,
                 timer: Optional[Callable[[], float]] = None) -> None:
        if kind not in VAULT_KINDS:
            raise ValueError("vault kind must be one of %s" % (VAULT_KINDS,))
        self.name = name
        self.kind = kind
        self.url = url.rstrip("/")
        self.store = store
        #: the vault's time: created, updated, nbf, exp, deletion and purge dates (a lab may run it ahead: clock_offset)
        self.clock = clock
        #: the machine's time, for how long the background work (delete_delay, purge_delay) runs; the clock by default
        self.timer = timer or clock
        self.options = options or VaultOptions()
        self.keys: Dict[str, Key] = {}
        #: lowercase name -> clock time until which a purged name still answers 409 (the purge is running)
        self.purging: Dict[str, float] = {}
        self.lock = threading.RLock()
        if store is not None:
            self.keys.update(store.load(self))

    @property
    def purge_protection(self) -> bool:
        """Purge protection: a vault option; always on for a Managed HSM."""
        return self.kind == MANAGED_HSM or self.options.purge_protection

    @property
    def recovery_level(self) -> str:
        """The ``recoveryLevel`` of the vault's keys (Key Vault's DeletionRecoveryLevel values)."""
        prefix = "Recoverable" if self.options.retention_days == RECOVERABLE_DAYS else "CustomizedRecoverable"
        return prefix if self.purge_protection else prefix + "+Purgeable"

    def save(self) -> None:
        """Hand the changed state to the store (nothing without one)."""
        if self.store is not None:
            self.store.save(self)

    def reset(self) -> None:
        with self.lock:
            self.keys.clear()
            self.purging.clear()
            if self.store is not None:
                self.store.remove()

    def summary(self) -> dict:
        """What the vault holds, for assertions (the lab's own document: :func:`wire.vault_summary`)."""
        from .wire import vault_summary  # pylint: disable=import-outside-toplevel,cyclic-import  # wire renders models

        return vault_summary(self)

    def all_keys(self) -> List[Key]:
        """Every key, deleted or not, sorted by (lowercase) name, after what Azure does in the background."""
        with self.lock:
            self._expire()
            return [self.keys[name] for name in sorted(self.keys)]

    # -- helpers -----------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self.clock())

    def _expire(self) -> None:
        """What Azure does in the background: purge deleted keys whose retention ended, finish running purges."""
        now = self.clock()
        ended = [lower for lower, key in self.keys.items() if key.deleted and key.scheduled_purge_date is not None
                 and now >= key.scheduled_purge_date]
        for lower in ended:
            LOG.info("vault=%s key=%s purged at the end of its retention", self.name, self.keys[lower].name)
            del self.keys[lower]
        running = self.timer()
        for lower in [n for n, until in self.purging.items() if running >= until]:
            del self.purging[lower]
        if ended:
            self.save()

    def _lookup(self, name: str) -> Optional[Key]:
        """The key of that name in any case, deleted or not (None when the vault has none)."""
        _check_name(name)
        self._expire()
        return self.keys.get(name.lower())

    def _being_deleted(self, key: Optional[Key]) -> bool:
        return key is not None and key.deleted and key.visible_at is not None and self.timer() < key.visible_at

    def key_of(self, name: str) -> Key:
        """The live key of that name, in any case (KeyNotFound otherwise)."""
        with self.lock:
            return self._live(name)

    def _live(self, name: str) -> Key:
        key = self._lookup(name)
        if key is None or key.deleted:
            raise KeyNotFound(
                "A key with (name/id) %s was not found in this key vault. If you recently deleted this key you may be able to recover it "
                "using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
                % name)
        return key

    def _deleted(self, name: str) -> Key:
        """A deleted key whose deletion has finished (until then Key Vault does not list it under /deletedkeys)."""
        key = self._lookup(name)
        if key is None or not key.deleted or self._being_deleted(key):
            raise KeyNotFound("Deleted Key not found: %s" % name)
        return key

    def _writable(self, name: str) -> None:
        """Create and import are refused on a soft-deleted name, and while a delete or a purge of it is running."""
        key = self._lookup(name)
        if self._being_deleted(key) or (key is None and name.lower() in self.purging):
            raise Conflict(BEING_DELETED, innererror="ObjectIsBeingDeleted")
        if key is not None and key.deleted:
            raise Conflict("Key %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, "
                           "the key can only be recovered or purged." % key.name, innererror="ObjectIsDeletedButRecoverable")

    def _find(self, name: str, version: Optional[str]) -> Tuple[Key, KeyVersion]:
        """The live key and its version (current when none is named), enabled or not (KeyNotFound otherwise)."""
        key = self._live(name)
        if not version:
            return key, key.current
        found = key.version(version)
        if found is None:
            raise KeyNotFound("A key with (name/id) %s/%s was not found in this key vault. For help resolving this issue, please see "
                              "https://go.microsoft.com/fwlink/?linkid=2125182" % (name, version))
        return key, found

    def _stored_policy(self, value: object) -> ReleasePolicy:
        """A release policy as the vault keeps it: Key Vault (not a Managed HSM) answers the claim values of a policy as
        strings (``"equals": true`` comes back as ``"equals": "true"``), as Azure's own SDK tests record."""
        policy = parse_release_policy(value)
        if self.kind != PREMIUM:
            return policy
        doc = json.loads(policy.data)
        as_text = _claims_as_text(doc)
        if as_text == doc:
            return policy  # kept byte for byte
        return ReleasePolicy(data=json.dumps(as_text, separators=(",", ":")).encode("utf-8"),
                             content_type=policy.content_type, immutable=policy.immutable)

    def _protection(self, kty: str, params: dict) -> Tuple[bool, Optional[ReleasePolicy]]:
        """``attributes.exportable`` and ``release_policy`` of a create or import, with Secure Key Release's rules."""
        attributes = params.get("attributes") or {}
        exportable = attributes.get("exportable", False) if isinstance(attributes, dict) else False
        if exportable is None:
            exportable = False
        if not isinstance(exportable, bool):
            raise BadParameter("Property attributes.exportable must be a boolean.")
        policy = self._stored_policy(params["release_policy"]) if params.get("release_policy") is not None else None
        if exportable and kty not in EXPORTABLE_KTY[self.kind]:
            raise BadParameter("Key type %s cannot be exportable in this vault; exportable keys are %s." % (kty, ", ".join(EXPORTABLE_KTY[self.kind])))
        if exportable and policy is None:
            raise BadParameter(SKR_NEEDS_POLICY)
        if policy is not None and not exportable:
            raise BadParameter(SKR_NOT_EXPORTABLE)
        return exportable, policy

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
        key = self.keys.setdefault(name.lower(), Key(name=name))
        key.versions.append(version)
        self.save()
        return version

    def kid(self, name: str, version: Optional[str] = None) -> str:
        key = self.keys.get(name.lower()) if isinstance(name, str) else None
        base = "%s/keys/%s" % (self.url, key.name if key is not None else name)
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
            enabled, nbf, exp = self._attributes(params.get("attributes"))
            exportable, policy = self._protection(kty, params)
            key_ops = check_key_ops(kty, params.get("key_ops"), exportable)
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
                                 enabled=enabled, nbf=nbf, exp=exp, tags=tags, origin="generated", exportable=exportable,
                                 release_policy=policy)
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
        key = self.keys.get(name.lower()) if NAME_RE.match(name) else None
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
            enabled, nbf, exp = self._attributes(params.get("attributes"))
            exportable, policy = self._protection(kty, params)
            key_ops = check_key_ops(kty, jwk.get("key_ops"), exportable)
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
                                 kek_kid=self.kid(kek_name, kek.version), exportable=exportable, release_policy=policy)
            self._add_version(name, version)
            LOG.info("vault=%s import key=%s version=%s target=%s kek=%s trailing_zero_bytes=%d%s", self.name, name, version.version,
                     target.describe(), version.kek_kid, target.trailing_zero_bytes,
                     " (SoftHSM 2.6.1 zero padding tolerated)" if target.trailing_zero_bytes else "")
            return version

    def get_key(self, name: str, version: Optional[str] = None) -> Tuple[Key, KeyVersion]:
        """``GET /keys/{name}[/{version}]``: 403 KeyDisabled on a disabled version (the versions list still shows it)."""
        with self.lock:
            key, found = self._find(name, version)
            if not found.enabled:
                raise key_disabled("get")
            return key, found

    def list_keys(self) -> List[Key]:
        with self.lock:
            self._expire()
            return [self.keys[name] for name in sorted(self.keys) if not self.keys[name].deleted]

    def list_versions(self, name: str) -> List[KeyVersion]:
        with self.lock:
            return list(self._live(name).versions)

    def update_key(self, name: str, version: Optional[str], params: dict) -> Tuple[Key, KeyVersion]:
        """``PATCH /keys/{name}[/{version}]``: key_ops, attributes, tags and release policy of one version (the current one
        without a version), in place: no new version. A disabled version can be updated (that is how it is enabled)."""
        if not isinstance(params, dict):
            raise BadParameter("The request body must be a JSON object.")
        with self.lock:
            key, item = self._find(name, version)
            attributes = params.get("attributes") or {}
            if not isinstance(attributes, dict):
                raise BadParameter("Property attributes must be an object.")
            if attributes.get("exportable") is not None and attributes["exportable"] != item.exportable:
                raise BadParameter(SKR_EXPORTABLE_FIXED)
            policy = item.release_policy
            if params.get("release_policy") is not None:
                policy = self._stored_policy(params["release_policy"])
                if not item.exportable:
                    raise BadParameter(SKR_NOT_EXPORTABLE)
                if item.release_policy is not None and item.release_policy.immutable and not item.release_policy.same_as(policy):
                    raise BadParameter(SKR_IMMUTABLE)
            key_ops = check_key_ops(item.kty, params["key_ops"], item.exportable) if "key_ops" in params else item.key_ops
            enabled = attributes.get("enabled", item.enabled)
            if not isinstance(enabled, bool):
                raise BadParameter("Property attributes.enabled must be a boolean.")
            nbf = _int_or_none(attributes["nbf"], "nbf") if "nbf" in attributes else item.nbf
            exp = _int_or_none(attributes["exp"], "exp") if "exp" in attributes else item.exp
            tags = _check_tags(params["tags"]) if "tags" in params else item.tags
            item.key_ops, item.enabled, item.nbf, item.exp, item.tags = key_ops, enabled, nbf, exp, tags
            item.release_policy = policy
            item.updated = self._now()
            self.save()
            return key, item

    def set_version_times(self, name: str, version: str, params: dict) -> Tuple[Key, KeyVersion]:
        """The lab's own (admin API): set ``created`` and/or ``updated`` of one version, e.g. to make it look a year old.

        Works on deleted keys too; Key Vault has no such operation."""
        if not isinstance(params, dict):
            raise BadParameter("The request body must be a JSON object.")
        unknown = sorted(set(params) - {"created", "updated"})
        if unknown or not params:
            raise BadParameter("Only created and updated (seconds since the epoch) can be set, got %s." % (sorted(params),))
        with self.lock:
            key = self._lookup(name)
            item = key.version(version) if key is not None else None
            if key is None or item is None:
                raise KeyNotFound("A key with (name/id) %s/%s was not found in this key vault." % (name, version))
            for what in ("created", "updated"):
                if what in params:
                    value = _int_or_none(params[what], what)
                    if value is None:
                        raise BadParameter("%s must be a number of seconds since the epoch." % what)
                    setattr(item, what, value)
            LOG.info("vault=%s key=%s version=%s times set: created=%d updated=%d", self.name, key.name, item.version, item.created, item.updated)
            self.save()
            return key, item

    def delete_key(self, name: str) -> Key:
        """``DELETE /keys/{name}``: soft delete, all versions."""
        with self.lock:
            key = self._live(name)
            now = self._now()
            key.deleted_date = now
            key.scheduled_purge_date = now + self.options.retention_days * 86400
            key.visible_at = self.timer() + self.options.delete_delay
            LOG.info("vault=%s delete key=%s (listed as deleted after %.1f s)", self.name, key.name, self.options.delete_delay)
            self.save()
            return key

    def get_deleted_key(self, name: str) -> Key:
        with self.lock:
            return self._deleted(name)

    def list_deleted_keys(self) -> List[Key]:
        with self.lock:
            self._expire()
            return [self.keys[name] for name in sorted(self.keys) if self.keys[name].deleted and not self._being_deleted(self.keys[name])]

    def _finished_deleting(self, name: str) -> Key:
        """A deleted key on which purge or recover may act: 409 while its deletion is running, 404 when there is none."""
        key = self._lookup(name)
        if self._being_deleted(key):
            raise Conflict(BEING_DELETED, innererror="ObjectIsBeingDeleted")
        return self._deleted(name)

    def purge_deleted_key(self, name: str) -> None:
        """``DELETE /deletedkeys/{name}``: refused under purge protection; the name stays taken for ``purge_delay``."""
        with self.lock:
            key = self._finished_deleting(name)
            if self.purge_protection:
                raise Forbidden(PURGE_PROTECTED)
            del self.keys[key.name.lower()]
            if self.options.purge_delay > 0:
                self.purging[key.name.lower()] = self.timer() + self.options.purge_delay
            LOG.info("vault=%s purge key=%s (name free after %.1f s)", self.name, key.name, self.options.purge_delay)
            self.save()

    def recover_deleted_key(self, name: str) -> Key:
        with self.lock:
            key = self._finished_deleting(name)
            key.deleted_date = None
            key.scheduled_purge_date = None
            key.visible_at = None
            self.save()
            return key

    def _usable(self, name: str, version: Optional[str], op: str) -> KeyVersion:
        _key, item = self._find(name, version)
        why = item.usable_now(self._now())
        if why == "disabled":
            raise key_disabled(op)
        if why:
            raise Forbidden("Operation %s is not allowed: the key is %s." % (op, why))
        if op not in item.key_ops:
            raise Forbidden("Operation %s is not permitted on this key." % op)
        return item

    def _operand(self, name: str, version: Optional[str], params: dict, op: str) -> KeyVersion:
        """The version a key operation (sign, encrypt, wrapKey) works with, its request body checked first."""
        if not isinstance(params, dict):
            raise BadParameter("The request body must be a JSON object.")
        with self.lock:
            return self._usable(name, version, op)

    def sign(self, name: str, version: Optional[str], params: dict) -> Tuple[KeyVersion, bytes]:
        """``POST /keys/{name}/{version}/sign`` over a digest (``value``, base64url)."""
        item = self._operand(name, version, params, "sign")
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

    def wrap_key(self, name: str, version: Optional[str], params: dict) -> Tuple[KeyVersion, bytes]:
        """``POST /keys/{name}/{version}/wrapkey`` with an oct-HSM key: AES key wrap (RFC 3394, A128KW/A192KW/A256KW)."""
        item = self._operand(name, version, params, "wrapKey")
        alg = params.get("alg")
        plaintext = byok.b64url_decode(params.get("value"), "value")
        if not isinstance(item.material, bytes):
            raise BadParameter("The lab wraps with oct-HSM keys only (AES key wrap).")
        sizes = {"A128KW": 128, "A192KW": 192, "A256KW": 256}
        if alg not in sizes:
            raise BadParameter("Invalid key wrap algorithm %r for an oct-HSM key; valid values are %s." % (alg, ", ".join(sizes)))
        if sizes[alg] != 8 * len(item.material):
            raise BadParameter("Algorithm %s needs a %d-bit key; this key has %d bits." % (alg, sizes[alg], 8 * len(item.material)))
        if len(plaintext) < 16 or len(plaintext) % 8:
            raise BadParameter("AES key wrap takes a value of 16 bytes or more, a multiple of 8; got %d." % len(plaintext))
        return item, keywrap.aes_key_wrap(item.material, plaintext)

    def encrypt(self, name: str, version: Optional[str], params: dict) -> Tuple[KeyVersion, bytes, Optional[bytes]]:
        """``POST /keys/{name}/{version}/encrypt``: AES-CBC(-PAD) for oct-HSM, RSA-OAEP(-256)/RSA1_5 for RSA."""
        item = self._operand(name, version, params, "encrypt")
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
