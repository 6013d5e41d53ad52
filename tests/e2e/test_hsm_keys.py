# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/hsm_keys.yml end to end on a REAL SoftHSM2 token and the REAL lab vault: one key transferred, one stray key
made with hsm_keygen under another label; the listing tells them apart, a clean-up in check mode removes nothing, the real
clean-up removes only the stray key, and a key in use (named by the inventory or held by a vault) is never removed."""

from __future__ import annotations

import re

from conftest import ROOT, TRANSFER_PLAYBOOK, testing, unique

HSM_KEYS_PLAYBOOK = ROOT / "playbooks" / "hsm_keys.yml"


def write_inventory(path, lab, token, keys, kek_name):
    return testing.write_inventory(path, {"hsm1": testing.token_vars(token, keys)},
                                   testing.lab_vaults(lab.env, kek_name, kek_size=3072), testing.lab_azure(lab.env),
                                   path.parent / "manifests")


def listing(output):
    """{label: {type, id, inventory, vault, verdict, reason}} from the lines the playbook prints for hsm1."""
    out = {}
    pattern = r'"hsm1: (\S+)  (.+?)  id=(\S+)  in inventory: (yes|no)  in a vault: (.+?)  -> (keep|unused) \((.*?)\)"'
    for label, kind, key_id, inventory, vault, verdict, reason in re.findall(pattern, output):
        out[label] = {"type": kind, "id": key_id, "inventory": inventory, "vault": vault, "verdict": verdict, "reason": reason}
    return out


def labels_on(token):
    return sorted(o["label"] for o in token.objects() if o.get("class") in ("Private Key", "Secret Key"))


def transferred_with_stray(lab, make_token, run_playbook, run_module, tmp_path):
    """A token with one transferred RSA key and one stray EC key (hsm_keygen under another label)."""
    name, stray, kek_name = unique("tc-rsa"), unique("tc-stray"), unique("tc-kek")
    token = make_token()
    keys = [{"name": name, "vault": "premium", "key_type": "RSA", "key_size": 3072, "key_ops": ["sign", "verify"]}]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, token, keys, kek_name)
    first = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert first.rc == 0, str(first)
    made = run_module("hsm_keygen", dict(token.pkcs11_args(), label=stray, key_type="EC", curve="P-256"), env=token.env)
    assert not made.failed and made.changed, str(made)
    assert labels_on(token) == sorted([name, stray]), token.objects()
    return token, inventory, name, stray


def test_listing_tells_the_transferred_key_from_the_stray_one(lab, make_token, run_playbook, run_module, tmp_path):
    token, inventory, name, stray = transferred_with_stray(lab, make_token, run_playbook, run_module, tmp_path)
    run = run_playbook(HSM_KEYS_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert run.rc == 0, str(run)
    rows = listing(run.output)
    assert set(rows) == {name, stray}, "listing lacks keys:\n%s" % run.output[-4000:]
    version = lab.key_client().get_key(name).properties.version
    assert rows[name]["inventory"] == "yes" and rows[name]["vault"] == "premium/%s/%s" % (name, version), rows[name]
    assert rows[name]["type"] == "RSA 3072" and rows[name]["verdict"] == "keep", rows[name]
    assert rows[stray]["inventory"] == "no" and rows[stray]["vault"] == "no", rows[stray]
    assert rows[stray]["type"] == "EC P-256" and rows[stray]["verdict"] == "unused", rows[stray]
    # listing only: nothing removed without byok_cleanup
    assert labels_on(token) == sorted([name, stray])


def test_cleanup_check_mode_then_real_removes_only_the_stray_key(lab, make_token, run_playbook, run_module, tmp_path):
    token, inventory, name, stray = transferred_with_stray(lab, make_token, run_playbook, run_module, tmp_path)
    vault_before = lab.keys("premium")[name]

    check = run_playbook(HSM_KEYS_PLAYBOOK, inventory, extra_env=lab.azure_env, check=True,
                         extra_args=("-e", "byok_cleanup=true"))
    assert check.rc == 0, str(check)
    assert "would remove hsm1: %s" % stray in check.output, check.output[-4000:]
    assert "would remove hsm1: %s" % name not in check.output
    assert labels_on(token) == sorted([name, stray]), "check mode removed a key: %s" % token.objects()

    real = run_playbook(HSM_KEYS_PLAYBOOK, inventory, extra_env=lab.azure_env, extra_args=("-e", "byok_cleanup=true"))
    assert real.rc == 0, str(real)
    assert "removed hsm1: %s" % stray in real.output, real.output[-4000:]
    assert labels_on(token) == [name], token.objects()
    assert not [o for o in token.objects() if o.get("label") == stray], "the stray key's public half is left"
    assert lab.keys("premium")[name] == vault_before, "the clean-up changed the vault"
    assert lab.vault_key_sha256(name) == token.public_key_sha256(name)

    again = run_playbook(HSM_KEYS_PLAYBOOK, inventory, extra_env=lab.azure_env, extra_args=("-e", "byok_cleanup=true"))
    assert again.rc == 0 and again.recap["hsm1"]["changed"] == 0, str(again)
    assert set(listing(again.output)) == {name}


def test_a_key_a_vault_holds_is_kept_when_the_inventory_forgets_it(lab, make_token, run_playbook, run_module, tmp_path):
    token, inventory, name, stray = transferred_with_stray(lab, make_token, run_playbook, run_module, tmp_path)
    # an inventory that no longer names the transferred key: the vault still holds it, so it stays
    forgetful = write_inventory(tmp_path / "forgetful.yml", lab, token, [], unique("tc-kek"))
    run = run_playbook(HSM_KEYS_PLAYBOOK, forgetful, extra_env=lab.azure_env, extra_args=("-e", "byok_cleanup=true"))
    assert run.rc == 0, str(run)
    rows = listing(run.output)
    assert rows[name]["inventory"] == "no" and rows[name]["vault"].startswith("premium/%s/" % name), rows[name]
    assert rows[name]["verdict"] == "keep" and "vault holds it" in rows[name]["reason"], rows[name]
    assert labels_on(token) == [name], token.objects()


def test_remove_module_refuses_a_key_that_is_not_the_listed_one(lab, make_token, run_module):
    token = make_token()
    label = unique("tc-other")
    made = run_module("hsm_keygen", dict(token.pkcs11_args(), label=label, key_type="RSA", key_size=2048), env=token.env)
    assert not made.failed, str(made)
    info = run_module("hsm_key_info", token.pkcs11_args(), env=token.env)
    assert not info.failed and not info.changed, str(info)
    [listed] = info.result["keys"]
    assert listed["label"] == label and listed["fingerprint"] == made.result["fingerprint"], listed
    wrong = run_module("hsm_key_remove", dict(token.pkcs11_args(), keys=[{"label": label, "fingerprint": "00" * 32}]),
                       env=token.env)
    assert wrong.failed and "was not removed" in wrong.msg, str(wrong)
    assert labels_on(token) == [label]
    check = run_module("hsm_key_remove", dict(token.pkcs11_args(), keys=[{"label": label, "id": listed["id"],
                                                                         "fingerprint": listed["fingerprint"]}]),
                       env=token.env, check=True)
    assert not check.failed and check.changed and labels_on(token) == [label], str(check)


def test_a_pin_in_the_hsm_environment_is_refused_before_the_token_is_opened(lab, make_token, run_playbook, tmp_path):
    token = make_token()
    host = dict(testing.token_vars(token, []), byok_hsm_environment=dict(token.env, PKCS11_USER_PIN=token.pin))
    inventory = testing.write_inventory(tmp_path / "inventory.yml", {"hsm1": host}, testing.lab_vaults(lab.env, unique("tc-kek")),
                                        testing.lab_azure(lab.env), tmp_path / "manifests")
    run = run_playbook(HSM_KEYS_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert run.rc != 0 and "byok_hsm_environment sets PKCS11_USER_PIN" in run.output, str(run)
    assert "List the private and secret keys" not in run.output and token.pin not in run.output, str(run)
