# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's own reader of .byok blobs (independent of the collection's plugins).

A blob is JSON::

    {"schema_version": "1.0.0",
     "header": {"kid": "<versioned KEK id>", "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
     "ciphertext": "<base64url>", "generator": "<free text>"}

ciphertext = RSA-OAEP(SHA-1, MGF1-SHA-1, empty label) of an AES key, as long as the KEK modulus,
followed by AES-KWP (RFC 5649) of the target key: PKCS#8 DER for RSA and EC, raw bytes for oct.

SoftHSM 2.6.1 zero-pads a private key's DER to a multiple of 8 bytes before wrapping it, so the
plaintext can be the DER followed by 1-7 zero bytes.  The lab tolerates exactly that and reports
how many bytes it dropped, so the tests can see it.

Every refusal raises :class:`errors.BadParameter` with a message saying what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from .errors import BadParameter

SCHEMA_VERSION = "1.0.0"
ALG = "dir"
ENC = "CKM_RSA_AES_KEY_WRAP"

RSA_SIZES = (2048, 3072, 4096)
OCT_SIZES = (16, 24, 32)
MAX_TRAILING_ZEROS = 7

#: JWK curve name -> cryptography curve name
CURVES = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1", "P-256K": "secp256k1"}
CURVE_NAMES = {v: k for k, v in CURVES.items()}

_B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]


def b64url_decode(value: object, what: str) -> bytes:
    """Decode base64url, with or without ``=`` padding; refuse anything else (``+``, ``/``, blanks)."""
    if not isinstance(value, str):
        raise BadParameter("%s must be a base64url string." % what)
    if not _B64URL.match(value):
        bad = sorted(set(re.sub(r"[A-Za-z0-9_=-]", "", value)))
        hint = " (standard base64 characters '+' or '/' found: base64url uses '-' and '_')" if set(bad) & {"+", "/"} else ""
        raise BadParameter("%s is not valid base64url: unexpected characters %r%s." % (what, "".join(bad)[:10], hint))
    body = value.rstrip("=")
    pad = len(value) - len(body)
    if len(body) % 4 == 1 or (pad and len(value) % 4 != 0):
        raise BadParameter("%s is not valid base64url: bad length or padding." % what)
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadParameter("%s is not valid base64url: %s." % (what, exc)) from exc


def b64url_encode(data: bytes) -> str:
    """base64url without padding, as Key Vault writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class ByokBlob:
    kid: str
    ciphertext: bytes
    generator: str


def parse_blob(data: bytes) -> ByokBlob:
    """Parse the bytes of a .byok file (what ``key_hsm`` carries once base64url-decoded)."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadParameter("key_hsm does not hold a BYOK blob: the decoded bytes are not UTF-8 JSON (%s)." % exc) from exc
    if not isinstance(doc, dict):
        raise BadParameter("key_hsm does not hold a BYOK blob: the JSON is not an object.")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise BadParameter("BYOK blob: schema_version must be %r, got %r." % (SCHEMA_VERSION, doc.get("schema_version")))
    header = doc.get("header")
    if not isinstance(header, dict):
        raise BadParameter("BYOK blob: 'header' object is missing.")
    if header.get("alg") != ALG:
        raise BadParameter("BYOK blob: header.alg must be %r, got %r." % (ALG, header.get("alg")))
    if header.get("enc") != ENC:
        raise BadParameter("BYOK blob: header.enc must be %r, got %r." % (ENC, header.get("enc")))
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise BadParameter("BYOK blob: header.kid (the KEK identifier) is missing.")
    if "ciphertext" not in doc:
        raise BadParameter("BYOK blob: 'ciphertext' is missing.")
    ciphertext = b64url_decode(doc["ciphertext"], "BYOK blob ciphertext")
    generator = doc.get("generator", "")
    if not isinstance(generator, str):
        generator = json.dumps(generator)
    return ByokBlob(kid=kid, ciphertext=ciphertext, generator=generator)


def unwrap(ciphertext: bytes, kek: rsa.RSAPrivateKey) -> bytes:
    """CKM_RSA_AES_KEY_WRAP unwrap: RSA-OAEP(SHA-1) part, then AES-KWP part."""
    rsa_len = (kek.key_size + 7) // 8
    kwp = ciphertext[rsa_len:]
    if len(ciphertext) <= rsa_len or len(kwp) < 16 or len(kwp) % 8:
        raise BadParameter(
            "BYOK blob: ciphertext of %d bytes cannot be CKM_RSA_AES_KEY_WRAP under a %d-bit KEK "
            "(expected %d bytes of RSA-OAEP followed by an AES-KWP part of at least 16 bytes, a multiple of 8)."
            % (len(ciphertext), kek.key_size, rsa_len)
        )
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # nosec - the BYOK spec mandates SHA-1
    try:
        aes_key = kek.decrypt(ciphertext[:rsa_len], oaep)
    except ValueError as exc:
        raise BadParameter(
            "BYOK blob: the RSA-OAEP part does not decrypt under the KEK with SHA-1/MGF1-SHA-1 "
            "(wrong KEK, or OAEP with SHA-256 instead of SHA-1?)."
        ) from exc
    if len(aes_key) not in (16, 24, 32):
        raise BadParameter("BYOK blob: the RSA-OAEP part holds %d bytes, not an AES key." % len(aes_key))
    try:
        return aes_key_unwrap_with_padding(aes_key, kwp)
    except InvalidUnwrap as exc:
        raise BadParameter("BYOK blob: the AES key wrap part does not unwrap (RFC 5649 AES-KWP expected).") from exc


def _der_header(data: bytes, offset: int) -> Tuple[int, int, int]:
    """(tag, header length, content length) of the DER TLV at ``offset``."""
    if len(data) < offset + 2:
        raise ValueError("truncated DER")
    tag = data[offset]
    first = data[offset + 1]
    if first < 0x80:
        return tag, 2, first
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < offset + 2 + count:
        raise ValueError("bad DER length")
    length = int.from_bytes(data[offset + 2:offset + 2 + count], "big")
    return tag, 2 + count, length


def split_trailing_zeros(plaintext: bytes) -> Tuple[bytes, int]:
    """Return (exact DER, number of trailing zero bytes); tolerate 1..7 zero bytes after the DER."""
    try:
        tag, head, length = _der_header(plaintext, 0)
    except ValueError as exc:
        raise BadParameter("The unwrapped key is not DER: %s." % exc) from exc
    if tag != 0x30:
        raise BadParameter("The unwrapped key is not a DER SEQUENCE (PKCS#8 PrivateKeyInfo expected).")
    total = head + length
    if total > len(plaintext):
        raise BadParameter("The unwrapped key is truncated: DER says %d bytes, %d present." % (total, len(plaintext)))
    rest = plaintext[total:]
    if not rest:
        return plaintext, 0
    if len(rest) <= MAX_TRAILING_ZEROS and not any(rest):
        return plaintext[:total], len(rest)
    if not any(rest):
        raise BadParameter("The unwrapped key has %d zero bytes after its DER encoding; at most %d (padding to 8 bytes) are tolerated."
                           % (len(rest), MAX_TRAILING_ZEROS))
    raise BadParameter("The unwrapped key has %d unexpected non-zero bytes after its DER encoding." % len(rest))


def _structure(der: bytes) -> str:
    """Tell PKCS#8 from PKCS#1 / RFC 5915 by the second element of the outer SEQUENCE."""
    try:
        _tag, head, _length = _der_header(der, 0)
        tag1, head1, len1 = _der_header(der, head)
        tag2, _head2, _len2 = _der_header(der, head + head1 + len1)
    except ValueError:
        return "unknown"
    if tag1 != 0x02:
        return "unknown"
    if tag2 == 0x30:
        return "pkcs8"
    if tag2 == 0x02:
        return "pkcs1"
    if tag2 == 0x04:
        return "sec1"
    return "unknown"


@dataclass
class Target:
    """The unwrapped target key."""

    kty: str
    private_key: Optional[PrivateKey] = None
    secret: Optional[bytes] = None
    trailing_zero_bytes: int = 0

    def describe(self) -> str:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return "RSA-%d" % self.private_key.key_size
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return "EC %s" % CURVE_NAMES.get(self.private_key.curve.name, self.private_key.curve.name)
        return "AES-%d" % (8 * len(self.secret or b""))


def load_target(plaintext: bytes, kty: str, crv: Optional[str] = None) -> Target:
    """Interpret the unwrapped plaintext as the declared key type."""
    if kty == "oct-HSM":
        if len(plaintext) not in OCT_SIZES:
            raise BadParameter("The unwrapped oct-HSM key is %d bytes; an AES key of 16, 24 or 32 bytes is expected." % len(plaintext))
        return Target(kty=kty, secret=plaintext)
    if kty not in ("RSA-HSM", "EC-HSM"):
        raise BadParameter("Unsupported kty %r for a BYOK import." % kty)
    der, zeros = split_trailing_zeros(plaintext)
    shape = _structure(der)
    if shape == "pkcs1":
        raise BadParameter("The unwrapped key is a PKCS#1 RSAPrivateKey; PKCS#8 (PrivateKeyInfo) is expected (openssl pkcs8 -topk8).")
    if shape == "sec1":
        raise BadParameter("The unwrapped key is an RFC 5915 ECPrivateKey; PKCS#8 (PrivateKeyInfo) is expected.")
    if shape != "pkcs8":
        raise BadParameter("The unwrapped key is not a PKCS#8 PrivateKeyInfo.")
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadParameter("The unwrapped PKCS#8 key does not parse: %s." % exc) from exc
    if kty == "RSA-HSM":
        if not isinstance(key, rsa.RSAPrivateKey):
            raise BadParameter("The declared kty is RSA-HSM but the unwrapped key is not an RSA key.")
        if key.key_size not in RSA_SIZES:
            raise BadParameter("The unwrapped RSA key has %d bits; Key Vault accepts 2048, 3072 or 4096." % key.key_size)
    else:
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise BadParameter("The declared kty is EC-HSM but the unwrapped key is not an EC key.")
        actual = CURVE_NAMES.get(key.curve.name, key.curve.name)
        if actual != crv:
            raise BadParameter("The declared curve is %s but the unwrapped key is on %s." % (crv, actual))
    return Target(kty=kty, private_key=key, trailing_zero_bytes=zeros)
