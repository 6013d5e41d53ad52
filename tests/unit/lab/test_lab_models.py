# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's vault rules and BYOK unwrap, without HTTP."""

from __future__ import annotations

import base64
import json
import os
import re

import pytest

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives import keywrap
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lab import arm as lab_arm, errors, models, store, wire
from lab_blobs import b64url, blob, pkcs1, pkcs8, pkcs8_ec_p256_minimal, softhsm_pad

PREMIUM_URL = "https://127.0.0.1:18444"
MHSM_URL = "https://127.0.0.1:18445"
OTHER_URL = "https://127.0.0.1:18446"


@pytest.fixture(scope="module")
def premium():
    vault = models.Vault("premium", models.PREMIUM, PREMIUM_URL)
    vault.create_key("kek", {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["import"]})
    return vault


@pytest.fixture(scope="module")
def mhsm():
    vault = models.Vault("mhsm", models.MANAGED_HSM, MHSM_URL)
    vault.create_key("kek", {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["import"]})
    return vault


def kek_of(vault, name="kek"):
    _key, version = vault.get_key(name)
    return version.material.public_key(), vault.kid(name, version.version)


def import_body(data: bytes, kty="RSA-HSM", key_ops=None, crv=None) -> dict:
    key = {"kty": kty, "key_ops": key_ops or ["sign", "verify"], "key_hsm": b64url(data)}
    if crv:
        key["crv"] = crv
    return {"key": key, "Hsm": True, "attributes": {"enabled": True}, "tags": {"source": "unit"}}


def versions(vault, name):
    return len(vault.keys[name].versions) if name in vault.keys else 0


# -- create ---------------------------------------------------------------------------------------

def test_create_kek_bundle_shape(premium):
    key, version = premium.get_key("kek")
    bundle = wire.key_bundle(premium, key, version)
    assert re.match(r"^https://127\.0\.0\.1:18444/keys/kek/[0-9a-f]{32}$", bundle["key"]["kid"])
    assert bundle["key"]["kty"] == "RSA-HSM"
    assert bundle["key"]["key_ops"] == ["import"]
    assert "=" not in bundle["key"]["n"] and bundle["key"]["e"] == "AQAB"
    attributes = bundle["attributes"]
    assert attributes["enabled"] is True and isinstance(attributes["created"], int)
    assert attributes["recoveryLevel"] == "Recoverable+Purgeable" and attributes["recoverableDays"] == 90
    assert "managed" not in bundle and "tags" not in bundle


@pytest.mark.parametrize("ops", [["import", "sign"], ["import", "decrypt"], ["wrapKey", "import"]])
def test_import_op_is_exclusive(premium, ops):
    with pytest.raises(errors.BadParameter, match="mutually exclusive"):
        premium.create_key("kek-bad", {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ops})
    assert "kek-bad" not in premium.keys


@pytest.mark.parametrize("params,match", [
    ({"kty": "oct-HSM", "key_size": 256}, "Managed HSM"),
    ({"kty": "RSA-HSM", "key_size": 1024}, "key_size"),
    ({"kty": "EC-HSM", "crv": "P-192"}, "crv"),
    ({"kty": "RSA-HSM", "key_ops": ["fly"]}, "Invalid key operation"),
    ({"kty": "EC-HSM", "key_ops": ["encrypt"]}, "not supported by EC-HSM"),
    ({}, "kty is required"),
])
def test_create_refusals(premium, params, match):
    with pytest.raises(errors.BadParameter, match=match):
        premium.create_key("refused", params)
    assert "refused" not in premium.keys


@pytest.mark.parametrize("name", ["under_score", "dot.name", "x" * 128, "", "sp ace"])
def test_key_names(premium, name):
    with pytest.raises(errors.BadParameter, match="invalid name"):
        premium.create_key(name, {"kty": "EC-HSM"})


def test_oct_hsm_only_in_managed_hsm(mhsm):
    version = mhsm.create_key("aes", {"kty": "oct-HSM", "key_size": 128})
    bundle = wire.key_bundle(mhsm, mhsm.keys["aes"], version)
    assert bundle["key"]["kty"] == "oct-HSM"
    assert set(bundle["key"]) == {"kid", "kty", "key_ops"}  # no key material for oct
    with pytest.raises(errors.BadParameter, match="Managed HSM"):
        mhsm.create_key("soft", {"kty": "RSA", "key_size": 2048})


def test_create_twice_is_two_versions(premium):
    first = premium.create_key("ec-twice", {"kty": "EC-HSM", "crv": "P-384"})
    second = premium.create_key("ec-twice", {"kty": "EC-HSM", "crv": "P-384"})
    assert first.version != second.version
    assert [v.version for v in premium.list_versions("ec-twice")] == [first.version, second.version]
    assert premium.get_key("ec-twice")[1] is second
    assert premium.get_key("ec-twice", first.version)[1] is first


# -- import (BYOK) --------------------------------------------------------------------------------

def test_import_rsa3072(premium, rsa3072):
    public, kid = kek_of(premium)
    before = versions(premium, "rsa-target")
    version = premium.import_key("rsa-target", import_body(blob(public, kid, pkcs8(rsa3072))))
    assert version.kty == "RSA-HSM" and version.size == 3072 and version.origin == "byok"
    assert version.lab_trailing_zero_bytes == 0
    jwk = wire.key_bundle(premium, premium.keys["rsa-target"], version)["key"]
    assert int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=="), "big") == rsa3072.public_key().public_numbers().n
    assert version.kek_kid == kid
    # every import is a new version
    again = premium.import_key("rsa-target", import_body(blob(public, kid, pkcs8(rsa3072))))
    assert again.version != version.version
    assert versions(premium, "rsa-target") == before + 2


@pytest.mark.parametrize("curve_fixture,crv", [("p256", "P-256"), ("p256k", "P-256K")])
def test_import_ec(premium, request, curve_fixture, crv):
    target = request.getfixturevalue(curve_fixture)
    public, kid = kek_of(premium)
    version = premium.import_key("ec-" + crv.lower(), import_body(blob(public, kid, pkcs8(target)), kty="EC-HSM", crv=crv))
    jwk = wire.key_bundle(premium, premium.keys["ec-" + crv.lower()], version)["key"]
    assert jwk["crv"] == crv
    assert int.from_bytes(base64.urlsafe_b64decode(jwk["x"] + "=="), "big") == target.public_key().public_numbers().x
    assert len(base64.urlsafe_b64decode(jwk["y"] + "==")) == 32
    # and the vault can sign with it
    digest = os.urandom(32)
    _item, signature = premium.sign("ec-" + crv.lower(), version.version, {"alg": "ES256K" if crv == "P-256K" else "ES256",
                                                                           "value": b64url(digest)})
    der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    target.public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_import_ec_curve_mismatch(premium, p256):
    public, kid = kek_of(premium)
    with pytest.raises(errors.BadParameter, match="declared curve is P-384"):
        premium.import_key("ec-mismatch", import_body(blob(public, kid, pkcs8(p256)), kty="EC-HSM", crv="P-384"))
    with pytest.raises(errors.BadParameter, match="crv is required"):
        premium.import_key("ec-mismatch", import_body(blob(public, kid, pkcs8(p256)), kty="EC-HSM"))
    with pytest.raises(errors.BadParameter, match="not an RSA key"):
        premium.import_key("ec-mismatch", import_body(blob(public, kid, pkcs8(p256)), kty="RSA-HSM"))
    assert "ec-mismatch" not in premium.keys


def test_import_oct_managed_hsm_and_kcv(mhsm):
    public, kid = kek_of(mhsm)
    aes = os.urandom(32)
    version = mhsm.import_key("aes-byok", import_body(blob(public, kid, aes), kty="oct-HSM", key_ops=["encrypt", "decrypt"]))
    assert version.material == aes and version.size == 256
    # key check value: AES-CBC of a zero block with a zero IV (no padding), as the collection computes it
    _item, ciphertext, iv = mhsm.encrypt("aes-byok", version.version, {"alg": "A256CBC", "value": b64url(bytes(16)), "iv": b64url(bytes(16))})
    encryptor = Cipher(algorithms.AES(aes), modes.CBC(bytes(16))).encryptor()
    assert ciphertext == encryptor.update(bytes(16)) + encryptor.finalize() and iv == bytes(16)
    with pytest.raises(errors.BadParameter, match="multiple of 16"):
        mhsm.encrypt("aes-byok", version.version, {"alg": "A256CBC", "value": b64url(b"short"), "iv": b64url(bytes(16))})
    with pytest.raises(errors.BadParameter, match="128-bit key"):
        mhsm.encrypt("aes-byok", version.version, {"alg": "A128CBC", "value": b64url(bytes(16)), "iv": b64url(bytes(16))})


def test_an_oct_key_wraps_with_aes_key_wrap(mhsm):
    public, kid = kek_of(mhsm)
    aes = os.urandom(32)
    mhsm.import_key("aes-wrap", import_body(blob(public, kid, aes), kty="oct-HSM", key_ops=["wrapKey", "unwrapKey"]))
    value = os.urandom(32)
    _item, wrapped = mhsm.wrap_key("aes-wrap", None, {"alg": "A256KW", "value": b64url(value)})
    assert wrapped == keywrap.aes_key_wrap(aes, value)
    with pytest.raises(errors.BadParameter, match="needs a 128-bit key"):
        mhsm.wrap_key("aes-wrap", None, {"alg": "A128KW", "value": b64url(value)})
    with pytest.raises(errors.Forbidden):
        mhsm.encrypt("aes-wrap", None, {"alg": "A256CBC", "value": b64url(bytes(16)), "iv": b64url(bytes(16))})


def test_import_oct_refused_in_premium(premium):
    public, kid = kek_of(premium)
    with pytest.raises(errors.BadParameter, match="oct-HSM keys require a Managed HSM"):
        premium.import_key("aes", import_body(blob(public, kid, os.urandom(32)), kty="oct-HSM", key_ops=["encrypt"]))


@pytest.mark.parametrize("zeros", range(1, 8))
def test_softhsm_trailing_zeros_tolerated_and_recorded(premium, p256, zeros):
    public, kid = kek_of(premium)
    name = "zeros-%d" % zeros
    version = premium.import_key(name, import_body(blob(public, kid, pkcs8(p256) + b"\0" * zeros), kty="EC-HSM", crv="P-256"))
    assert version.lab_trailing_zero_bytes == zeros
    summary = wire.vault_summary(premium)["keys"][name]["versions"][0]
    assert summary["lab_trailing_zero_bytes"] == zeros
    # never on the wire
    assert "lab_trailing_zero_bytes" not in json.dumps(wire.key_bundle(premium, premium.keys[name], version))


def test_softhsm_real_padding_p256(premium, p256):
    """P-256 PKCS#8 is 67 bytes; SoftHSM 2.6.1 wraps 72."""
    der = pkcs8_ec_p256_minimal(p256)
    assert len(der) == 67 and len(softhsm_pad(der)) == 72
    public, kid = kek_of(premium)
    version = premium.import_key("softhsm-p256", import_body(blob(public, kid, softhsm_pad(der)), kty="EC-HSM", crv="P-256"))
    assert version.lab_trailing_zero_bytes == 5
    assert wire.public_jwk(version)["x"] == b64url(p256.public_key().public_numbers().x.to_bytes(32, "big"))


@pytest.mark.parametrize("suffix,match", [
    (b"\0" * 8, "8 zero bytes"),
    (b"\0" * 15, "15 zero bytes"),
    (b"\x01", "non-zero"),
    (b"\0\0\0\x07", "non-zero"),
])
def test_trailing_bytes_refused(premium, p256, suffix, match):
    public, kid = kek_of(premium)
    with pytest.raises(errors.BadParameter, match=match):
        premium.import_key("trailing-bad", import_body(blob(public, kid, pkcs8(p256) + suffix), kty="EC-HSM", crv="P-256"))
    assert "trailing-bad" not in premium.keys


def test_pkcs1_refused(premium, rsa2048):
    public, kid = kek_of(premium)
    with pytest.raises(errors.BadParameter, match="PKCS#1.*PKCS#8"):
        premium.import_key("pkcs1", import_body(blob(public, kid, pkcs1(rsa2048))))
    assert "pkcs1" not in premium.keys


def test_rsa1024_refused(premium):
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    public, kid = kek_of(premium)
    with pytest.raises(errors.BadParameter, match="1024 bits"):
        premium.import_key("rsa1024", import_body(blob(public, kid, pkcs8(small))))


def test_oaep_sha256_refused(premium, rsa2048):
    public, kid = kek_of(premium)
    with pytest.raises(errors.BadParameter, match="SHA-1"):
        premium.import_key("sha256", import_body(blob(public, kid, pkcs8(rsa2048), oaep_hash=hashes.SHA256())))
    assert "sha256" not in premium.keys


def test_standard_base64_key_hsm_refused(premium, rsa2048):
    public, kid = kek_of(premium)
    doc = json.loads(blob(public, kid, pkcs8(rsa2048)))
    doc["generator"] = "tool 1.0 (HSM firmware >= 7.4???)"  # '>' and '?' make '+' and '/' in standard base64
    data = json.dumps(doc).encode()
    text = base64.b64encode(data).decode("ascii")
    assert "+" in text or "/" in text
    body = import_body(data)
    body["key"]["key_hsm"] = text
    with pytest.raises(errors.BadParameter, match="standard base64"):
        premium.import_key("std-b64", body)
    assert "std-b64" not in premium.keys
    body["key"]["key_hsm"] = b64url(data)
    assert premium.import_key("std-b64", body).size == 2048


def test_standard_base64_ciphertext_refused_padded_accepted(premium, rsa2048):
    public, kid = kek_of(premium)
    with pytest.raises(errors.BadParameter, match="ciphertext is not valid base64url"):
        for _attempt in range(64):  # some ciphertext has + or / in standard base64
            premium.import_key("std-ct", import_body(blob(public, kid, pkcs8(rsa2048),
                                                          ciphertext_encoder=lambda c: base64.b64encode(c).decode())))
            premium.purge_deleted_key(premium.delete_key("std-ct").name)
    padded = blob(public, kid, pkcs8(rsa2048), pad_b64=True)
    assert premium.import_key("padded-ct", import_body(padded)).size == 2048


def test_kid_rules(premium, rsa2048):
    public, kid = kek_of(premium)
    plaintext = pkcs8(rsa2048)
    cases = [
        (kid.replace(PREMIUM_URL, OTHER_URL), "another vault"),
        (kid.rsplit("/", 1)[0], "has no version"),
        (kid.rsplit("/", 1)[0] + "/" + "0" * 32, "has no version 0000"),
        (kid.replace("/keys/kek/", "/keys/nokek/"), "does not exist"),
        ("http://127.0.0.1:18444/keys/kek/abc", "not a Key Vault key identifier"),
        (PREMIUM_URL + "/secrets/kek/" + "0" * 32, "not of the form"),
    ]
    for bad_kid, match in cases:
        with pytest.raises(errors.BadParameter, match=match):
            premium.import_key("kid-rules", import_body(blob(public, bad_kid, plaintext)))
    assert "kid-rules" not in premium.keys


def test_kek_must_be_import_only_enabled_and_valid(premium, rsa2048):
    signer = premium.create_key("not-a-kek", {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["sign"]})
    public = signer.material.public_key()
    with pytest.raises(errors.BadParameter, match=r"key_ops exactly \['import'\]"):
        premium.import_key("t", import_body(blob(public, premium.kid("not-a-kek", signer.version), pkcs8(rsa2048))))
    soft = premium.create_key("soft-kek", {"kty": "RSA", "key_size": 2048, "key_ops": ["wrapKey"]})
    with pytest.raises(errors.BadParameter, match="must be RSA-HSM"):
        premium.import_key("t", import_body(blob(soft.material.public_key(), premium.kid("soft-kek", soft.version), pkcs8(rsa2048))))
    kek = premium.create_key("kek-attrs", {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["import"]})
    kid = premium.kid("kek-attrs", kek.version)
    data = blob(kek.material.public_key(), kid, pkcs8(rsa2048))
    premium.update_key("kek-attrs", kek.version, {"attributes": {"enabled": False}})
    with pytest.raises(errors.BadParameter, match="disabled"):
        premium.import_key("t", import_body(data))
    premium.update_key("kek-attrs", kek.version, {"attributes": {"enabled": True, "exp": 1000}})
    with pytest.raises(errors.BadParameter, match="expired"):
        premium.import_key("t", import_body(data))
    premium.update_key("kek-attrs", kek.version, {"attributes": {"exp": None, "nbf": 2 ** 40}})
    with pytest.raises(errors.BadParameter, match="not yet valid"):
        premium.import_key("t", import_body(data))
    premium.update_key("kek-attrs", kek.version, {"attributes": {"nbf": None}})
    assert premium.import_key("t", import_body(data)).origin == "byok"


def test_wrong_kek_refused(premium, rsa2048):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _public, kid = kek_of(premium)
    with pytest.raises(errors.BadParameter, match="does not decrypt"):
        premium.import_key("wrong-kek", import_body(blob(other.public_key(), kid, pkcs8(rsa2048))))


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.update(schema_version="2.0.0"), "schema_version"),
    (lambda d: d["header"].update(alg="RSA-OAEP"), "header.alg"),
    (lambda d: d["header"].update(enc="CKM_AES_KEY_WRAP_PAD"), "header.enc"),
    (lambda d: d["header"].pop("kid"), "header.kid"),
    (lambda d: d.pop("ciphertext"), "ciphertext"),
    (lambda d: d.update(ciphertext=d["ciphertext"][:300]), "cannot be CKM_RSA_AES_KEY_WRAP"),
])
def test_blob_envelope_refusals(premium, rsa2048, mutate, match):
    public, kid = kek_of(premium)
    doc = json.loads(blob(public, kid, pkcs8(rsa2048)))
    mutate(doc)
    with pytest.raises(errors.BadParameter, match=match):
        premium.import_key("envelope", import_body(json.dumps(doc).encode()))
    with pytest.raises(errors.BadParameter, match="not UTF-8 JSON"):
        premium.import_key("envelope", import_body(b"\xff\xfe not json"))


def test_import_key_ops_rules(premium, rsa2048):
    public, kid = kek_of(premium)
    with pytest.raises(errors.BadParameter, match="mutually exclusive"):
        premium.import_key("ops", import_body(blob(public, kid, pkcs8(rsa2048)), key_ops=["import", "sign"]))
    body = import_body(blob(public, kid, pkcs8(rsa2048)))
    del body["key"]["key_hsm"]
    with pytest.raises(errors.BadParameter, match="key_hsm is required"):
        premium.import_key("ops", body)


# -- soft delete, recover, purge -----------------------------------------------------------------

CONFLICT = ("Key gone is currently in a deleted but recoverable state, and its name cannot be reused; in this state, "
            "the key can only be recovered or purged.")


def test_soft_delete_recover_purge(premium, p256):
    premium.create_key("gone", {"kty": "EC-HSM"})
    deleted = premium.delete_key("gone")
    bundle = wire.deleted_key_bundle(premium, deleted)
    assert bundle["recoveryId"] == PREMIUM_URL + "/deletedkeys/gone"
    assert bundle["scheduledPurgeDate"] - bundle["deletedDate"] == 90 * 86400
    with pytest.raises(errors.KeyNotFound):
        premium.get_key("gone")
    assert "gone" not in [k.name for k in premium.list_keys()]
    assert [k.name for k in premium.list_deleted_keys()] == ["gone"]
    with pytest.raises(errors.Conflict) as info:
        premium.create_key("gone", {"kty": "EC-HSM"})
    assert info.value.message == CONFLICT and info.value.status == 409
    public, kid = kek_of(premium)
    with pytest.raises(errors.Conflict):
        premium.import_key("gone", import_body(blob(public, kid, pkcs8(p256)), kty="EC-HSM", crv="P-256"))
    with pytest.raises(errors.KeyNotFound):
        premium.delete_key("gone")
    premium.recover_deleted_key("gone")
    assert len(premium.list_versions("gone")) == 1
    with pytest.raises(errors.KeyNotFound, match="Deleted Key not found"):
        premium.recover_deleted_key("gone")
    premium.delete_key("gone")
    premium.purge_deleted_key("gone")
    assert "gone" not in premium.keys
    with pytest.raises(errors.KeyNotFound):
        premium.get_deleted_key("gone")
    premium.create_key("gone", {"kty": "EC-HSM"})
    assert len(premium.list_versions("gone")) == 1


def test_missing_key_and_version(premium):
    with pytest.raises(errors.KeyNotFound) as info:
        premium.get_key("nothing-here")
    assert info.value.body()["error"]["code"] == "KeyNotFound" and info.value.status == 404
    with pytest.raises(errors.KeyNotFound):
        premium.get_key("kek", "f" * 32)


# -- sign, update, persistence ---------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS512"])
def test_rsa_sign(premium, alg):
    version = premium.create_key("signer-" + alg.lower(), {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["sign", "verify"]})
    hash_cls = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[alg[2:]]
    digest = os.urandom(hash_cls.digest_size)
    _item, signature = premium.sign("signer-" + alg.lower(), version.version, {"alg": alg, "value": b64url(digest)})
    pad = padding.PKCS1v15() if alg.startswith("RS") else padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size)
    version.material.public_key().verify(signature, digest, pad, utils.Prehashed(hash_cls()))
    with pytest.raises(errors.BadParameter, match="digest"):
        premium.sign("signer-" + alg.lower(), version.version, {"alg": alg, "value": b64url(b"short")})


def test_sign_rules(premium):
    kek = premium.get_key("kek")[1]
    with pytest.raises(errors.Forbidden, match="not permitted"):
        premium.sign("kek", kek.version, {"alg": "RS256", "value": b64url(bytes(32))})
    ec_key = premium.create_key("ec-signer", {"kty": "EC-HSM", "crv": "P-384"})
    with pytest.raises(errors.BadParameter, match="P-256"):
        premium.sign("ec-signer", ec_key.version, {"alg": "ES256", "value": b64url(bytes(32))})
    premium.update_key("ec-signer", None, {"attributes": {"enabled": False}, "tags": {"a": "b"}})
    with pytest.raises(errors.Forbidden, match="disabled"):
        premium.sign("ec-signer", ec_key.version, {"alg": "ES384", "value": b64url(bytes(48))})
    assert wire.key_item(premium, premium.key_of("ec-signer"), premium.list_versions("ec-signer")[-1])["tags"] == {"a": "b"}
    with pytest.raises(errors.BadParameter, match="mutually exclusive"):
        premium.update_key("kek", None, {"key_ops": ["import", "sign"]})


def test_state_persists_atomically(tmp_path, p256):
    state = store.LabState(str(tmp_path))
    vault = state.add_vault("premium", models.PREMIUM, PREMIUM_URL)
    kek = vault.create_key("kek", {"kty": "RSA-HSM", "key_size": 2048, "key_ops": ["import"]})
    kid = vault.kid("kek", kek.version)
    vault.import_key("target", import_body(blob(kek.material.public_key(), kid, softhsm_pad(pkcs8_ec_p256_minimal(p256))), kty="EC-HSM",
                                           crv="P-256"))
    vault.delete_key("target")
    path = tmp_path / "vaults" / "premium.json"
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in (tmp_path / "vaults").iterdir()] == ["premium.json"]  # no temp files left
    # a new process (here: a new LabState) sees the same keys, on whatever port it listens now
    again = store.LabState(str(tmp_path)).add_vault("premium", models.PREMIUM, "https://127.0.0.1:9")
    assert wire.public_jwk(again.keys["kek"].current) == wire.public_jwk(kek)
    assert again.keys["target"].deleted
    assert wire.vault_summary(again)["keys"]["target"]["versions"][0]["lab_trailing_zero_bytes"] == 5
    again.recover_deleted_key("target")
    assert wire.key_bundle(again, *again.get_key("target"))["key"]["kid"].startswith("https://127.0.0.1:9/keys/target/")
    state.reset()
    assert not path.exists()


def test_resource_manager_metadata():
    arm = lab_arm.ResourceManager("https://127.0.0.1:18443", "tid", "https://127.0.0.1:18443",
                                  {"premium": PREMIUM_URL, "mhsm": MHSM_URL, "premium2": OTHER_URL},
                                  {"premium": models.PREMIUM, "mhsm": models.MANAGED_HSM, "premium2": models.PREMIUM})
    assert arm.url == "https://127.0.0.1:18443/" and arm.audience == "https://127.0.0.1:18443"
    doc = arm.cloud_metadata()
    assert doc["resourceManager"] == arm.url and doc["authentication"]["audiences"] == [arm.url]
    assert doc["authentication"]["loginEndpoint"] == "https://127.0.0.1:18443"
    # vault name "127" + "." + suffix = the lab vault's host:port; the first premium vault (config order) wins
    assert doc["suffixes"] == {"keyVaultDns": "0.0.1:18444", "mhsmDns": "0.0.1:18445"}
    assert "https://127.%s" % doc["suffixes"]["keyVaultDns"] == PREMIUM_URL
    assert arm.tenants()[0]["tenantId"] == "tid" and arm.tenants()[0]["id"] == "/tenants/tid"
    assert arm.subscriptions() == []
    # a vault on another host cannot be reached through the "127" trick: no suffix
    elsewhere = lab_arm.ResourceManager("https://localhost:1", "tid", "https://localhost:1", {"premium": "https://localhost:2"},
                                        {"premium": models.PREMIUM})
    assert elsewhere.cloud_metadata()["suffixes"] == {}
