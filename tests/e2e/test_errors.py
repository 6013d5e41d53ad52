# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a user gets wrong, against REAL SoftHSM2 tokens and the REAL lab vault: each mistake fails with a one-line
message (no traceback, no line break) that names the input at fault and says how to fix it, and changes nothing."""

from __future__ import annotations

import json
import re

import pytest

from conftest import TRANSFER_PLAYBOOK, assert_one_line_failure, assert_says_how_to_fix, ensure_shim, unique, wrap_under_new_kek
from test_transfer import write_inventory

CKR_PIN_INCORRECT = 0xA0
LOGIN_RE = re.compile(r"^(?P<pid>\d+) C_Login user_type=(?P<user>\d+) rv=0x(?P<rv>[0-9a-f]+)$")


def logins(call_log):
    """[(pid, user_type, rv)] of every C_Login the PKCS#11 shim saw (tests/pkcs11_shim, BYOK_SHIM_CALL_LOG)."""
    if not call_log.exists():
        return []
    found = [LOGIN_RE.match(line) for line in call_log.read_text().splitlines()]
    return [(int(m.group("pid")), int(m.group("user")), int(m.group("rv"), 16)) for m in found if m]


def wrong_pin(token):
    return "0000" + token.pin[4:][::-1]


# --------------------------------------------------------------------------------------------------------------------
# HSM side
# --------------------------------------------------------------------------------------------------------------------

def test_wrong_pin(run_module, make_token, tmp_path):
    """A wrong PIN is tried exactly once (C_Login counted by the PKCS#11 shim in front of SoftHSM): a module that retried
    would lock a real HSM's user after a few runs (SoftHSM itself never locks, so only the count can tell)."""
    token = make_token()
    label = unique("ec")
    call_log = tmp_path / "pkcs11-calls.log"
    args = dict(token.pkcs11_args(pin=wrong_pin(token)), pkcs11_module=str(ensure_shim()), label=label, key_type="EC",
                curve="P-256")
    run = run_module("hsm_keygen", args, env=dict(token.env, BYOK_SHIM_CALL_LOG=str(call_log)))
    msg = assert_one_line_failure(run, "user_pin")
    assert_says_how_to_fix(msg)
    assert token.pin not in msg and args["user_pin"] not in msg
    seen = logins(call_log)
    assert len(seen) == 1 and seen[0][2] == CKR_PIN_INCORRECT, \
        "expected exactly one C_Login, refused with CKR_PIN_INCORRECT; the shim saw %s:\n%s" % (seen, run)
    assert args["user_pin"] not in call_log.read_text()
    # nothing was created by the failed run, and the right PIN still works afterwards
    assert token.objects() == []
    ok = run_module("hsm_keygen", dict(token.pkcs11_args(), label=label, key_type="EC", curve="P-256"), env=token.env)
    assert not ok.failed and ok.changed, str(ok)


def test_wrong_pin_in_a_playbook_run_logs_in_once(lab, make_token, run_playbook, tmp_path):
    """The transfer playbook with a wrong PIN: one C_Login for the whole run (no retry, no second HSM task trying it)."""
    token = make_token()
    name, kek_name = unique("e2e-pin"), unique("e2e-kek")
    keys = [{"name": name, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign", "verify"]}]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek_name)
    inventory.write_text(inventory.read_text().replace(json.dumps(token.pin), json.dumps(wrong_pin(token))))
    assert token.pin not in inventory.read_text()
    call_log = tmp_path / "pkcs11-calls.log"
    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=dict(lab.azure_env, BYOK_SHIM_CALL_LOG=str(call_log)),
                       extra_args=["-e", "byok_pkcs11_module=%s" % ensure_shim()])
    assert run.rc != 0, "the run with a wrong PIN succeeded:\n%s" % run
    assert "user_pin" in run.output, run
    seen = logins(call_log)
    assert len(seen) == 1 and seen[0][2] == CKR_PIN_INCORRECT, \
        "expected exactly one C_Login in the whole run, refused with CKR_PIN_INCORRECT; the shim saw %s:\n%s" % (seen, run)
    assert token.objects() == []
    assert name not in lab.keys("premium")


def test_unknown_token_label(run_module, make_token):
    token = make_token()
    missing = unique("no-such-token")
    run = run_module("hsm_keygen", dict(token.pkcs11_args(), token_label=missing, label=unique("ec"), key_type="EC"),
                     env=token.env)
    msg = assert_one_line_failure(run, "token_label", missing)
    assert_says_how_to_fix(msg)
    assert token.label in msg, "the message does not list the tokens that exist: %r" % msg
    assert token.objects() == []


def test_rsa_1024_refused_before_any_hsm_object(run_module, make_token):
    token = make_token()
    label = unique("rsa1024")
    run = run_module("hsm_keygen", dict(token.pkcs11_args(), label=label, key_type="RSA", key_size=1024), env=token.env)
    msg = assert_one_line_failure(run, "key_size", "1024")
    assert_says_how_to_fix(msg)
    for allowed in ("2048", "3072", "4096"):
        assert allowed in msg, "the message does not list the RSA sizes Azure accepts: %r" % msg
    assert token.objects() == [], "an object was created on the token for a refused RSA-1024 key"


def test_rsa_1024_in_keys_list_refused_before_any_hsm_object(run_module, make_token):
    """One bad item among good ones: the module refuses the whole list before it generates anything."""
    token = make_token()
    bad, good = unique("rsa1024"), unique("ec")
    run = run_module("hsm_keygen", dict(token.pkcs11_args(), keys=[
        {"label": good, "key_type": "EC", "curve": "P-256"},
        {"label": bad, "key_type": "RSA", "key_size": 1024},
    ]), env=token.env)
    assert_one_line_failure(run, "1024")
    assert token.objects() == [], "objects were created although the key list was refused: %s" % token.objects()


def test_ec_p192_refused_naming_allowed_curves(run_module, make_token):
    token = make_token()
    run = run_module("hsm_keygen", dict(token.pkcs11_args(), label=unique("ec192"), key_type="EC", curve="P-192"),
                     env=token.env)
    msg = assert_one_line_failure(run, "curve", "P-192")
    for allowed in ("P-256", "P-384", "P-521", "P-256K"):
        assert allowed in msg, "the message does not name the allowed curve %s: %r" % (allowed, msg)
    assert token.objects() == []


def test_ec_p192_in_keys_list_refused_naming_allowed_curves(run_module, make_token):
    token = make_token()
    run = run_module("hsm_keygen", dict(token.pkcs11_args(), keys=[{"label": unique("ec192"), "key_type": "EC",
                                                                    "curve": "P-192"}]), env=token.env)
    msg = assert_one_line_failure(run, "P-192")
    for allowed in ("P-256", "P-384", "P-521", "P-256K"):
        assert allowed in msg, "the message does not name the allowed curve %s: %r" % (allowed, msg)
    assert token.objects() == []


# --------------------------------------------------------------------------------------------------------------------
# Azure side
# --------------------------------------------------------------------------------------------------------------------

def test_kek_name_taken_by_a_key_with_other_ops(lab, run_module):
    name = unique("not-a-kek")
    created = lab.key_client().create_rsa_key(name, size=2048, hardware_protected=True, key_operations=["sign", "verify"])
    assert created.properties.version
    before = lab.keys("premium")[name]

    run = run_module("byok_kek_fetch", dict(lab.azure_args(), name=name, key_size=2048), env=lab.azure_env)
    msg = assert_one_line_failure(run, name, "sign", "verify")
    assert "import" in msg, "the message does not say that a KEK needs key_ops import: %r" % msg
    assert_says_how_to_fix(msg)
    assert lab.keys("premium")[name] == before, "the existing key was changed by the refused KEK fetch"


def test_wrong_client_secret(lab, run_module):
    env = dict(lab.azure_env, AZURE_SECRET="Lab8Q~" + "x" * 40)
    name = unique("kek")
    run = run_module("byok_kek_fetch", dict(lab.azure_args(), name=name, key_size=2048), env=env)
    msg = assert_one_line_failure(run, "secret")
    assert_says_how_to_fix(msg)
    assert env["AZURE_SECRET"] not in msg and lab.env["AZURE_SECRET"] not in msg
    assert name not in lab.keys("premium")


def test_wrong_client_secret_as_option(lab, run_module):
    """The same mistake made with the secret option instead of the environment."""
    name = unique("kek")
    args = dict(lab.azure_args(), name=name, key_size=2048, auth_source="auto", client_id=lab.env["AZURE_CLIENT_ID"],
                tenant=lab.env["AZURE_TENANT"], secret="Lab8Q~" + "y" * 40)
    run = run_module("byok_kek_fetch", args, env={})
    msg = assert_one_line_failure(run, "secret")
    assert_says_how_to_fix(msg)
    assert name not in lab.keys("premium")


def test_http_vault_url_refused(lab, run_module):
    http_url = lab.env["LAB_VAULT_PREMIUM"].replace("https://", "http://")
    name = unique("kek")
    run = run_module("byok_kek_fetch", dict(lab.azure_args(), vault_url=http_url, name=name, key_size=2048),
                     env=lab.azure_env)
    msg = assert_one_line_failure(run, "vault_url", "https")
    assert_says_how_to_fix(msg)
    assert name not in lab.keys("premium")


@pytest.mark.parametrize("content", [b"this is not json\n", b'{"schema_version": "1.0.0", "header": ', b"\x00\xff\xfe"],
                         ids=["text", "truncated-json", "binary"])
def test_byok_not_json_refused_by_import(lab, run_module, tmp_path, content):
    name = unique("import-target")
    byok = tmp_path / "bad.byok"
    byok.write_bytes(content)
    run = run_module("keyvault_import", dict(lab.azure_args(), name=name, byok_file=str(byok), key_type="RSA",
                                             key_size=3072), env=lab.azure_env)
    msg = assert_one_line_failure(run, str(byok))
    assert "json" in msg.lower(), "the message does not say the file is not JSON: %r" % msg
    assert name not in lab.keys("premium"), "a key was created in the vault from a broken .byok"
    assert not run.changed


def test_byok_json_but_not_a_byok_refused_by_import(lab, run_module, tmp_path):
    """Valid JSON without the BYOK fields (for example a JWK saved by mistake)."""
    name = unique("import-target")
    byok = tmp_path / "jwk.byok"
    byok.write_text(json.dumps({"kty": "RSA", "n": "AQAB", "e": "AQAB"}))
    run = run_module("keyvault_import", dict(lab.azure_args(), name=name, byok_file=str(byok), key_type="RSA",
                                             key_size=3072), env=lab.azure_env)
    assert_one_line_failure(run, str(byok))
    assert name not in lab.keys("premium")


def test_blob_of_another_key_refused_after_import(lab, run_module, make_token, tmp_path):
    """Key A's .byok imported under key B's expected_fingerprint, into a name the vault does not hold yet.

    Nothing in the vault can be compared before the PUT (the name is new), so the import happens and only the check of
    the vault's new public key against expected_fingerprint can tell. The module must fail, naming the version it
    created. The vault then holds A's key as that one version: an import cannot be undone by the module (deleting is
    not its job, and on a purge-protected vault not even possible), so the test pins down what the user finds - one
    version, A's key, the version the message names - rather than pretending nothing happened.
    """
    token = make_token()
    label_a, label_b, name, kek = unique("ec-a"), unique("ec-b"), unique("wrong-blob"), unique("kek")
    gen = run_module("hsm_keygen", dict(token.pkcs11_args(), keys=[{"label": label_a, "key_type": "EC", "curve": "P-256"},
                                                                   {"label": label_b, "key_type": "EC", "curve": "P-256"}]),
                     env=token.env)
    assert not gen.failed, str(gen)
    fp = {k["label"]: k["fingerprint"] for k in gen.result["keys"]}
    assert fp[label_a] != fp[label_b]
    byok_a = tmp_path / "a.byok"
    wrapped = wrap_under_new_kek(run_module, lab, token, label_a, byok_a, kek)
    assert wrapped.result["fingerprint"] == fp[label_a], str(wrapped)
    assert name not in lab.keys("premium")

    run = run_module("keyvault_import", dict(lab.azure_args(), name=name, byok_file=str(byok_a), key_type="EC", curve="P-256",
                                             key_ops=["sign", "verify"], expected_fingerprint=fp[label_b]),
                     env=lab.azure_env)
    msg = assert_one_line_failure(run, name, "does not match", fp[label_b])
    assert_says_how_to_fix(msg)
    versions = lab.keys("premium")[name]["versions"]
    assert len(versions) == 1, "expected the one version the import created: %s" % versions
    assert versions[0]["version"] in msg, "the message does not name the version the import created: %r" % msg
    assert run.result["kid"].endswith("/" + versions[0]["version"]), run.result
    # nothing may use key A as key B: the version is disabled, and its identity tag says it holds A, not B
    assert versions[0]["enabled"] is False and "disabled" in msg, (versions, msg)
    props = list(lab.key_client().list_properties_of_key_versions(name))
    assert props[0].tags["byok-fingerprint"] == fp[label_a], props[0].tags
