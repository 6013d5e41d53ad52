# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab CA and the server certificate (IP 127.0.0.1, DNS localhost)."""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_CA_DAYS = 3650
_SERVER_DAYS = 825


def _write(path: str, data: bytes, mode: int) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key) -> bytes:
    """The private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _lab_name(common_name: str) -> x509.Name:
    """A subject of the lab's own (the CA, a client certificate)."""
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "byok.keyvault lab"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key, days: int) -> x509.CertificateBuilder:
    """A certificate valid from five minutes ago (some clock skew) for ``days`` days, with a random serial number;
    the caller adds the extensions and signs."""
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _signature_usage(ca: bool) -> x509.KeyUsage:
    """Digital signatures only; a CA also signs certificates and CRLs."""
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                         key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)


def _create_ca(ca_path: str, ca_key_path: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _lab_name("byok.keyvault lab CA")
    cert = (
        _builder(name, name, key.public_key(), _CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_signature_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(ca_key_path, _key_pem(key), 0o600)
    _write(ca_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _create_server_cert(ca_path: str, ca_key_path: str, cert_path: str, key_path: str) -> None:
    with open(ca_key_path, "rb") as handle:
        ca_key = serialization.load_pem_private_key(handle.read(), password=None)
    with open(ca_path, "rb") as handle:
        ca_cert = x509.load_pem_x509_certificate(handle.read())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("unexpected CA key type")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_cert.subject, key.public_key(), _SERVER_DAYS)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_signature_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _server_cert_ok(ca_path: str, cert_path: str, key_path: str) -> bool:
    if not (os.path.exists(cert_path) and os.path.exists(key_path)):
        return False
    with open(cert_path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    with open(ca_path, "rb") as handle:
        ca_cert = x509.load_pem_x509_certificate(handle.read())
    if cert.issuer != ca_cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc > _now() + datetime.timedelta(days=1)


def ensure_pki(ca_path: str, ca_key_path: str, cert_path: str, key_path: str) -> bool:
    """Create the CA and the server certificate if missing or unusable; True if anything was created."""
    created = False
    if not (os.path.exists(ca_path) and os.path.exists(ca_key_path)):
        _create_ca(ca_path, ca_key_path)
        created = True
    if created or not _server_cert_ok(ca_path, cert_path, key_path):
        _create_server_cert(ca_path, ca_key_path, cert_path, key_path)
        created = True
    return created


def create_client_certificate(path: str, common_name: str, days: int = _SERVER_DAYS) -> str:
    """A self-signed RSA-2048 certificate for a service principal, written with its key as one PEM (0600), as
    azure-identity's certificate credential reads it; returns the public certificate (PEM) to register."""
    from cryptography.hazmat.primitives.asymmetric import rsa  # pylint: disable=import-outside-toplevel

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _lab_name(common_name)
    cert = (
        _builder(name, name, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    public = cert.public_bytes(serialization.Encoding.PEM)
    _write(path, _key_pem(key) + public, 0o600)
    return public.decode("ascii")
