# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tokens that are not SoftHSM 2.6.1, as the test shim (tests/pkcs11_shim) presents them in front of a real SoftHSM2
token, through the real modules:

- a standards-conforming token (CKM_AES_KEY_WRAP_PAD = RFC 3394 over PKCS#7 padding, CKM_AES_KEY_WRAP_KWP = RFC 5649,
  no CKM_RSA_AES_KEY_WRAP): what byok_wrap writes unwraps with the OpenSSL command line alone, for every key class;
- a token whose padded wraps fail, and one that cannot generate EC keys: hsm_keygen refuses before creating anything,
  naming what it tried;
- a token whose C_GetTokenInfo fails: the failure reaches the operator with the call and the CKR_ code;
- a token that briefly does not list a private key it holds: nothing is destroyed, and the run stops saying so.
"""

from __future__ import annotations

import json

import pytest

from conftest import assert_one_line_failure, assert_says_how_to_fix, ensure_shim, unique  # pytest puts tests/e2e on sys.path
from test_openssl_unwrap import (KEK_KID, kek, kcv_with_openssl, openssl,  # noqa: F401 pylint: disable=unused-import
                                 spki_sha256_of_private_der, unwrap_with_openssl)

CONFORMING = {"BYOK_SHIM_KWP_STANDARD": "1", "BYOK_SHIM_COMBINED": "0"}
KINDS = {
    "rsa2048": {"key_type": "RSA", "key_size": 2048},
    "ec-p256": {"key_type": "EC", "curve": "P-256"},
    "ec-p384": {"key_type": "EC", "curve": "P-384"},
    "aes256": {"key_type": "oct", "key_size": 256},
}


@pytest.fixture(scope="module")
def shim():
    return str(ensure_shim())


def shim_args(token, shim_lib):
    args = dict(token.pkcs11_args(), pkcs11_module=shim_lib)
    args["vendor"] = "generic"
    return args


def env_of(token, extra):
    env = dict(token.env)
    env.update(extra)
    return env


@pytest.mark.parametrize("block", ["16", "8"])
def test_on_a_conforming_token_every_byok_unwraps_with_openssl(run_module, make_token, shim, kek, tmp_path, block):
    """Today's code took CKM_AES_KEY_WRAP_PAD for RFC 5649: on this token none of these files unwrapped."""
    token = make_token()
    env = env_of(token, dict(CONFORMING, BYOK_SHIM_PKCS7_BLOCK=block))
    labels = {kind: unique(kind) for kind in KINDS}
    gen = run_module("hsm_keygen", dict(shim_args(token, shim), keys=[dict(spec, label=labels[k]) for k, spec in KINDS.items()]),
                     env=env)
    assert not gen.failed, gen
    kek_private, kek_public = kek
    out = tmp_path / "out"
    out.mkdir()
    wrap = run_module("byok_wrap", dict(shim_args(token, shim), kek_file=str(kek_public), kek_kid=KEK_KID, keys=[
        {"label": labels[k], "dest": str(out / ("%s.byok" % k))} for k in KINDS]), env=env)
    assert not wrap.failed, wrap
    generated = {k["label"]: k for k in gen.result["keys"]}
    for item in wrap.result["keys"]:
        assert item["wrap_method"] == "two_step", item
        assert item["wrap_mechanism"] == "CKM_AES_KEY_WRAP_KWP (0x210B) + CKM_RSA_PKCS_OAEP", item
    for kind, spec in KINDS.items():
        work = tmp_path / ("unwrap-" + kind)
        work.mkdir()
        plain = unwrap_with_openssl(out / ("%s.byok" % kind), kek_private, work)
        fingerprint = generated[labels[kind]]["fingerprint"]
        if spec["key_type"] == "oct":
            assert len(plain) == 32 and kcv_with_openssl(plain) == fingerprint, kind
            continue
        assert spki_sha256_of_private_der(plain, work) == fingerprint, kind
        # a conforming token wraps the exact PKCS#8 encoding: no zero bytes after it, no warning
        der = openssl("pkcs8", "-topk8", "-nocrypt", "-inform", "DER", "-in", str(work / "plain.der"), "-outform", "DER")
        assert plain == der, (kind, len(plain), len(der))
        meta = json.loads((out / ("%s.byok.json" % kind)).read_text())
        assert meta["zero_padded"] is False and meta["wrap_mechanism"].startswith("CKM_AES_KEY_WRAP_KWP"), meta


def test_softhsm_itself_is_proved_and_its_zero_padding_reported(run_module, make_token, kek, tmp_path):
    token = make_token()
    label = unique("ec")
    assert not run_module("hsm_keygen", dict(token.pkcs11_args(), label=label, key_type="EC"), env=token.env).failed
    _dummy, kek_public = kek
    wrap = run_module("byok_wrap", dict(token.pkcs11_args(), label=label, kek_file=str(kek_public), kek_kid=KEK_KID,
                                        dest=str(tmp_path / "k.byok")), env=token.env)
    assert not wrap.failed, wrap
    assert wrap.result["wrap_mechanism"] == "CKM_AES_KEY_WRAP_PAD (0x210A) + CKM_RSA_PKCS_OAEP", wrap.result
    assert json.loads((tmp_path / "k.byok.json").read_text())["zero_padded"] is True


@pytest.mark.parametrize("kind", ["rsa2048", "aes256"])
def test_a_token_without_a_usable_wrap_gets_no_key(run_module, make_token, shim, kind):
    """Today's code generated the key and only byok_wrap refused it."""
    token = make_token()
    env = env_of(token, {"BYOK_SHIM_KWP_RV": "0x150", "BYOK_SHIM_COMBINED": "0"})
    run = run_module("hsm_keygen", dict(shim_args(token, shim), label=unique(kind), **KINDS[kind]), env=env)
    msg = assert_one_line_failure(run, "no wrap path Azure can unwrap",
                                  "CKM_AES_KEY_WRAP_PAD (0x210A): refused by C_WrapKey with CKR_BUFFER_TOO_SMALL",
                                  "CKM_RSA_AES_KEY_WRAP: not offered")
    assert_says_how_to_fix(msg)
    assert token.objects() == [], token.objects()


def test_a_token_without_ec_generation_names_the_mechanism_and_makes_nothing(run_module, make_token, shim):
    token = make_token()
    env = env_of(token, {"BYOK_SHIM_NO_EC": "1"})
    run = run_module("hsm_keygen", dict(shim_args(token, shim), label=unique("ec"), **KINDS["ec-p256"]), env=env)
    msg = assert_one_line_failure(run, "cannot generate EC keys", "CKM_EC_KEY_PAIR_GEN", "nothing was generated")
    assert "wrap_method" not in msg, msg
    assert token.objects() == []
    # RSA keys are still served (the proof uses an RSA test key where EC generation is missing)
    ok = run_module("hsm_keygen", dict(shim_args(token, shim), label=unique("rsa"), **KINDS["rsa2048"]), env=env)
    assert not ok.failed and ok.result["changed"], ok


def test_a_failing_c_gettokeninfo_reaches_the_operator_with_its_code(run_module, make_token, shim):
    """Today: "Task failed: Module failed." with no reason."""
    token = make_token()
    env = env_of(token, {"BYOK_SHIM_TOKENINFO_RV": "0x5"})
    run = run_module("hsm_keygen", dict(shim_args(token, shim), label=unique("k"), **KINDS["ec-p256"]), env=env)
    msg = assert_one_line_failure(run, "C_GetTokenInfo", "CKR_GENERAL_ERROR")
    assert_says_how_to_fix(msg)


def test_a_private_key_briefly_unlisted_is_never_destroyed_in_half(run_module, make_token, shim):
    """Today the lone-looking public object was destroyed and a second pair generated; every later run then failed."""
    token = make_token()
    label = unique("k1")
    args = dict(shim_args(token, shim), label=label, **KINDS["ec-p256"])
    first = run_module("hsm_keygen", args, env=token.env)
    assert not first.failed and first.result["changed"], first
    run = run_module("hsm_keygen", args, env=env_of(token, {"BYOK_SHIM_HIDE_PRIVATE_FINDS": "1"}))
    assert_one_line_failure(run, "private key labelled '%s'" % label, "did not list", "nothing was removed")
    classes = sorted(o["class"] for o in token.objects())
    assert classes == ["Private Key", "Public Key"], token.objects()
    again = run_module("hsm_keygen", args, env=token.env)
    assert not again.failed and not again.result["changed"] and again.result["fingerprint"] == first.result["fingerprint"]
