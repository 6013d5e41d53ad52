# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Identities, access tokens and permissions.

Tokens are JWTs signed with HMAC-SHA256 under a key kept in the state directory.  A token names
its audience (the resource of ONE vault: ``https://0.0.1:PORT``, or the resource manager:
``https://127.0.0.1:BASE``), tenant (``tid``) and client (``appid``); a vault or the resource
manager accepts only tokens for its own audience.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List

from .errors import (InvalidAudience, InvalidClient, InvalidClientAssertion, InvalidRequest, Unauthorized, UnauthorizedClient,
                     forbidden_by_policy)

#: every Key Vault keys permission of an access policy
ALL_KEY_PERMISSIONS = (
    "get", "list", "create", "import", "update", "delete", "recover", "purge", "backup", "restore",
    "sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey", "release", "rotate",
    "getrotationpolicy", "setrotationpolicy",
)
READER_PERMISSIONS = ("get", "list")
TOKEN_LIFETIME = 3600
#: clock skew allowed between the token issuer and the vault for nbf and iat (Entra tokens carry nbf = iat); exp is strict
CLOCK_SKEW = 60
#: RFC 7523 client authentication with a JWT (what a certificate credential sends)
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: clock skew Entra ID tolerates on a client assertion's exp/nbf
ASSERTION_SKEW = 300


@dataclass
class Identity:
    """A service principal: client id, secret and per-vault key permissions (``"*"`` = any vault)."""

    name: str
    client_id: str
    secret: str
    permissions: Dict[str, List[str]] = field(default_factory=dict)
    #: public certificates (PEM) registered on the application: client assertions signed by their keys are accepted
    certificates: List[str] = field(default_factory=list)

    def allows(self, vault: str, permission: str) -> bool:
        granted = self.permissions.get(vault, self.permissions.get("*", []))
        return permission in granted


@dataclass
class Claims:
    aud: str
    tid: str
    appid: str
    exp: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Authenticates clients, issues tokens, validates them, checks permissions."""

    def __init__(self, tenant_id: str, signing_key: bytes, identities: Iterable[Identity],
                 clock: Callable[[], float] = time.time) -> None:
        self.tenant_id = tenant_id
        self._key = signing_key
        self.identities: Dict[str, Identity] = {i.client_id: i for i in identities}
        self.clock = clock

    def authenticate(self, client_id: str, secret: str) -> Identity:
        identity = self._identity(client_id)
        if not hmac.compare_digest(identity.secret.encode("utf-8"), (secret or "").encode("utf-8")):
            raise InvalidClient(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client "
                "secret ID, for a secret added to app '%s'." % client_id)
        return identity

    def authenticate_assertion(self, client_id: str, assertion_type: str, assertion: str, token_endpoint: str) -> Identity:
        """Client authentication with a certificate, as Entra ID does it (RFC 7523 + the x5t header).

        The assertion is a JWT signed RS256 (``x5t`` = base64url SHA-1 thumbprint of the certificate) or PS256
        (``x5t#S256`` = base64url SHA-256 thumbprint) by the key of a certificate registered on the application;
        ``aud`` is the token endpoint the request went to, ``iss`` = ``sub`` = the client id, ``exp``/``nbf`` hold.
        """
        if assertion_type != JWT_BEARER:
            raise InvalidRequest("The client_assertion_type '%s' is not supported; it must be '%s'." % (assertion_type, JWT_BEARER))
        header, payload, signing_input, signature = _split_jwt(assertion)
        issuer = payload.get("iss")
        client_id = client_id or (issuer if isinstance(issuer, str) else "")
        identity = self._identity(client_id)
        if issuer != client_id or payload.get("sub") != client_id:
            raise InvalidClientAssertion(
                700021, "Client assertion application identifier doesn't match 'client_id' parameter. Review the "
                "documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
        alg = header.get("alg")
        if alg == "RS256":
            thumb_name, digest = "x5t", "sha1"
        elif alg == "PS256":
            thumb_name, digest = "x5t#S256", "sha256"
        else:
            raise InvalidClientAssertion(5002730, "Invalid JWT token. Unsupported key for the signing algorithm '%s'." % alg)
        try:
            thumbprint = _unb64(str(header.get(thumb_name) or ""))
        except (binascii.Error, ValueError):
            thumbprint = b""
        if not thumbprint:
            raise InvalidClientAssertion(700027, "Client assertion failed signature validation. [Reason - The header "
                                         "'%s' is missing.]" % thumb_name)
        cert = self._registered_certificate(identity, thumbprint, digest)
        if cert is None:
            raise InvalidClientAssertion(
                700027, "The certificate with identifier used to sign the client assertion is not registered on application. "
                "[Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph "
                "Explorer or directly use MS Graph to see configured keys for app Id '%s'.]" % (thumbprint.hex().upper(), client_id))
        now = int(self.clock())
        if cert.not_valid_after_utc.timestamp() < now:
            raise InvalidClientAssertion(700027, "Client assertion failed signature validation. [Reason - The key used is "
                                         "expired., Thumbprint of key used by client: '%s']" % thumbprint.hex().upper())
        if not _signature_ok(cert.public_key(), alg, signing_input, signature):
            raise InvalidClientAssertion(700027, "Client assertion contains an invalid signature. [Reason - The provided "
                                         "signature value did not match the expected signature value., Thumbprint of key used by "
                                         "client: '%s']" % thumbprint.hex().upper())
        if payload.get("aud") != token_endpoint:
            raise InvalidClientAssertion(700023, "Client assertion audience claim does not match Realm issuer. Review the documentation at "
                                         "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
        exp, nbf = payload.get("exp"), payload.get("nbf", payload.get("iat"))
        if not isinstance(exp, (int, float)) or exp + ASSERTION_SKEW < now or (
                isinstance(nbf, (int, float)) and nbf - ASSERTION_SKEW > now):
            raise InvalidClientAssertion(700024, "Client assertion is not within its valid time range. Current time: %d, "
                                         "assertion valid from %s, expiry time of assertion %s." % (now, nbf, exp))
        return identity

    def _identity(self, client_id: str) -> Identity:
        """The identity registered under ``client_id``, or Entra ID's answer for an unknown application."""
        identity = self.identities.get(client_id)
        if identity is None:
            raise UnauthorizedClient(
                "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your "
                "authentication request to the wrong tenant." % (client_id, self.tenant_id))
        return identity

    @staticmethod
    def _registered_certificate(identity: Identity, thumbprint: bytes, digest: str):
        from cryptography import x509  # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives import hashes  # pylint: disable=import-outside-toplevel

        algorithm = hashes.SHA1() if digest == "sha1" else hashes.SHA256()  # nosec - the x5t header is a SHA-1 thumbprint
        for pem in identity.certificates:
            cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
            if hmac.compare_digest(cert.fingerprint(algorithm), thumbprint):
                return cert
        return None

    def issue(self, identity: Identity, audience: str, lifetime: int = TOKEN_LIFETIME) -> str:
        now = int(self.clock())
        header = {"typ": "JWT", "alg": "HS256", "kid": "lab"}
        payload = {
            "aud": audience, "iss": "https://sts.windows.net/%s/" % self.tenant_id, "iat": now, "nbf": now, "exp": now + lifetime,
            "tid": self.tenant_id, "appid": identity.client_id, "oid": identity.client_id, "sub": identity.client_id,
            "idtyp": "app", "ver": "1.0", "uti": uuid.uuid4().hex,
        }
        signing_input = "%s.%s" % (_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()))
        signature = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest()
        return "%s.%s" % (signing_input, _b64(signature))

    def validate(self, token: str, audience: str) -> Claims:
        """Check signature, expiry, tenant and audience; raise :class:`Unauthorized` (:class:`InvalidAudience`) otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            raise Unauthorized("AKV10000: Request is missing a Bearer or PoP token.")
        expected = hmac.new(self._key, ("%s.%s" % (parts[0], parts[1])).encode("ascii"), hashlib.sha256).digest()
        try:
            signature = _unb64(parts[2])
            payload = json.loads(_unb64(parts[1]))
        except (binascii.Error, ValueError) as exc:
            raise Unauthorized("AKV10021: Invalid token format.") from exc
        if not hmac.compare_digest(expected, signature) or not isinstance(payload, dict):
            raise Unauthorized("AKV10031: Token signature verification failed.")
        now = int(self.clock())
        for claim in ("exp", "nbf", "iat"):
            if claim in payload and (not isinstance(payload[claim], int) or isinstance(payload[claim], bool)):
                raise Unauthorized("AKV10021: Invalid token format.")
        if "exp" not in payload or payload["exp"] <= now:
            raise Unauthorized("AKV10032: Token expired.")
        if payload.get("nbf", now) > now + CLOCK_SKEW:
            raise Unauthorized("AKV10032: Token is not yet valid (nbf is in the future).")
        if payload.get("iat", now) > now + CLOCK_SKEW:
            raise Unauthorized("AKV10032: Token was issued in the future (iat).")
        if "iat" in payload and payload["exp"] <= payload["iat"]:
            raise Unauthorized("AKV10021: Invalid token format (exp is not after iat).")
        if payload.get("tid") != self.tenant_id:
            raise Unauthorized("AKV10032: Invalid issuer. Expected one of the issuers of tenant %s." % self.tenant_id)
        if payload.get("aud") != audience:
            raise InvalidAudience("AKV10022: Invalid audience. Expected %s, found: %s." % (audience, payload.get("aud")))
        if payload.get("appid") not in self.identities:
            raise Unauthorized("AKV10032: Unknown application.")
        return Claims(aud=payload["aud"], tid=payload["tid"], appid=payload["appid"], exp=payload["exp"])

    def check_permission(self, claims: Claims, vault: str, permission: str) -> None:
        identity = self.identities.get(claims.appid)
        if identity is None or not identity.allows(vault, permission):
            raise forbidden_by_policy(claims.appid, self.tenant_id, permission, vault)


def _split_jwt(token: str):
    """(header, payload, signing input, signature) of a compact JWS, or the token endpoint's error."""
    parts = (token or "").split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not three parts")
        header, payload = json.loads(_unb64(parts[0])), json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (binascii.Error, ValueError) as exc:
        raise InvalidClientAssertion(50027, "JWT token is invalid or malformed.") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise InvalidClientAssertion(50027, "JWT token is invalid or malformed.")
    return header, payload, ("%s.%s" % (parts[0], parts[1])).encode("ascii"), signature


def _signature_ok(public_key, alg: str, signing_input: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import hashes  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import padding, rsa  # pylint: disable=import-outside-toplevel

    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    pad = padding.PKCS1v15() if alg == "RS256" else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
    try:
        public_key.verify(signature, signing_input, pad, hashes.SHA256())
    except InvalidSignature:
        return False
    return True
