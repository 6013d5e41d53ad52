# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A BYOK blob builder for the lab tests, written with ``cryptography`` only: independent of the
lab's unwrapper and of the collection's plugins."""

from __future__ import annotations

import base64
import json
import os
from typing import Optional

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding


def b64url(data: bytes, pad: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode("ascii")
    return text if pad else text.rstrip("=")


def pkcs8(key) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def pkcs1(key) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())


def softhsm_pad(der: bytes) -> bytes:
    """What SoftHSM 2.6.1 wraps: the DER zero-padded to a multiple of 8."""
    return der + b"\0" * (-len(der) % 8)


def wrap(kek_public: rsa.RSAPublicKey, plaintext: bytes, oaep_hash=None, aes_key: Optional[bytes] = None) -> bytes:
    """CKM_RSA_AES_KEY_WRAP done as two steps: RSA-OAEP(AES key) || AES-KWP(plaintext)."""
    aes_key = aes_key or os.urandom(32)
    hash_alg = oaep_hash or hashes.SHA1()
    head = kek_public.encrypt(aes_key, padding.OAEP(mgf=padding.MGF1(hash_alg), algorithm=hash_alg, label=None))
    return head + aes_key_wrap_with_padding(aes_key, plaintext)


def blob(kek_public: rsa.RSAPublicKey, kid: str, plaintext: bytes, oaep_hash=None, pad_b64: bool = False,
         ciphertext_encoder=None, **header_overrides) -> bytes:
    """The bytes of a .byok file."""
    ciphertext = wrap(kek_public, plaintext, oaep_hash)
    header = {"kid": kid, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"}
    header.update(header_overrides)
    doc = {
        "schema_version": "1.0.0",
        "header": header,
        "ciphertext": ciphertext_encoder(ciphertext) if ciphertext_encoder else b64url(ciphertext, pad=pad_b64),
        "generator": "lab unit tests; cryptography",
    }
    return json.dumps(doc).encode("utf-8")


def rsa_public_from_jwk(n: bytes, e: bytes) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()


def pkcs8_ec_p256_minimal(key) -> bytes:
    """The 67-byte PKCS#8 SoftHSM exports for P-256: RFC 5915 ECPrivateKey without parameters and public key."""
    secret = key.private_numbers().private_value.to_bytes(32, "big")
    algid = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")  # id-ecPublicKey, prime256v1
    ec_private = bytes.fromhex("30250201010420") + secret
    inner = bytes.fromhex("020100") + algid + bytes([0x04, len(ec_private)]) + ec_private
    return bytes([0x30, len(inner)]) + inner
