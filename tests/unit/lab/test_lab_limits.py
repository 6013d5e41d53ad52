# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure's semantics the lab models: case-insensitive names, asynchronous delete and purge, purge protection and
the service limits (weighted transactions in 10-second windows), on a clock the tests move."""

from __future__ import annotations

import contextlib

import pytest

from lab import errors, limits, models, store, wire
from lab_blobs import b64url, blob, pkcs8
from lab_clock import Clock
from lab_sdk import key_client

core_exceptions = pytest.importorskip("azure.core.exceptions")

URL = "https://127.0.0.1:18444"


def vault(kind=models.PREMIUM, clock=None, **options):
    return models.Vault("v", kind, URL, clock=clock or Clock(), options=models.VaultOptions(**options))


def import_body(data: bytes, kty="EC-HSM", crv="P-256") -> dict:
    return {"key": {"kty": kty, "crv": crv, "key_ops": ["sign", "verify"], "key_hsm": b64url(data)}}


# -- names: compared case-insensitively, kept in the case of the first creation ----------------------

def test_names_are_case_insensitive_everywhere(p256):
    v = vault()
    v.create_key("Byok-KEK", {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["import"]})
    v.create_key("Demo-RSA", {"kty": "RSA-HSM", "key_size": 2048})
    second = v.create_key("demo-rsa", {"kty": "RSA-HSM", "key_size": 2048})
    assert [k.name for k in v.list_keys()] == ["Byok-KEK", "Demo-RSA"]
    key, current = v.get_key("DEMO-rsa")
    assert key.name == "Demo-RSA" and current.version == second.version and len(v.list_versions("demo-RSA")) == 2
    assert wire.key_bundle(v, key, current)["key"]["kid"] == URL + "/keys/Demo-RSA/" + second.version

    # an import under another case (and a KEK kid in another case) is a new version of the same key
    _kek, kek_version = v.get_key("byok-kek")
    kid = "%s/keys/BYOK-kek/%s" % (URL, kek_version.version)
    v.import_key("EC-Target", import_body(blob(kek_version.material.public_key(), kid, pkcs8(p256))))
    v.import_key("ec-target", import_body(blob(kek_version.material.public_key(), kid, pkcs8(p256))))
    assert len(v.list_versions("EC-TARGET")) == 2 and sorted(wire.vault_summary(v)["keys"]) == ["Byok-KEK", "Demo-RSA", "EC-Target"]

    # delete, deleted keys, recover and purge find the key in any case
    v.delete_key("DEMO-RSA")
    with pytest.raises(errors.KeyNotFound):
        v.get_key("Demo-RSA")
    assert v.get_deleted_key("demo-rsa").name == "Demo-RSA"
    assert [k.name for k in v.list_deleted_keys()] == ["Demo-RSA"]
    assert wire.deleted_key_bundle(v, v.get_deleted_key("DEMO-RSA"))["recoveryId"] == URL + "/deletedkeys/Demo-RSA"
    with pytest.raises(errors.Conflict) as info:
        v.create_key("demo-rsa", {"kty": "RSA-HSM", "key_size": 2048})
    assert "Key Demo-RSA is currently in a deleted but recoverable state" in info.value.message
    assert info.value.body()["error"]["innererror"] == {"code": "ObjectIsDeletedButRecoverable"}
    assert v.recover_deleted_key("demo-RSA").name == "Demo-RSA" and len(v.list_versions("demo-rsa")) == 2
    v.delete_key("demo-rsa")
    v.purge_deleted_key("DEMO-rsa")
    assert "demo-rsa" not in v.keys and "Demo-RSA" not in wire.vault_summary(v)["keys"]
    assert v.create_key("DEMO-RSA", {"kty": "EC-HSM"}) and v.get_key("demo-rsa")[0].name == "DEMO-RSA"


def test_state_file_keeps_the_case_and_one_key_per_name(tmp_path):
    path = str(tmp_path / "v.json")
    first = models.Vault("v", models.PREMIUM, URL, store=store.VaultFile(path))
    first.create_key("Demo-EC", {"kty": "EC-HSM"})
    first.create_key("DEMO-ec", {"kty": "EC-HSM"})
    again = models.Vault("v", models.PREMIUM, URL, store=store.VaultFile(path))
    assert [k.name for k in again.list_keys()] == ["Demo-EC"] and len(again.list_versions("demo-ec")) == 2


# -- delete and purge take time ---------------------------------------------------------------------

def test_delete_and_purge_are_asynchronous():
    clock = Clock()
    v = vault(clock=clock, delete_delay=2.0, purge_delay=3.0)
    v.create_key("slow", {"kty": "EC-HSM"})
    v.delete_key("slow")
    # the deletion runs: not a key any more, not yet a deleted key, and the name is taken
    with pytest.raises(errors.KeyNotFound):
        v.get_key("slow")
    with pytest.raises(errors.KeyNotFound, match="Deleted Key not found"):
        v.get_deleted_key("slow")
    assert v.list_deleted_keys() == []
    for call in (lambda: v.create_key("slow", {"kty": "EC-HSM"}), lambda: v.purge_deleted_key("slow"),
                 lambda: v.recover_deleted_key("slow")):
        with pytest.raises(errors.Conflict) as info:
            call()
        assert info.value.message == models.BEING_DELETED
        assert info.value.body()["error"]["innererror"] == {"code": "ObjectIsBeingDeleted"}
    clock.advance(2.0)
    assert v.get_deleted_key("slow").name == "slow"
    v.purge_deleted_key("slow")
    with pytest.raises(errors.KeyNotFound):
        v.get_deleted_key("slow")
    with pytest.raises(errors.Conflict, match="currently being deleted"):
        v.create_key("SLOW", {"kty": "EC-HSM"})
    clock.advance(3.0)
    assert v.create_key("slow", {"kty": "EC-HSM"})


def test_purge_protection_refuses_purge_until_retention_ends():
    clock = Clock()
    v = vault(clock=clock, purge_protection=True, retention_days=7)
    v.create_key("kept", {"kty": "EC-HSM"})
    key = v.delete_key("kept")
    assert wire.attributes(v, key.current)["recoveryLevel"] == "CustomizedRecoverable"
    assert key.scheduled_purge_date - key.deleted_date == 7 * 86400
    with pytest.raises(errors.Forbidden) as info:
        v.purge_deleted_key("kept")
    assert info.value.status == 403 and info.value.code == "Forbidden" and info.value.message == models.PURGE_PROTECTED
    assert v.get_deleted_key("kept").deleted
    with pytest.raises(errors.Conflict):
        v.create_key("kept", {"kty": "EC-HSM"})
    clock.advance(7 * 86400)
    with pytest.raises(errors.KeyNotFound):
        v.get_deleted_key("kept")
    assert v.create_key("kept", {"kty": "EC-HSM"})


def test_managed_hsm_is_always_purge_protected():
    v = vault(kind=models.MANAGED_HSM, purge_protection=False)
    v.create_key("hsm", {"kty": "EC-HSM"})
    key = v.delete_key("hsm")
    assert v.purge_protection and wire.attributes(v, key.current)["recoveryLevel"] == "Recoverable"
    with pytest.raises(errors.Forbidden):
        v.purge_deleted_key("hsm")
    plain = vault()
    plain.create_key("p", {"kty": "EC-HSM"})
    assert wire.attributes(plain, plain.get_key("p")[1])["recoveryLevel"] == "Recoverable+Purgeable"


# -- service limits --------------------------------------------------------------------------------

def throttle(clock, scale=0.1):
    return limits.Throttle(enabled=True, time_scale=scale, clock=clock)


def test_hsm_create_limit_per_window_and_retry_after():
    clock = Clock()
    t = throttle(clock)
    v = vault()
    create = limits.transaction(v, "import", "k", {"key": {"kty": "EC-HSM"}})
    assert (create.bucket, create.limit) == ("create", 10)
    for dummy in range(10):
        t.admit(v, create)
        clock.advance(0.01)
    with pytest.raises(errors.Throttled) as info:
        t.admit(v, create)
    assert info.value.status == 429 and info.value.headers == {"Retry-After": "1"}
    assert info.value.body() == {"error": {"code": "Throttled", "message": limits.THROTTLED_VAULT}}
    # a refused request does not count; once the first creates leave the (1-second) window there is room again
    clock.advance(0.91)
    t.admit(v, create)
    assert t.describe()["throttled"] == {"v": 1} and t.describe()["admitted"] == {"v": 11}
    # software keys have their own, higher row: 20 per window
    assert limits.transaction(v, "create", "s", {"kty": "EC"}).limit == 20


def test_other_transactions_are_weighted_by_key_type():
    """Microsoft's example: 248 RSA-4096 HSM-key GETs and 16 RSA-2048 HSM-key GETs fill one window."""
    clock = Clock()
    t = throttle(clock)
    v = vault()
    v.create_key("big", {"kty": "RSA-HSM", "key_size": 4096})
    v.create_key("small", {"kty": "RSA-HSM", "key_size": 2048})
    v.create_key("curve", {"kty": "EC-HSM"})
    big, small = limits.transaction(v, "get", "BIG", None), limits.transaction(v, "get", "small", None)
    assert (big.limit, small.limit, limits.transaction(v, "sign", "curve", None).limit) == (250, 2000, 2000)
    for dummy in range(248):
        t.admit(v, big)
    for dummy in range(16):
        t.admit(v, small)
    with pytest.raises(errors.Throttled):
        t.admit(v, small)
    # creates are a bucket of their own
    t.admit(v, limits.transaction(v, "create", "new", {"kty": "RSA-HSM"}))


def test_subscription_ceiling_is_five_vaults_worth():
    clock = Clock()
    t = throttle(clock)
    vaults = [models.Vault("v%d" % i, models.PREMIUM, URL) for i in range(6)]
    create = limits.transaction(vaults[0], "create", "k", {"kty": "EC-HSM"})
    for v in vaults[:5]:
        for dummy in range(10):
            t.admit(v, create)
    with pytest.raises(errors.Throttled) as info:
        t.admit(vaults[5], create)
    assert info.value.message == limits.THROTTLED_SUBSCRIPTION


def test_managed_hsm_table():
    clock = Clock()
    t = throttle(clock)
    v = vault(kind=models.MANAGED_HSM)
    create = limits.transaction(v, "import", "k", {"key": {"kty": "oct-HSM"}})
    assert (create.limit, limits.transaction(v, "delete", "k", None).limit,
            limits.transaction(v, "get", "k", None).limit) == (10, 100, 11000)
    for dummy in range(10):
        t.admit(v, create)
    with pytest.raises(errors.Throttled):
        t.admit(v, create)
    t.admit(v, limits.transaction(v, "purge", "k", None))


def test_limits_are_off_by_default():
    t = limits.Throttle(clock=Clock())
    v = vault()
    create = limits.transaction(v, "create", "k", {"kty": "EC-HSM"})
    for dummy in range(100):
        t.admit(v, create)
    assert t.describe()["throttled"] == {}


# -- over HTTPS --------------------------------------------------------------------------------------

def test_server_answers_429_with_retry_after_when_limits_are_on(lab_factory):
    settings = {"limits": {"enabled": True, "time_scale": 0.5}, "vaults": {"premium": {"purge_protection": True}}}
    started = lab_factory("limits", settings=settings)
    with contextlib.ExitStack() as stop:
        stop.callback(started.stop)
        lab = started.server
        client = key_client(lab, retry_total=0)
        for i in range(10):
            client.create_ec_key("k%d" % i, curve="P-256", hardware_protected=True)
        with pytest.raises(core_exceptions.HttpResponseError) as info:
            client.create_ec_key("k10", curve="P-256", hardware_protected=True)
        assert info.value.status_code == 429 and info.value.error.code == "Throttled"
        assert info.value.response.headers["Retry-After"] in ("1", "2", "3", "4", "5")
        assert lab.settings()["limits"]["throttled"] == {"premium": 1}
        # purge protection over the wire: 403 Forbidden with Key Vault's message
        lab.configure({"limits": {"enabled": False}})
        client.begin_delete_key("k0").wait()
        with pytest.raises(core_exceptions.HttpResponseError) as purge:
            client.purge_deleted_key("K0")
        assert purge.value.status_code == 403 and purge.value.error.code == "Forbidden"
        assert "purge protection is enabled" in purge.value.error.message
        with pytest.raises(errors.BadParameter):
            lab.configure({"vaults": {"nosuch": {}}})
