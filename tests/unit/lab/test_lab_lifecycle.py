# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The key lifecycle in the lab as Key Vault does it: update in place, disabled keys, soft delete and recovery,
Secure Key Release (exportable keys, release policies) and aging keys (clock offset, version timestamps).

The rules without HTTP first, then through the server with the real azure-keyvault-keys SDK where its behaviour
matters."""

from __future__ import annotations

import json

import pytest

from lab import errors, models, store, wire
from lab.config import admin_headers, load as load_config
from lab_blobs import b64url, blob, pkcs8, rsa_public_from_jwk
from lab_clock import Clock
from lab_http import http_call
from lab_sdk import key_client

PREMIUM_URL = "https://127.0.0.1:18444"
MHSM_URL = "https://127.0.0.1:18445"
YEAR = 365 * 86400
DISABLED_GET = "Operation get is not allowed on a disabled key."

POLICY = {
    "version": "1.0.0",
    "anyOf": [{"authority": "https://sharedeus.eus.attest.azure.net",
               "allOf": [{"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"},
                         {"claim": "x-ms-isolation-tee.x-ms-compliance-status", "equals": "azure-compliant-cvm"}]}],
}


def policy_body(doc=None, immutable=False) -> dict:
    return {"contentType": "application/json; charset=utf-8", "data": b64url(json.dumps(doc or POLICY).encode("utf-8")),
            "immutable": immutable}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def premium(clock):
    vault = models.Vault("premium", models.PREMIUM, PREMIUM_URL, clock=clock)
    vault.create_key("kek", {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["import"]})
    return vault


@pytest.fixture
def mhsm(clock):
    vault = models.Vault("mhsm", models.MANAGED_HSM, MHSM_URL, clock=clock)
    vault.create_key("kek", {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["import"]})
    return vault


def byok_body(vault, material, kty="RSA-HSM", key_ops=None, **extra) -> dict:
    kek = vault.keys["kek"].current
    data = blob(kek.material.public_key(), vault.kid("kek", kek.version), pkcs8(material))
    body = {"key": {"kty": kty, "key_ops": key_ops or ["sign", "verify"], "key_hsm": b64url(data)}}
    body.update(extra)
    return body


# -- update in place ------------------------------------------------------------------------------

def test_update_in_place_current_and_version(premium, clock):
    first = premium.create_key("k", {"kty": "EC-HSM", "tags": {"a": "1"}})
    second = premium.create_key("k", {"kty": "EC-HSM"})
    clock.now += 100
    key, item = premium.update_key("k", None, {"attributes": {"exp": int(clock.now) + 10, "nbf": int(clock.now) - 10},
                                               "tags": {"b": "2"}, "key_ops": ["sign"]})
    assert item is second and len(key.versions) == 2 and item.updated == int(clock.now) and item.created == int(clock.now) - 100
    assert (item.key_ops, item.tags, item.exp) == (["sign"], {"b": "2"}, int(clock.now) + 10)
    _key, old = premium.update_key("k", first.version, {"attributes": {"enabled": False}})
    assert old is first and not first.enabled and second.enabled and len(key.versions) == 2
    bundle = wire.key_bundle(premium, key, second)
    assert bundle["attributes"]["exportable"] is False and "release_policy" not in bundle
    with pytest.raises(errors.KeyNotFound):
        premium.update_key("nothing", None, {"tags": {}})
    with pytest.raises(errors.KeyNotFound):
        premium.update_key("k", "0" * 32, {"tags": {}})


# -- disabled keys --------------------------------------------------------------------------------

def test_disabled_key_refuses_get_and_crypto_but_is_listed_and_updatable(premium):
    old = premium.create_key("d", {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["sign", "encrypt"]})
    current = premium.create_key("d", {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["sign", "encrypt"]})
    premium.update_key("d", None, {"attributes": {"enabled": False}})
    for version in (None, current.version):
        with pytest.raises(errors.Forbidden) as info:
            premium.get_key("d", version)
        assert info.value.status == 403
        assert info.value.body() == {"error": {"code": "Forbidden", "message": DISABLED_GET, "innererror": {"code": "KeyDisabled"}}}
    assert premium.get_key("d", old.version)[1] is old  # only the disabled version is refused
    for operation, params in (("sign", {"alg": "RS256", "value": b64url(bytes(32))}), ("encrypt", {"alg": "RSA-OAEP", "value": b64url(b"x")})):
        with pytest.raises(errors.Forbidden) as info:
            getattr(premium, operation)("d", current.version, params)
        assert info.value.body()["error"] == {"code": "Forbidden", "message": "Operation %s is not allowed on a disabled key." % operation,
                                              "innererror": {"code": "KeyDisabled"}}
    listed = [wire.key_item(premium, premium.key_of("d"), v) for v in premium.list_versions("d")]
    assert [entry["attributes"]["enabled"] for entry in listed] == [True, False]
    assert [k.name for k in premium.list_keys()] == ["d", "kek"]
    premium.update_key("d", current.version, {"tags": {"still": "updatable"}})
    premium.update_key("d", None, {"attributes": {"enabled": True}})
    assert premium.get_key("d")[1].tags == {"still": "updatable"}


# -- soft delete and recovery ---------------------------------------------------------------------

def test_recover_brings_back_every_version_as_it_was(premium):
    first = premium.create_key("r", {"kty": "EC-HSM"})
    second = premium.create_key("r", {"kty": "EC-HSM"})
    premium.update_key("r", None, {"attributes": {"enabled": False}})
    premium.delete_key("r")
    assert wire.deleted_key_bundle(premium, premium.get_deleted_key("r"))["attributes"]["enabled"] is False
    assert [k.name for k in premium.list_deleted_keys()] == ["r"]
    with pytest.raises(errors.Conflict) as info:
        premium.create_key("r", {"kty": "EC-HSM"})
    assert info.value.status == 409 and info.value.innererror == "ObjectIsDeletedButRecoverable"
    key = premium.recover_deleted_key("r")
    assert [v.version for v in premium.list_versions("r")] == [first.version, second.version] and key.current is second
    with pytest.raises(errors.Forbidden):  # still disabled after recovery
        premium.get_key("r")


# -- Secure Key Release ---------------------------------------------------------------------------

def test_exportable_create_needs_a_policy_and_returns_it(premium, mhsm):
    with pytest.raises(errors.BadParameter) as info:
        premium.create_key("x", {"kty": "RSA-HSM", "attributes": {"exportable": True}})
    assert info.value.message == models.SKR_NEEDS_POLICY and info.value.status == 400
    with pytest.raises(errors.BadParameter) as info:
        premium.create_key("x", {"kty": "RSA-HSM", "release_policy": policy_body()})
    assert info.value.message == "AKV.SKR.1005: Non-exportable keys must not have release policy"
    with pytest.raises(errors.BadParameter, match="cannot be exportable"):
        premium.create_key("x", {"kty": "RSA", "attributes": {"exportable": True}, "release_policy": policy_body()})
    assert "x" not in premium.keys
    made = premium.create_key("x", {"kty": "EC-HSM", "attributes": {"exportable": True}, "release_policy": policy_body(),
                                    "key_ops": ["sign", "export"]})
    bundle = wire.key_bundle(premium, premium.key_of("x"), made)
    assert bundle["attributes"]["exportable"] is True and bundle["key"]["key_ops"] == ["sign", "export"]
    assert bundle["release_policy"] == {"contentType": "application/json; charset=utf-8", "immutable": False,
                                        "data": policy_body()["data"]}
    assert json.loads(made.release_policy.data) == POLICY
    with pytest.raises(errors.BadParameter, match="export"):
        premium.create_key("y", {"kty": "EC-HSM", "key_ops": ["sign", "export"]})
    assert mhsm.create_key("o", {"kty": "oct-HSM", "attributes": {"exportable": True}, "release_policy": policy_body()}).exportable


def test_exportable_import(premium, rsa2048):
    with pytest.raises(errors.BadParameter, match="Exportable keys must have release policy"):
        premium.import_key("imp", byok_body(premium, rsa2048, attributes={"exportable": True}))
    with pytest.raises(errors.BadParameter, match="AKV.SKR.1005"):
        premium.import_key("imp", byok_body(premium, rsa2048, release_policy=policy_body()))
    item = premium.import_key("imp", byok_body(premium, rsa2048, attributes={"exportable": True}, release_policy=policy_body(immutable=True)))
    assert item.exportable and item.release_policy.immutable and item.origin == "byok"


def test_update_cannot_change_exportable_or_an_immutable_policy(premium):
    premium.create_key("m", {"kty": "RSA-HSM", "attributes": {"exportable": True}, "release_policy": policy_body()})
    premium.create_key("plain", {"kty": "RSA-HSM"})
    with pytest.raises(errors.BadParameter) as info:
        premium.update_key("m", None, {"attributes": {"exportable": False}})
    assert info.value.message == "AKV.SKR.1014: Cannot modify the exportable state of a key"
    with pytest.raises(errors.BadParameter, match="AKV.SKR.1014"):
        premium.update_key("plain", None, {"attributes": {"exportable": True}})
    with pytest.raises(errors.BadParameter, match="AKV.SKR.1005"):
        premium.update_key("plain", None, {"release_policy": policy_body()})
    other = dict(POLICY, anyOf=[dict(POLICY["anyOf"][0], authority="https://other.attest.azure.net")])
    _key, item = premium.update_key("m", None, {"release_policy": policy_body(other)})  # mutable: replaced
    assert json.loads(item.release_policy.data) == other
    premium.update_key("m", None, {"release_policy": policy_body(other, immutable=True)})  # and made immutable
    with pytest.raises(errors.BadParameter, match="immutable"):
        premium.update_key("m", None, {"release_policy": policy_body(POLICY, immutable=True)})
    with pytest.raises(errors.BadParameter, match="immutable"):
        premium.update_key("m", None, {"release_policy": policy_body(other, immutable=False)})
    premium.update_key("m", None, {"release_policy": policy_body(other, immutable=True), "tags": {"same": "policy"}})
    respaced = {"contentType": "application/json; charset=utf-8", "data": b64url(json.dumps(other, indent=2).encode("utf-8")),
                "immutable": True}
    premium.update_key("m", None, {"release_policy": respaced})  # the same policy written otherwise is no change
    assert len(premium.keys["m"].versions) == 1


@pytest.mark.parametrize("doc, match", [
    (dict(POLICY, version="2.0.0"), "version"),
    ({"version": "1.0.0"}, "anyOf or allOf"),
    ({"version": "1.0.0", "anyOf": [{"allOf": [{"claim": "c", "equals": "v"}]}]}, "authority"),
    ({"version": "1.0.0", "anyOf": [{"authority": "https://a"}]}, "allOf or anyOf"),
    ({"version": "1.0.0", "allOf": [{"authority": "https://a", "anyOf": [{"claim": "c"}]}]}, "equals"),
    ({"version": "1.0.0", "allOf": [{"authority": "https://a", "anyOf": [{"equals": "v"}]}]}, "claim"),
    ({"version": "1.0.0", "allOf": [{"authority": "https://a", "anyOf": []}]}, "non-empty"),
])
def test_release_policy_shape(premium, doc, match):
    with pytest.raises(errors.BadParameter, match=match):
        premium.create_key("p", {"kty": "RSA-HSM", "attributes": {"exportable": True}, "release_policy": policy_body(doc)})
    with pytest.raises(errors.BadParameter, match="content type"):
        premium.create_key("p", {"kty": "RSA-HSM", "attributes": {"exportable": True},
                                 "release_policy": dict(policy_body(), contentType="text/plain")})
    assert "p" not in premium.keys


def test_policy_and_exportable_persist(tmp_path):
    vault = store.LabState(str(tmp_path)).add_vault("premium", models.PREMIUM, PREMIUM_URL)
    vault.create_key("kept", {"kty": "EC-HSM", "attributes": {"exportable": True}, "release_policy": policy_body(immutable=True)})
    again = store.LabState(str(tmp_path)).add_vault("premium", models.PREMIUM, PREMIUM_URL)
    item = again.keys["kept"].current
    assert item.exportable and item.release_policy.immutable and json.loads(item.release_policy.data) == POLICY


# -- aging keys -----------------------------------------------------------------------------------

def test_clock_offset_ages_keys_and_moves_nbf_exp(clock):
    state = store.LabState(None, clock=clock)
    vault = state.add_vault("premium", models.PREMIUM, PREMIUM_URL)
    made = vault.create_key("young", {"kty": "EC-HSM", "attributes": {"nbf": int(clock.now) + YEAR // 2}})
    with pytest.raises(errors.Forbidden, match="not yet valid"):
        vault.sign("young", made.version, {"alg": "ES256", "value": b64url(bytes(32))})
    state.set_clock_offset(YEAR)
    vault.sign("young", made.version, {"alg": "ES256", "value": b64url(bytes(32))})  # a year later: valid
    later = vault.create_key("young", {"kty": "EC-HSM", "attributes": {"exp": int(clock.now) + YEAR // 2}})
    assert later.created - made.created == YEAR
    with pytest.raises(errors.Forbidden, match="expired"):
        vault.sign("young", later.version, {"alg": "ES256", "value": b64url(bytes(32))})
    with pytest.raises(errors.BadParameter):
        state.set_clock_offset("a year")


def test_clock_offset_moves_dates_not_the_background_delays(clock):
    state = store.LabState(None, clock=clock)
    vault = state.add_vault("premium", models.PREMIUM, PREMIUM_URL, options=models.VaultOptions(delete_delay=2.0))
    vault.create_key("gone", {"kty": "EC-HSM"})
    state.set_clock_offset(YEAR)
    deleted = vault.delete_key("gone")
    assert deleted.deleted_date == int(clock.now) + YEAR
    state.set_clock_offset(0)  # the clock set back: the deletion still finishes after delete_delay real seconds
    clock.now += 1
    assert vault.list_deleted_keys() == []
    clock.now += 1.5
    assert [k.name for k in vault.list_deleted_keys()] == ["gone"]


def test_set_version_times(premium):
    made = premium.create_key("aged", {"kty": "EC-HSM"})
    _key, item = premium.set_version_times("aged", made.version, {"created": made.created - YEAR})
    assert item.created == made.created and item.created + YEAR == item.updated
    with pytest.raises(errors.BadParameter):
        premium.set_version_times("aged", made.version, {"enabled": False})
    with pytest.raises(errors.KeyNotFound):
        premium.set_version_times("aged", "0" * 32, {"created": 1})


# -- through the server, with the real SDK --------------------------------------------------------

keys = pytest.importorskip("azure.keyvault.keys")
core_exceptions = pytest.importorskip("azure.core.exceptions")


@pytest.fixture(scope="module")
def client(lab):
    return key_client(lab)


def test_sdk_update_disable_get_and_versions(client):
    first = client.create_ec_key("sdk-d", curve="P-256", hardware_protected=True)
    second = client.create_ec_key("sdk-d", curve="P-256", hardware_protected=True)
    updated = client.update_key_properties("sdk-d", enabled=False, tags={"state": "retired"})  # PATCH /keys/sdk-d/
    assert updated.id == second.id and updated.properties.enabled is False and updated.properties.tags == {"state": "retired"}
    for version in (None, second.properties.version):
        with pytest.raises(core_exceptions.HttpResponseError) as info:
            client.get_key("sdk-d", version)
        assert info.value.status_code == 403 and info.value.error.code == "Forbidden"
        assert info.value.error.message == DISABLED_GET and info.value.error.innererror == {"code": "KeyDisabled"}
    listed = {v.version: v.enabled for v in client.list_properties_of_key_versions("sdk-d")}
    assert listed == {first.properties.version: True, second.properties.version: False}
    again = client.update_key_properties("sdk-d", second.properties.version, enabled=True)
    assert again.properties.enabled is True and client.get_key("sdk-d").id == second.id
    assert len(list(client.list_properties_of_key_versions("sdk-d"))) == 2
    with pytest.raises(core_exceptions.ResourceNotFoundError) as info:
        client.update_key_properties("sdk-nothing", enabled=True)
    assert info.value.error.code == "KeyNotFound"


def test_sdk_recover_deleted_key_with_versions(client):
    first = client.create_rsa_key("sdk-r", size=2048, hardware_protected=True)
    second = client.create_rsa_key("sdk-r", size=2048, hardware_protected=True)
    client.update_key_properties("sdk-r", first.properties.version, enabled=False)
    client.begin_delete_key("sdk-r").wait()
    assert "sdk-r" in [k.name for k in client.list_deleted_keys()]
    assert client.get_deleted_key("sdk-r").properties.version == second.properties.version
    recovered = client.begin_recover_deleted_key("sdk-r").result()
    assert recovered.id == second.id
    listed = {v.version: v.enabled for v in client.list_properties_of_key_versions("sdk-r")}
    assert listed == {first.properties.version: False, second.properties.version: True}
    with pytest.raises(core_exceptions.HttpResponseError) as info:
        client.get_key("sdk-r", first.properties.version)
    assert info.value.status_code == 403
    # a key whose current version is disabled: the SDK's poller ends on the 403 of its GET, as against Azure
    client.update_key_properties("sdk-r", enabled=False)
    client.begin_delete_key("sdk-r").wait()
    assert client.begin_recover_deleted_key("sdk-r").result().properties.enabled is False
    assert {v.version: v.enabled for v in client.list_properties_of_key_versions("sdk-r")} == {
        first.properties.version: False, second.properties.version: False}


def test_sdk_exportable_import_and_policy_update(client, rsa2048):
    kek = client.create_rsa_key("sdk-kek", size=2048, hardware_protected=True, key_operations=["import"])
    data = blob(rsa_public_from_jwk(kek.key.n, kek.key.e), kek.id, pkcs8(rsa2048))
    jwk = keys.JsonWebKey(kty="RSA-HSM", key_ops=["sign", "verify"], t=data)
    policy = keys.KeyReleasePolicy(json.dumps(POLICY).encode("utf-8"))
    with pytest.raises(core_exceptions.HttpResponseError) as info:
        client.import_key("sdk-x", jwk, hardware_protected=True, exportable=True)
    assert info.value.status_code == 400 and info.value.error.code == "BadParameter"
    assert info.value.error.message == "Exportable keys must have release policy"
    imported = client.import_key("sdk-x", jwk, hardware_protected=True, exportable=True, release_policy=policy)
    assert imported.properties.exportable is True and json.loads(imported.properties.release_policy.encoded_policy) == POLICY
    assert imported.properties.release_policy.immutable is False
    assert imported.properties.release_policy.content_type == "application/json; charset=utf-8"
    other = dict(POLICY, anyOf=[dict(POLICY["anyOf"][0], authority="https://other.attest.azure.net")])
    locked = client.update_key_properties("sdk-x", release_policy=keys.KeyReleasePolicy(json.dumps(other).encode("utf-8"), immutable=True))
    assert locked.properties.release_policy.immutable is True and locked.id == imported.id
    with pytest.raises(core_exceptions.HttpResponseError) as info:
        client.update_key_properties("sdk-x", release_policy=policy)
    assert info.value.status_code == 400 and "immutable" in info.value.error.message
    with pytest.raises(core_exceptions.HttpResponseError) as info:
        client.create_rsa_key("sdk-plain", size=2048, hardware_protected=True, release_policy=policy)
    assert info.value.error.message == "AKV.SKR.1005: Non-exportable keys must not have release policy"


def test_clock_offset_and_version_times_through_admin_and_cli(module_lab, client):
    before = client.create_ec_key("sdk-age", curve="P-256", hardware_protected=True)
    try:
        assert module_lab.settings({"clock_offset": YEAR})["clock_offset"] == YEAR
        aged = client.create_ec_key("sdk-age", curve="P-256", hardware_protected=True)
        gap = (aged.properties.created_on - before.properties.created_on).total_seconds()
        assert YEAR <= gap < YEAR + 60
        assert json.loads(module_lab.cli("settings", "--clock-offset", "0").stdout)["clock_offset"] == 0
        assert module_lab.settings()["clock_offset"] == 0
    finally:
        module_lab.settings({"clock_offset": 0})
    server = module_lab.server
    cfg = load_config(str(module_lab.state_dir))
    url = "%s/lab/vaults/premium/keys/sdk-age/%s" % (server.authority, before.properties.version)
    status, _headers, body = http_call(server, "POST", url, json.dumps({"created": 1_600_000_000}),
                                       dict(admin_headers(cfg), **{"Content-Type": "application/json"}))
    assert status == 200 and body["created"] == 1_600_000_000
    assert client.get_key("sdk-age", before.properties.version).properties.created_on.timestamp() == 1_600_000_000
    status, _headers, body = http_call(server, "POST", url, json.dumps({"created": "old"}), admin_headers(cfg))
    assert status == 400 and body["error"]["code"] == "BadParameter"
