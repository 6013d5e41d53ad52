# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab server over HTTPS, driven by the real azure-identity and azure-keyvault-keys SDKs."""

from __future__ import annotations

import json
import os
import time

import pytest

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lab import __main__ as cli
from lab.config import admin_headers
from lab.testing import free_base_port
from lab.wire import state_summary
from lab_blobs import blob, pkcs8, pkcs8_ec_p256_minimal, rsa_public_from_jwk, softhsm_pad
from lab_http import http_call, post_form, token_endpoint
from lab_sdk import credential, key_client

keys = pytest.importorskip("azure.keyvault.keys")
crypto = pytest.importorskip("azure.keyvault.keys.crypto")
core_exceptions = pytest.importorskip("azure.core.exceptions")

API = "7.5"


@pytest.fixture(scope="module")
def premium(lab):
    return key_client(lab)


@pytest.fixture(scope="module")
def kek(premium):
    """A KEK exactly as the collection creates it."""
    return premium.create_rsa_key("kek", size=3072, hardware_protected=True, key_operations=["import"])


def kek_public(kek_key):
    return rsa_public_from_jwk(kek_key.key.n, kek_key.key.e)


def raw_token(lab, vault, identity="lab-operator"):
    ident = lab.identity(identity)
    status, _headers, body = post_form(lab, token_endpoint(lab), {"grant_type": "client_credentials", "client_id": ident.client_id,
                                                                  "client_secret": ident.secret, "scope": lab.resource(vault) + "/.default"})
    assert status == 200, body
    return body["access_token"]


# -- the BYOK path with the real SDK -------------------------------------------------------------

def test_env(lab):
    env = lab.env()
    assert env["LAB_AUTHORITY"] == lab.authority and env["LAB_VAULT_MHSM"] == lab.urls["mhsm"]
    assert env["AZURE_TENANT"] == lab.tenant_id and env["AZURE_CLIENT_ID"] == lab.identity("lab-operator").client_id
    assert env["LAB_READER_SECRET"] == lab.identity("lab-reader").secret and os.path.isabs(env["LAB_CA"])


def test_create_kek(kek, lab):
    assert kek.key_type == "RSA-HSM"
    assert kek.key_operations == ["import"]
    assert kek.id.startswith(lab.urls["premium"] + "/keys/kek/") and len(kek.properties.version) == 32
    assert len(kek.key.n) == 384 and kek.properties.recovery_level == "Recoverable+Purgeable"
    assert kek.properties.managed is None


@pytest.fixture(scope="module")
def target_rsa(premium, kek, rsa3072):
    """An RSA-3072 target imported through the SDK exactly as the collection does it."""
    data = blob(kek_public(kek), kek.id, pkcs8(rsa3072))
    return premium.import_key("target-rsa", keys.JsonWebKey(kty="RSA-HSM", key_ops=["sign", "verify"], t=data),
                              hardware_protected=True, tags={"origin": "lab-test"})


def test_import_byok_get_and_versions(lab, premium, target_rsa, rsa3072):
    imported = target_rsa
    assert imported.key_type == "RSA-HSM" and imported.key_operations == ["sign", "verify"]
    assert int.from_bytes(imported.key.n, "big") == rsa3072.public_key().public_numbers().n
    fetched = premium.get_key("target-rsa")  # GET /keys/target-rsa/ (trailing slash)
    assert fetched.id == imported.id and fetched.properties.tags == {"origin": "lab-test"}
    assert premium.get_key("target-rsa", imported.properties.version).id == imported.id
    versions = list(premium.list_properties_of_key_versions("target-rsa"))
    assert [v.version for v in versions] == [imported.properties.version]
    state = state_summary(lab.state)["premium"]["keys"]["target-rsa"]["versions"]
    assert state[0]["origin"] == "byok" and state[0]["lab_trailing_zero_bytes"] == 0


def test_update_and_sign_with_sdk(lab, premium, target_rsa, rsa3072):
    updated = premium.update_key_properties("target-rsa", tags={"stage": "updated"}, enabled=True)  # PATCH /keys/target-rsa/
    assert updated.properties.tags == {"stage": "updated"} and updated.id == target_rsa.id
    digest = bytes(range(32))
    signer = crypto.CryptographyClient(updated.id, credential(lab), connection_verify=lab.ca_path)
    result = signer.sign(crypto.SignatureAlgorithm.rs256, digest)
    rsa3072.public_key().verify(result.signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def test_import_ec_softhsm_padding(lab, premium, kek, p256):
    data = blob(kek_public(kek), kek.id, softhsm_pad(pkcs8_ec_p256_minimal(p256)))
    imported = premium.import_key("target-ec", keys.JsonWebKey(kty="EC-HSM", crv="P-256", key_ops=["sign", "verify"], t=data),
                                  hardware_protected=True)
    assert imported.key.crv == "P-256"
    assert int.from_bytes(imported.key.x, "big") == p256.public_key().public_numbers().x
    assert lab.vault("premium").keys["target-ec"].current.lab_trailing_zero_bytes == 5
    with open(lab.config.log_path, encoding="utf-8") as handle:
        log = handle.read()
    assert "key=target-ec" in log and "trailing_zero_bytes=5" in log


def test_import_refused_is_400_bad_parameter(premium, kek, rsa3072):
    data = blob(kek_public(kek), kek.id.rsplit("/", 1)[0], pkcs8(rsa3072))  # unversioned kid
    with pytest.raises(core_exceptions.HttpResponseError) as info:
        premium.import_key("refused", keys.JsonWebKey(kty="RSA-HSM", key_ops=["sign"], t=data), hardware_protected=True)
    assert info.value.status_code == 400 and info.value.error.code == "BadParameter"
    assert "has no version" in info.value.error.message
    with pytest.raises(core_exceptions.ResourceNotFoundError):
        premium.get_key("refused")


def test_managed_hsm_oct_import_and_kcv(lab):
    client = key_client(lab, "mhsm")
    mhsm_kek = client.create_rsa_key("kek", size=2048, hardware_protected=True, key_operations=["import"])
    aes = os.urandom(32)
    data = blob(kek_public(mhsm_kek), mhsm_kek.id, aes)
    imported = client.import_key("aes", keys.JsonWebKey(kty="oct-HSM", key_ops=["encrypt", "decrypt"], t=data), hardware_protected=True)
    assert imported.key_type == "oct-HSM" and imported.key.k is None
    crypto_client = crypto.CryptographyClient(imported.id, credential(lab), connection_verify=lab.ca_path)
    result = crypto_client.encrypt(crypto.EncryptionAlgorithm.a256_cbc, bytes(16), iv=bytes(16))
    encryptor = Cipher(algorithms.AES(aes), modes.CBC(bytes(16))).encryptor()
    assert result.ciphertext == encryptor.update(bytes(16)) + encryptor.finalize()
    # the premium vault refuses oct-HSM
    with pytest.raises(core_exceptions.HttpResponseError) as info:
        key_client(lab).create_oct_key("aes", size=256, hardware_protected=True)
    assert info.value.status_code == 400 and "Managed HSM" in info.value.error.message


def test_kid_of_other_vault_refused(lab, kek, rsa3072):
    other = key_client(lab, "premium2")
    data = blob(kek_public(kek), kek.id, pkcs8(rsa3072))
    with pytest.raises(core_exceptions.HttpResponseError) as info:
        other.import_key("target", keys.JsonWebKey(kty="RSA-HSM", key_ops=["sign"], t=data), hardware_protected=True)
    assert info.value.status_code == 400 and "another vault" in info.value.error.message


# -- authentication and authorisation ------------------------------------------------------------

def test_wrong_secret(lab):
    client = key_client(lab, credential=credential(lab, secret="not-the-secret"))
    with pytest.raises(core_exceptions.ClientAuthenticationError, match="AADSTS7000215"):
        client.get_key("kek")


def test_unknown_client(lab):
    client = key_client(lab, credential=credential(lab, client_id="00000000-0000-0000-0000-000000000000"))
    with pytest.raises(core_exceptions.ClientAuthenticationError, match="AADSTS700016"):
        client.get_key("kek")


def test_reader_is_forbidden_to_create(lab, kek):
    reader = key_client(lab, identity="lab-reader")
    assert reader.get_key("kek").id == kek.id
    with pytest.raises(core_exceptions.HttpResponseError) as info:
        reader.create_rsa_key("nope", size=2048, hardware_protected=True, key_operations=["import"])
    assert info.value.status_code == 403
    assert info.value.error.code == "Forbidden"
    assert "does not have keys create permission" in info.value.error.message
    assert "appid=%s" % lab.identity("lab-reader").client_id in info.value.error.message
    assert info.value.error.innererror == {"code": "ForbiddenByPolicy"}


def test_missing_key(premium):
    with pytest.raises(core_exceptions.ResourceNotFoundError) as info:
        premium.get_key("does-not-exist")
    assert info.value.error.code == "KeyNotFound"


def test_soft_deleted_name_conflict_recover_purge(premium):
    premium.create_ec_key("gone", curve="P-256", hardware_protected=True)
    poller = premium.begin_delete_key("gone")
    deleted = poller.result()  # the DELETE's answer; the deletion itself finishes later, as in Azure
    assert deleted.recovery_id.endswith("/deletedkeys/gone") and deleted.scheduled_purge_date
    poller.wait()
    assert premium.get_deleted_key("gone").name == "gone"
    with pytest.raises(core_exceptions.ResourceExistsError) as info:
        premium.create_ec_key("gone", curve="P-256", hardware_protected=True)
    assert info.value.status_code == 409 and info.value.error.code == "Conflict"
    assert "deleted but recoverable state" in info.value.error.message
    assert premium.begin_recover_deleted_key("gone").result().name == "gone"
    premium.begin_delete_key("gone").wait()
    premium.purge_deleted_key("gone")
    with pytest.raises(core_exceptions.ResourceNotFoundError):
        premium.get_deleted_key("gone")
    time.sleep(0.3)  # the purge has finished (the lab's purge delay is 0.2 s): the name is free
    assert premium.create_ec_key("gone", curve="P-256", hardware_protected=True).name == "gone"


@pytest.mark.usefixtures("kek")
def test_challenge_and_raw_errors(lab):
    url = lab.urls["premium"]
    status, headers, body = http_call(lab, "PUT", url + "/keys/x?api-version=" + API, b"", {"Content-Length": "0"})
    assert status == 401 and body["error"]["code"] == "Unauthorized"
    assert headers["WWW-Authenticate"] == 'Bearer authorization="%s/%s", resource="https://0.0.1:%d"' % (
        lab.authority, lab.tenant_id, lab.port("premium"))
    status, headers, _body = http_call(lab, "GET", lab.urls["mhsm"] + "/keys?api-version=" + API)
    assert status == 401 and headers["WWW-Authenticate"].endswith('resource="https://0.0.1:%d"' % lab.port("mhsm"))
    token = raw_token(lab, "premium")
    auth = {"Authorization": "Bearer " + token}
    status, _headers, body = http_call(lab, "GET", url + "/keys/kek", headers=auth)
    assert status == 400 and body["error"]["code"] == "BadParameter" and "api-version" in body["error"]["message"]
    status, _headers, body = http_call(lab, "GET", url + "/keys/kek?api-version=1.0", headers=auth)
    assert status == 400 and body["error"]["code"] == "BadParameter" and "not recognized" in body["error"]["message"]
    status, _headers, body = http_call(lab, "GET", url + "/keys/kek/?api-version=" + API, headers=auth)
    assert status == 200 and body["key"]["kid"].startswith(url + "/keys/kek/")
    # a token for another vault's audience, or a tampered one: 401 with the challenge again
    other = raw_token(lab, "mhsm")
    for bad in (other, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")):
        status, headers, body = http_call(lab, "GET", url + "/keys/kek?api-version=" + API, headers={"Authorization": "Bearer " + bad})
        assert status == 401 and body["error"]["code"] == "Unauthorized" and "WWW-Authenticate" in headers
    # admin endpoints exist on the base port only
    status, _headers, _body = http_call(lab, "GET", url + "/lab/state?api-version=" + API, headers=auth)
    assert status == 404
    status, _headers, body = http_call(lab, "GET", lab.authority + "/lab/state", headers=admin_headers(lab.config))
    assert status == 200 and "premium" in body
    # invalid key name
    status, _headers, body = http_call(lab, "GET", url + "/keys/bad_name?api-version=" + API, headers=auth)
    assert status == 400 and body["error"]["code"] == "BadParameter"


def test_token_endpoint_errors(lab):
    ident = lab.identity("lab-operator")
    endpoint = token_endpoint(lab)
    form = {"grant_type": "client_credentials", "client_id": ident.client_id, "client_secret": "wrong",
            "scope": lab.resource("premium") + "/.default"}
    status, _h, body = post_form(lab, endpoint, form)
    assert status == 401 and body["error"] == "invalid_client" and body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided")
    form.update(client_id="11111111-1111-1111-1111-111111111111")
    status, _h, body = post_form(lab, endpoint, form)
    assert status == 400 and body["error"] == "unauthorized_client" and body["error_codes"] == [700016]
    form.update(client_id=ident.client_id, client_secret=ident.secret, scope="https://vault.azure.net/.default")
    status, _h, body = post_form(lab, endpoint, form)
    assert status == 400 and body["error"] == "invalid_resource"


@pytest.mark.usefixtures("kek")
def test_paging(lab, premium):
    for index in range(3):
        premium.create_ec_key("page-%d" % index, curve="P-256", hardware_protected=True)
    token = raw_token(lab, "premium")
    status, _h, body = http_call(lab, "GET", lab.urls["premium"] + "/keys?api-version=%s&maxresults=2" % API,
                                 headers={"Authorization": "Bearer " + token})
    assert status == 200 and len(body["value"]) == 2 and body["nextLink"].startswith(lab.urls["premium"] + "/keys?")
    names = [p.name for p in premium.list_properties_of_keys(max_page_size=2)]
    assert {"page-0", "page-1", "page-2", "kek"} <= set(names) and len(names) == len(set(names))


# -- faults ---------------------------------------------------------------------------------------

def test_reset_after_processing_duplicates_an_import(lab, kek, rsa2048):
    """THE pitfall: a PUT import whose answer is lost is retried by azure-core (PUT counts as
    idempotent) and Key Vault creates a second version.  The collection must check the vault
    before re-importing, or disable the retry for the import call."""
    client = key_client(lab)
    data = blob(kek_public(kek), kek.id, pkcs8(rsa2048))
    lab.faults.configure({"next": ["reset"], "method": "PUT"})
    imported = client.import_key("dup", keys.JsonWebKey(kty="RSA-HSM", key_ops=["sign"], t=data), hardware_protected=True)
    versions = list(client.list_properties_of_key_versions("dup"))
    assert len(versions) == 2, "the lost answer was retried: two versions"
    assert imported.properties.version in [v.version for v in versions]
    assert lab.faults.describe()["injected"]["reset"] == 1
    # without retries the caller sees an error although the import happened
    lab.faults.configure({"next": ["reset"], "method": "PUT"})
    with pytest.raises(core_exceptions.ServiceResponseError):
        client.import_key("dup", keys.JsonWebKey(kty="RSA-HSM", key_ops=["sign"], t=data), hardware_protected=True, retry_total=0)
    assert len(list(client.list_properties_of_key_versions("dup"))) == 3


@pytest.mark.usefixtures("kek")
def test_throttling_is_retried(lab, premium):
    lab.faults.configure({"next": ["429"], "method": "GET", "path": "/keys/kek"})
    started = time.time()
    assert premium.get_key("kek").name == "kek"
    assert time.time() - started >= 0.9  # Retry-After: 1
    assert lab.faults.describe()["injected"]["429"] == 1
    lab.faults.configure({"next": ["503"], "method": "GET"})
    status, headers, body = http_call(lab, "GET", lab.urls["premium"] + "/keys/kek?api-version=" + API,
                                      headers={"Authorization": "Bearer " + raw_token(lab, "premium")})
    assert status == 503 and body["error"]["code"] == "ServiceUnavailable" and headers["Retry-After"] == "1"
    lab.faults.configure({"next": ["slow"], "slow_seconds": 0.4})
    started = time.time()
    assert premium.get_key("kek").name == "kek"
    assert time.time() - started >= 0.4
    lab.faults.configure({"slow_seconds": 2.0})


def test_random_faults_are_seeded(lab):
    first = lab.faults.configure({"rate": 0.5, "kinds": ["500"], "seed": 7})
    assert first["rate"] == 0.5
    picks = [lab.faults.pick("GET", "/keys") for _index in range(20)]
    lab.faults.configure({"seed": 7})
    assert [lab.faults.pick("GET", "/keys") for _index in range(20)] == picks
    assert "500" in picks and None in picks
    # faults never hit the token endpoint or the admin endpoints
    lab.faults.configure({"rate": 1.0, "kinds": ["500"]})
    assert raw_token(lab, "premium")
    assert http_call(lab, "GET", lab.authority + "/lab/health", headers=admin_headers(lab.config))[0] == 200
    assert lab.faults.configure({"off": True})["rate"] == 0.0
    assert lab.faults.pick("GET", "/keys") is None


def test_restart_keeps_keys(tmp_path, lab_factory):
    first = lab_factory(state_dir=tmp_path)
    created = key_client(first.server).create_ec_key("persist", curve="P-384", hardware_protected=True)
    first.stop()
    second = lab_factory(state_dir=tmp_path)
    again = key_client(second.server).get_key("persist")
    second.stop()
    assert again.properties.version == created.properties.version and again.key.x == created.key.x


# -- the CLI --------------------------------------------------------------------------------------

def test_cli(tmp_path, capsys):
    """The CLI in-process (fast); ``start`` really detaches a ``python -m lab serve`` process."""
    state = str(tmp_path / "state")

    def run(*args, code=0):
        assert cli.main(list(args) + ["--state-dir", state]) == code
        return capsys.readouterr().out

    port = free_base_port()
    run("init", "--port", str(port))
    run("init")  # idempotent
    assert oct(os.stat(state).st_mode & 0o777) == "0o700"
    assert oct(os.stat(os.path.join(state, "identities.json")).st_mode & 0o777) == "0o600"
    values = json.loads(run("env", "--json"))
    assert values["LAB_AUTHORITY"] == "https://127.0.0.1:%d" % port
    assert values["LAB_VAULT_PREMIUM"] == "https://127.0.0.1:%d" % (port + 1)
    assert values["LAB_VAULT_MHSM"] == "https://127.0.0.1:%d" % (port + 2)
    assert values["LAB_VAULT_PREMIUM2"] == "https://127.0.0.1:%d" % (port + 3)
    assert values["LAB_CA"] == os.path.join(state, "ca.pem")
    assert set(values) >= {"AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_TENANT", "LAB_READER_CLIENT_ID", "LAB_READER_SECRET",
                           "LAB_ADMIN_SECRET"}
    assert oct(os.stat(os.path.join(state, "admin-secret")).st_mode & 0o777) == "0o600"
    assert "export AZURE_SECRET=" in run("env")
    run("status", code=3)
    try:
        assert "started" in run("start")
        assert "already running" in run("start")
        assert "running" in run("status")
        assert json.loads(run("faults", "--rate", "0.3", "--kinds", "429,reset", "--seed", "3"))["kinds"] == ["429", "reset"]
        assert json.loads(run("faults", "--off"))["rate"] == 0.0
        assert set(json.loads(run("dump"))) == {"premium", "mhsm", "premium2", "premium3"}
        assert "server running" in run("reset")
    finally:
        assert "stopped" in run("stop")
    run("status", code=3)
    assert "reset" in run("reset")
    with open(os.path.join(state, "server.log"), encoding="utf-8") as handle:
        log = handle.read()
    assert "GET /lab/health 200" in log and values["AZURE_SECRET"] not in log and values["LAB_ADMIN_SECRET"] not in log


def test_cli_reaches_a_lab_on_free_ports(tmp_path, capsys, lab_factory):
    """A lab in this process on free ports writes them to its state directory: the CLI steers that very server."""
    started = lab_factory(state_dir=tmp_path / "state")
    state = str(tmp_path / "state")
    assert cli.main(["env", "--json", "--state-dir", state]) == 0
    assert json.loads(capsys.readouterr().out) == started.server.env() == started.env
    assert cli.main(["faults", "--rate", "0.3", "--kinds", "429", "--seed", "1", "--state-dir", state]) == 0
    capsys.readouterr()
    assert started.server.faults.describe()["rate"] == 0.3 and started.faults_state()["kinds"] == ["429"]
    started.stop()


def test_labs_in_one_process_log_only_their_own_requests(lab_factory):
    first, second = lab_factory("first"), lab_factory("second")
    key_client(first.server).create_ec_key("only-in-first", curve="P-256", hardware_protected=True)
    key_client(second.server).create_ec_key("only-in-second", curve="P-256", hardware_protected=True)
    first.stop()
    second.stop()
    first_log = (first.state_dir / "server.log").read_text()
    second_log = (second.state_dir / "server.log").read_text()
    assert "/keys/only-in-first/create" in first_log and "/keys/only-in-second/" not in first_log
    assert "/keys/only-in-second/create" in second_log and "/keys/only-in-first/" not in second_log
