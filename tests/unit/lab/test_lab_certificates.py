# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate credentials: the lab verifies client assertions (RFC 7523 with the x5t header) as Entra ID does.

The positive path is driven by the real azure-identity CertificateCredential; the refusals by hand-made assertions
(PyJWT, which MSAL itself uses) that differ from a good one in exactly one respect.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
import time
import uuid

import jwt
import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from lab import __main__ as cli
from lab import config
from lab_blobs import b64url
from lab_http import post_form, token_endpoint
from lab_sdk import certificate_credential, key_client

core_exceptions = pytest.importorskip("azure.core.exceptions")

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _load(path: str):
    with open(path, "rb") as handle:
        data = handle.read()
    return serialization.load_pem_private_key(data, password=None), x509.load_pem_x509_certificate(data)


def _other_certificate(tmp_path, days: int = 30):
    """A certificate + key (one PEM) that the lab does not know."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not registered")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    path = tmp_path / ("other-%s.pem" % uuid.uuid4().hex[:6])
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
                     + cert.public_bytes(serialization.Encoding.PEM))
    return str(path), key, cert


def _assertion(lab, key, cert, alg="RS256", headers=None, **claims):
    now = int(time.time())
    payload = {"aud": token_endpoint(lab), "iss": lab.identity("lab-operator").client_id, "sub": lab.identity("lab-operator").client_id,
               "exp": now + 600, "iat": now, "nbf": now, "jti": str(uuid.uuid4())}
    payload.update(claims)
    head = {"x5t": b64url(cert.fingerprint(hashes.SHA1()))} if alg == "RS256" else {"x5t#S256": b64url(cert.fingerprint(hashes.SHA256()))}
    head.update(headers or {})
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=alg, headers=head)


def _post(lab, assertion, client_id=None, v2=True, **extra):
    form = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER, "client_assertion": assertion}
    if client_id is not False:
        form["client_id"] = client_id or lab.identity("lab-operator").client_id
    form["scope" if v2 else "resource"] = lab.resource("premium") + ("/.default" if v2 else "")
    form.update(extra)
    return post_form(lab, token_endpoint(lab, v2), form)


def test_init_writes_the_certificate_and_env_names_it(lab):
    path = lab.config.client_certificate_path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    _key, cert = _load(path)
    registered = lab.identity("lab-operator").certificates
    assert [x509.load_pem_x509_certificate(p.encode()).fingerprint(hashes.SHA256()) for p in registered] == [
        cert.fingerprint(hashes.SHA256())]
    assert lab.env()["LAB_CLIENT_CERTIFICATE"] == path
    with open(os.path.join(lab.config.state_dir, config.CONFIG_FILE), encoding="utf-8") as handle:
        assert "PRIVATE KEY" not in handle.read()  # config.json holds only the public certificate


def test_init_keeps_the_certificate(tmp_path):
    first = config.init(str(tmp_path / "s"))
    before = open(first.client_certificate_path, "rb").read()
    again = config.init(str(tmp_path / "s"))
    assert open(again.client_certificate_path, "rb").read() == before
    assert again.identity("lab-operator").certificates == first.identity("lab-operator").certificates


def test_cli_env_prints_the_certificate(tmp_path, capsys):
    state = str(tmp_path / "cli")
    assert cli.main(["init", "--state-dir", state]) == 0
    capsys.readouterr()
    assert cli.main(["env", "--json", "--state-dir", state]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["LAB_CLIENT_CERTIFICATE"] == os.path.join(os.path.abspath(state), config.CLIENT_CERT_FILE)


def test_azure_identity_certificate_credential_works(lab):
    """The real SDK path: CertificateCredential (RS256 + x5t) gets a token the vault accepts."""
    client = key_client(lab, credential=certificate_credential(lab, lab.config.client_certificate_path))
    key = client.create_rsa_key("cert-kek", size=2048, hardware_protected=True, key_operations=["import"])
    assert key.key_operations == ["import"]


def test_unregistered_certificate_refused_with_aadsts700027(lab, tmp_path):
    path, _key, cert = _other_certificate(tmp_path)
    credential = certificate_credential(lab, path)
    with pytest.raises(core_exceptions.ClientAuthenticationError) as info:
        credential.get_token(lab.resource("premium") + "/.default")
    assert "AADSTS700027" in str(info.value)
    assert cert.fingerprint(hashes.SHA1()).hex().upper() in str(info.value)  # Entra names the thumbprint the client used


def test_good_assertion_rs256_and_ps256(lab):
    key, cert = _load(lab.config.client_certificate_path)
    for alg in ("RS256", "PS256"):
        status, _h, body = _post(lab, _assertion(lab, key, cert, alg=alg))
        assert status == 200 and body["token_type"] == "Bearer", body
    # v1 endpoint: aud is the v1 token endpoint
    status, _h, body = _post(lab, _assertion(lab, key, cert, aud=token_endpoint(lab, v2=False)), v2=False)
    assert status == 200, body
    # client_id may be left out of the form (RFC 7523): iss names the client
    status, _h, body = _post(lab, _assertion(lab, key, cert), client_id=False)
    assert status == 200, body


@pytest.mark.parametrize("case, code", [
    ("signed by another key, registered thumbprint", 700027),
    ("unregistered certificate", 700027),
    ("no x5t header", 700027),
    ("wrong audience", 700023),
    ("audience of the v1 endpoint at v2", 700023),
    ("expired", 700024),
    ("not yet valid", 700024),
    ("iss is another client", 700021),
    ("sub is another client", 700021),
    ("HS256", 5002730),
])
def test_bad_assertions_refused(lab, tmp_path, case, code):
    key, cert = _load(lab.config.client_certificate_path)
    _path, other_key, other_cert = _other_certificate(tmp_path)
    now = int(time.time())
    assertion = {
        "signed by another key, registered thumbprint": lambda: _assertion(lab, other_key, cert),
        "unregistered certificate": lambda: _assertion(lab, other_key, other_cert),
        "no x5t header": lambda: jwt.encode({"aud": token_endpoint(lab), "iss": lab.identity("lab-operator").client_id,
                                             "sub": lab.identity("lab-operator").client_id, "exp": now + 600}, key, algorithm="RS256"),
        "wrong audience": lambda: _assertion(lab, key, cert, aud="https://login.microsoftonline.com/%s/oauth2/v2.0/token" % lab.tenant_id),
        "audience of the v1 endpoint at v2": lambda: _assertion(lab, key, cert, aud=token_endpoint(lab, v2=False)),
        "expired": lambda: _assertion(lab, key, cert, exp=now - 3600, iat=now - 4200, nbf=now - 4200),
        "not yet valid": lambda: _assertion(lab, key, cert, nbf=now + 3600, exp=now + 4200),
        "iss is another client": lambda: _assertion(lab, key, cert, iss=lab.identity("lab-reader").client_id),
        "sub is another client": lambda: _assertion(lab, key, cert, sub=lab.identity("lab-reader").client_id),
        "HS256": lambda: jwt.encode({"aud": token_endpoint(lab), "iss": lab.identity("lab-operator").client_id,
                                     "sub": lab.identity("lab-operator").client_id, "exp": now + 600}, "k" * 32, algorithm="HS256",
                                    headers={"x5t": b64url(cert.fingerprint(hashes.SHA1()))}),
    }[case]()
    status, _h, body = _post(lab, assertion)
    assert status in (400, 401) and body["error_codes"] == [code], (case, body)
    assert body["error"] == "invalid_client"


def test_assertion_and_secret_together_refused(lab):
    key, cert = _load(lab.config.client_certificate_path)
    status, _h, body = _post(lab, _assertion(lab, key, cert), client_secret=lab.identity("lab-operator").secret)
    assert status == 400 and body["error"] == "invalid_request", body


def test_wrong_assertion_type_refused(lab):
    key, cert = _load(lab.config.client_certificate_path)
    status, _h, body = _post(lab, _assertion(lab, key, cert), client_assertion_type="urn:example:saml")
    assert status == 400 and body["error"] == "invalid_request", body


def test_a_certificate_of_the_operator_is_not_one_of_the_reader(lab):
    """The registry is per application: the operator's certificate does not authenticate the reader."""
    key, cert = _load(lab.config.client_certificate_path)
    reader = lab.identity("lab-reader").client_id
    status, _h, body = _post(lab, _assertion(lab, key, cert, iss=reader, sub=reader), client_id=reader)
    assert status == 401 and body["error_codes"] == [700027], body
