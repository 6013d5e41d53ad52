# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a key is, independent of where it lives.

One place for: the key types, sizes and curves Azure accepts (per vault type),
the fingerprint of a public key (SHA-256 of its DER SubjectPublicKeyInfo) computed
from a PEM, from PKCS#11 attributes or from a Key Vault JWK, and the key check value
(KCV) of AES keys.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import re
import traceback

from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError

CRYPTOGRAPHY_IMPORT_ERROR = None
try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
except ImportError:  # pragma: no cover - exercised on hosts without the library
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

VAULT_TYPES = ('premium', 'managed_hsm')

RSA_SIZES = (2048, 3072, 4096)
EC_CURVES = ('P-256', 'P-384', 'P-521', 'P-256K')
OCT_SIZES = (128, 192, 256)
KEK_SIZES = (2048, 3072, 4096)

#: Vault key tag that records the KCV of an imported AES key (read back when the key may not encrypt)
KCV_TAG = 'byok-kcv'
#: the tag the collection records an RSA or EC key's fingerprint in at import: the identity of a version Key Vault will not
#: show (a disabled version answers 403 KeyDisabled to a read; its versions list still shows its tags)
FINGERPRINT_TAG = 'byok-fingerprint'
IDENTITY_TAGS = (KCV_TAG, FINGERPRINT_TAG)


def identity_of_tags(tags):
    """(tag name, identity) of the collection's identity tag among a vault key's tags, or None."""
    for tag in IDENTITY_TAGS:
        value = tagged_identity(tags, tag)
        if value:
            return tag, value
    return None


# Azure curve name -> (cryptography class name, DER of the named-curve OID as CKA_EC_PARAMS)
CURVES = {
    'P-256': ('SECP256R1', bytes.fromhex('06082a8648ce3d030107')),
    'P-384': ('SECP384R1', bytes.fromhex('06052b81040022')),
    'P-521': ('SECP521R1', bytes.fromhex('06052b81040023')),
    'P-256K': ('SECP256K1', bytes.fromhex('06052b8104000a')),
}
CURVE_BITS = {'P-256': 256, 'P-384': 384, 'P-521': 521, 'P-256K': 256}

# kty Key Vault uses for HSM-protected keys of each type
AZURE_KTY = {'RSA': 'RSA-HSM', 'EC': 'EC-HSM', 'oct': 'oct-HSM'}
KEY_TYPES = ('RSA', 'EC', 'oct')

# Key operations Key Vault knows; import belongs to a KEK only and export to release policies, never to a BYOK target
KEY_OPS_CHOICES = ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey', 'import', 'export']
#: what a BYOK target key of each type may be allowed to do in the vault
TARGET_KEY_OPS = {
    'RSA': ('encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'),
    'EC': ('sign', 'verify'),
    'oct': ('encrypt', 'decrypt', 'wrapKey', 'unwrapKey'),
}
#: key_ops an imported key gets when none are given: everything its type may do
DEFAULT_KEY_OPS = dict((kt, list(ops)) for kt, ops in TARGET_KEY_OPS.items())


class KeySpecError(ByokError, ValueError):
    """A key specification Azure would refuse; the message names the allowed values."""


def normalize_key_type(value):
    """Accept RSA, EC, oct (and the -HSM kty spellings) and return RSA, EC or oct."""
    if value is None:
        return None
    v = str(value).strip()
    if v.upper().endswith('-HSM'):
        v = v[:-4]
    lowered = v.lower()
    if lowered == 'rsa':
        return 'RSA'
    if lowered == 'ec':
        return 'EC'
    if lowered in ('oct', 'aes'):
        return 'oct'
    raise KeySpecError("key_type '%s' is not supported; use one of RSA, EC, oct" % value)


def normalize_curve(value):
    if value is None:
        return None
    v = str(value).strip().upper().replace('_', '-')
    aliases = {'SECP256R1': 'P-256', 'PRIME256V1': 'P-256', 'SECP384R1': 'P-384', 'SECP521R1': 'P-521',
               'SECP256K1': 'P-256K', 'P256': 'P-256', 'P384': 'P-384', 'P521': 'P-521', 'P256K': 'P-256K'}
    v = aliases.get(v, v)
    if v not in CURVES:
        raise KeySpecError("curve '%s' is not accepted by Azure Key Vault; use one of %s" % (value, ', '.join(EC_CURVES)))
    return v


#: sized key types: (sizes Azure accepts, default size, how messages name the type and the service that refuses)
SIZED_TYPES = {
    'RSA': (RSA_SIZES, 3072, 'RSA', 'Azure Key Vault', " or set key_type: EC"),
    'oct': (OCT_SIZES, 256, 'oct (AES)', 'Azure Managed HSM', ''),
}


def validate_target(key_type, key_size=None, curve=None, vault_type=None):
    """Check a target key spec against what Azure accepts and return the normalized spec.

    Returns a dict with key_type, key_size (RSA/oct) and curve (EC).  Raises KeySpecError
    with a message that names the allowed values.
    """
    kt = normalize_key_type(key_type)
    if kt == 'EC':
        crv = normalize_curve(curve or 'P-256')
        if key_size is not None and int(key_size) != CURVE_BITS[crv]:
            raise KeySpecError("key_size %s does not match curve %s (%s bits); for EC keys set curve and leave key_size out"
                               % (key_size, crv, CURVE_BITS[crv]))
        return {'key_type': 'EC', 'key_size': CURVE_BITS[crv], 'curve': crv}
    sizes, default, name, service, hint = SIZED_TYPES[kt]
    if curve:
        raise KeySpecError("curve is only for EC keys; remove curve '%s'%s" % (curve, hint))
    size = int(key_size) if key_size is not None else default
    if size not in sizes:
        raise KeySpecError("%s key_size %s is not accepted by %s; use one of %s"
                           % (name, size, service, ', '.join(str(s) for s in sizes)))
    if kt == 'oct' and vault_type == 'premium':
        raise KeySpecError("oct (AES) keys can only be imported into Azure Managed HSM, not into a Key Vault Premium vault; "
                           "use a Managed HSM (vault type managed_hsm) or an RSA/EC key")
    return {'key_type': kt, 'key_size': size, 'curve': None}


def b64url_decode(value):
    """Decode base64url with or without '=' padding (as Key Vault JWKs and .byok files use it)."""
    if isinstance(value, str):
        value = value.encode('ascii')
    return base64.urlsafe_b64decode(value + b'=' * (-len(value) % 4))


def b64url_encode(data):
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def _curve_object(name):
    return getattr(ec, CURVES[name][0])()


def curve_from_ec_params(der):
    for name, (dummy, oid_der) in CURVES.items():
        if bytes(der) == oid_der:
            return name
    raise KeySpecError('the key uses an elliptic curve Azure Key Vault does not accept (EC params %s); use one of %s'
                       % (bytes(der).hex(), ', '.join(EC_CURVES)))


def public_key_from_rsa_numbers(modulus, exponent):
    if isinstance(modulus, bytes):
        modulus = int.from_bytes(modulus, 'big')
    if isinstance(exponent, bytes):
        exponent = int.from_bytes(exponent, 'big')
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def _unwrap_octet_string(point):
    """CKA_EC_POINT is a DER OCTET STRING around the point (some tokens give the raw point)."""
    point = bytes(point)
    if point and point[0] == 0x04 and len(point) > 2:
        # raw uncompressed point: 04 || X || Y with odd length; DER OCTET STRING: 04 len ...
        if point[1] & 0x80:
            n = point[1] & 0x7F
            length = int.from_bytes(point[2:2 + n], 'big')
            if 2 + n + length == len(point):
                return point[2 + n:]
        elif 2 + point[1] == len(point) and len(point) % 2 == 1 and point[2] in (0x02, 0x03, 0x04):
            return point[2:]
    return point


def public_key_from_ec_point(curve, point):
    return ec.EllipticCurvePublicKey.from_encoded_point(_curve_object(curve), _unwrap_octet_string(point))


def public_key_from_jwk(jwk):
    """A cryptography public key from a Key Vault JWK (dict with kty, n/e or crv/x/y; bytes or base64url)."""
    def raw(value):
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        return b64url_decode(value)

    kty = normalize_key_type(jwk.get('kty'))
    if kty == 'RSA':
        return public_key_from_rsa_numbers(raw(jwk['n']), raw(jwk['e']))
    if kty == 'EC':
        crv = normalize_curve(jwk.get('crv'))
        x = raw(jwk['x'])
        y = raw(jwk['y'])
        return ec.EllipticCurvePublicNumbers(int.from_bytes(x, 'big'), int.from_bytes(y, 'big'), _curve_object(crv)).public_key()
    return None


def spki_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_pem(public_key):
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode('ascii')


def fingerprint(public_key):
    """Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo."""
    return hashlib.sha256(spki_der(public_key)).hexdigest()


def signature_verifies(public_key, digest, signature):
    """Whether signature over the prehashed digest (SHA-256, -384 or -512, by its length) verifies with public_key: RSA
    PKCS#1 v1.5, or ECDSA as r || s (the form PKCS#11's CKM_ECDSA and Key Vault give)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, utils
    prehashed = utils.Prehashed({32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[len(digest)])
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(bytes(signature), digest, padding.PKCS1v15(), prehashed)
        else:
            half = len(signature) // 2
            der = utils.encode_dss_signature(int.from_bytes(bytes(signature[:half]), 'big'),
                                             int.from_bytes(bytes(signature[half:]), 'big'))
            public_key.verify(der, digest, ec.ECDSA(prehashed))
    except (InvalidSignature, ValueError):
        return False
    return True


def describe_public_key(public_key):
    """key_type, key_size, curve of a cryptography public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return {'key_type': 'RSA', 'key_size': public_key.key_size, 'curve': None}
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        for name, (cls_name, dummy) in CURVES.items():
            if public_key.curve.name == getattr(ec, cls_name).name:
                return {'key_type': 'EC', 'key_size': CURVE_BITS[name], 'curve': name}
        raise KeySpecError('the public key uses curve %s, which Azure Key Vault does not accept' % public_key.curve.name)
    raise KeySpecError('unsupported public key type %s' % type(public_key).__name__)


def load_public_pem(data, what='the KEK file'):
    """Load a PEM SubjectPublicKeyInfo; a clear KeySpecError when it is anything else."""
    if isinstance(data, str):
        data = data.encode('utf-8')
    if b'PRIVATE KEY' in data:
        raise KeySpecError('%s holds a private key; it must hold only the KEK public key (PEM "PUBLIC KEY", as byok_kek_fetch writes it)'
                           % what)
    try:
        return serialization.load_pem_public_key(data)
    except ValueError:
        raise KeySpecError('%s is not a PEM public key; write it with byok_kek_fetch (dest) or export the KEK public key '
                           'from the vault as PEM' % what)


#: the key types identified by their key check value (an AES key has no public key); the others (RSA, EC) by the
#: SHA-256 fingerprint of their public key (SPKI)
KCV_IDENTIFIED = ('oct',)


def identified_by_kcv(key_type):
    """True when a key of key_type (RSA, EC, oct, or a kty such as oct-HSM) is identified by its KCV, not its fingerprint."""
    try:
        return normalize_key_type(key_type) in KCV_IDENTIFIED
    except KeySpecError:
        return False


def identity_kind(key_type):
    """What an identity of a key of key_type is, as reports name it: 'kcv' or 'sha256'."""
    return 'kcv' if identified_by_kcv(key_type) else 'sha256'


def identity(key_type, fingerprint, kcv):
    """What identifies the key material of a key of key_type: its KCV (AES) or its SPKI SHA-256 fingerprint (RSA, EC)."""
    return kcv if identified_by_kcv(key_type) else fingerprint


def identity_tag(key_type):
    """The tag the collection records the identity of an imported version of a key_type key in."""
    return KCV_TAG if identified_by_kcv(key_type) else FINGERPRINT_TAG


def vault_identity(key_type, fingerprint, kcv, tags):
    """identity() of a vault key version: for AES, the KCV the vault computed, else the one the collection recorded in the
    version's KCV_TAG at import (the only identity Key Vault keeps for an AES key that may not encrypt)."""
    if identified_by_kcv(key_type):
        return kcv or tagged_identity(tags, KCV_TAG)
    return fingerprint


def kcv_from_block(encrypted_zero_block):
    """The key check value of an AES key: lowercase hex SHA-256 of AES-ECB(key, 16 zero bytes), 64 digits.

    Not the 3-byte KCV vendor tools print: 24 bits are a checksum, not an identity (another AES key with the same
    3 bytes is found in seconds, wrapped under a vault's public KEK and imported under the key's name), and the block
    itself is never shown either: AES(key, zero block) is the key's GCM hash key, with which GCM tags can be forged.
    Its SHA-256 gives neither away, and no other key can be made to match it."""
    return hashlib.sha256(bytes(encrypted_zero_block)[:16]).hexdigest()


def aes_key_wrap(encrypt_block, value):
    """RFC 3394 AES key wrap of value (16 bytes or more, a multiple of 8) with the key behind encrypt_block (one AES
    block in, one out: AES-ECB in the HSM, where the key never leaves)."""
    n = len(value) // 8
    a, r = bytes.fromhex('a6a6a6a6a6a6a6a6'), [value[i * 8:(i + 1) * 8] for i in range(n)]
    for j in range(6):
        for i in range(n):
            b = bytes(encrypt_block(a + r[i]))
            a = (int.from_bytes(b[:8], 'big') ^ (n * j + i + 1)).to_bytes(8, 'big')
            r[i] = b[8:]
    return a + b''.join(r)


#: what an identity tag holds: a fingerprint or a KCV, 64 hex digits (a shorter value, such as a 3-byte KCV an earlier
#: release wrote, identifies nothing and is not read)
_IDENTITY_RE = re.compile(r'\A[0-9a-fA-F]{64}\Z')


def is_identity(value):
    """Whether value is an identity: a fingerprint or a KCV, 64 hex digits."""
    return isinstance(value, str) and bool(_IDENTITY_RE.match(value))


def tagged_identity(tags, name):
    """The identity the collection recorded in the tag name of a vault key's tags, when the tag holds one; else None."""
    value = (tags or {}).get(name)
    return value.lower() if is_identity(value) else None


def check_key_ops(key_type, key_ops, exportable=False):
    """The key_ops of a target key of key_type, checked against what Azure allows it (export only on an exportable key);
    KeySpecError otherwise."""
    allowed = TARGET_KEY_OPS[normalize_key_type(key_type)] + (('export',) if exportable else ())
    for op in key_ops or []:
        if op == 'import' or (op == 'export' and not exportable):
            raise KeySpecError("'%s' is not allowed for a BYOK target key (import belongs to a KEK only, export to keys with a "
                               "release policy); use %s" % (op, ', '.join(allowed)))
        if op not in allowed:
            raise KeySpecError("'%s' is not allowed for %s keys; use %s" % (op, normalize_key_type(key_type), ', '.join(allowed)))
    return list(key_ops) if key_ops else list(DEFAULT_KEY_OPS[normalize_key_type(key_type)])
