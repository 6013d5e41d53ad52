# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate-based service principals against the REAL lab vault: the modules sign in with a client assertion signed
by the certificate's key (no client secret anywhere in their environment), and a certificate the application does not
know is refused with a one-line message that names the option and the fix."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from conftest import assert_one_line_failure, assert_says_how_to_fix, unique


def _cert_env(lab, path):
    """auth_source env with a certificate: AZURE_CLIENT_ID, AZURE_TENANT, AZURE_CLIENT_CERTIFICATE_PATH and no secret."""
    return {"AZURE_CLIENT_ID": lab.env["AZURE_CLIENT_ID"], "AZURE_TENANT": lab.env["AZURE_TENANT"],
            "AZURE_CLIENT_CERTIFICATE_PATH": path}


def _cert_options(lab, path, **extra):
    args = dict(lab.azure_args(), auth_source="auto", client_id=lab.env["AZURE_CLIENT_ID"], tenant=lab.env["AZURE_TENANT"],
                x509_certificate_path=path)
    args.update(extra)
    return args


def _unregistered_certificate(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not registered on the application")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    path = tmp_path / "unregistered.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
                     + cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _thumbprint(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read()).fingerprint(hashes.SHA1()).hex().upper()


def test_env_certificate_creates_kek_and_options_read_it(lab, run_module):
    cert = lab.env["LAB_CLIENT_CERTIFICATE"]
    name = unique("kek-cert")
    run = run_module("byok_kek_fetch", dict(lab.azure_args(), name=name, key_size=2048), env=_cert_env(lab, cert))
    assert not run.failed and run.changed and run.result["created"], str(run)
    assert name in lab.keys("premium")
    # the same service principal through azcollection's option names, with the thumbprint as the portal shows it
    info = run_module("keyvault_key_info", dict(_cert_options(lab, cert, thumbprint=_thumbprint(cert)), names=[name]), env={})
    assert not info.failed and not info.changed, str(info)
    assert name in str(info.result)


def test_encrypted_key_with_password_option_is_not_logged(lab, run_module, tmp_path):
    with open(lab.env["LAB_CLIENT_CERTIFICATE"], "rb") as handle:
        data = handle.read()
    key = serialization.load_pem_private_key(data, password=None)
    password = "pw-" + unique("cert")
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(password.encode()))
                          + x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.PEM))
    name = unique("kek-cert")
    run = run_module("byok_kek_fetch", dict(_cert_options(lab, str(encrypted), x509_certificate_password=password), name=name,
                                            key_size=2048), env={})
    assert not run.failed and run.result["created"], str(run)
    assert password not in run.output
    # without the password: refused before signing in, naming the option
    run = run_module("byok_kek_fetch", dict(_cert_options(lab, str(encrypted)), name=unique("kek-cert"), key_size=2048), env={})
    msg = assert_one_line_failure(run, "x509_certificate_path", "x509_certificate_password")
    assert_says_how_to_fix(msg)


def test_unregistered_certificate_from_env_refused(lab, run_module, tmp_path):
    bad = _unregistered_certificate(tmp_path)
    name = unique("kek-cert")
    run = run_module("byok_kek_fetch", dict(lab.azure_args(), name=name, key_size=2048), env=_cert_env(lab, bad))
    msg = assert_one_line_failure(run, "AZURE_CLIENT_CERTIFICATE_PATH", "not registered", lab.env["AZURE_CLIENT_ID"])
    assert_says_how_to_fix(msg)
    assert "client secret is wrong" not in msg
    assert name not in lab.keys("premium")


def test_unregistered_certificate_as_option_refused(lab, run_module, tmp_path):
    bad = _unregistered_certificate(tmp_path)
    run = run_module("keyvault_key_info", dict(_cert_options(lab, bad), names=["anything"]), env={})
    msg = assert_one_line_failure(run, "x509_certificate_path", "not registered")
    assert "upload" in msg, msg


def test_thumbprint_of_another_certificate_refused(lab, run_module, tmp_path):
    bad = _unregistered_certificate(tmp_path)
    run = run_module("keyvault_key_info", dict(_cert_options(lab, lab.env["LAB_CLIENT_CERTIFICATE"], thumbprint=_thumbprint(bad)),
                                               names=["anything"]), env={})
    msg = assert_one_line_failure(run, "thumbprint", _thumbprint(lab.env["LAB_CLIENT_CERTIFICATE"]))
    assert_says_how_to_fix(msg)
