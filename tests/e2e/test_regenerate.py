# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""byok_regenerate: full_idempotence replaces an HSM key that differs from its entry, destroying it: never the key a
vault's current version holds (the HSM keeps no other copy of it), and a replacement that happens says so in its row
(REAL SoftHSM2 tokens, the REAL lab vault, the real SDK as an independent reader, REAL ansible-playbook runs)."""

from __future__ import annotations

from conftest import TRANSFER_PLAYBOOK, unique
from test_reports import manifest, rows_by_name
from test_transfer import write_inventory


def ec_key(name, curve, **extra):
    key = {"name": name, "vault": "premium", "key_type": "EC", "curve": curve, "key_ops": ["sign", "verify"]}
    key.update(extra)
    return key


def run(lab, run_playbook, inventory, *args):
    return run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env, extra_args=list(args))


def test_the_hsm_key_a_vault_holds_is_never_replaced(lab, make_token, run_playbook, tmp_path):
    name, token, kek = unique("rg-held"), make_token(), unique("rg-kek")
    keys = [ec_key(name, "P-384")]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run(lab, run_playbook, inventory).rc == 0
    held = lab.key_client().get_key(name)
    objects = token.objects()

    # the entry now says P-256; full_idempotence (and force, as the earlier advice said) would destroy the P-384 key
    keys[0].update(curve="P-256", force=True)
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek,
                    extra_vars={"byok_regenerate": "full_idempotence"})
    for args in (["--check"], []):
        refused = run(lab, run_playbook, inventory, *args)
        assert refused.rc != 0, str(refused)
        row = rows_by_name(manifest(tmp_path))[name] if not args else None
        assert "it is the key of the vault's current version" in refused.output, refused.output[-3000:]
        assert "the HSM holds no key labelled" not in refused.output
        if row is not None:
            assert row["result"] == "failed" and "so it was kept" in row["message"], row
    assert token.objects() == objects, "the HSM key of the vault's current version was replaced"
    assert [v.version for v in lab.key_client().list_properties_of_key_versions(name)] == [held.properties.version]


def test_a_replacement_says_which_key_it_destroyed(lab, make_token, run_playbook, tmp_path):
    name, token, kek = unique("rg-repl"), make_token(), unique("rg-kek")
    keys = [ec_key(name, "P-384")]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run(lab, run_playbook, inventory).rc == 0
    old = rows_by_name(manifest(tmp_path))[name]["hsm_fingerprint"]
    # the vault's current version becomes another key (a new version from elsewhere): the HSM key is no vault's now
    lab.key_client().create_ec_key(name, curve="P-384", hardware_protected=True)

    keys[0].update(curve="P-256", force=True)
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek,
                    extra_vars={"byok_regenerate": "full_idempotence"})
    check = run(lab, run_playbook, inventory, "--check")
    assert check.rc == 0 and "would be replaced, destroying the key it holds (%s)" % old in check.output, str(check)
    done = run(lab, run_playbook, inventory)
    assert done.rc == 0, str(done)
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "transferred" and row["hsm_fingerprint"] != old, row
    assert "the key it held before (%s) was destroyed" % old in row["message"], row


def test_never_transfers_the_key_as_the_hsm_holds_it(lab, make_token, run_playbook, tmp_path):
    """The token holds a P-256 key under the label, the entry says P-384, byok_regenerate: never: the key is kept, with a
    warning, and imported as it is (the vault checks the declared curve against the unwrapped key)."""
    label, name, token, kek = unique("rg-never"), unique("rg-never"), make_token(), unique("rg-kek")
    keys = [ec_key(unique("rg-first"), "P-256", label=label)]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run(lab, run_playbook, inventory).rc == 0  # makes the P-256 key under the label
    keys = [ec_key(name, "P-384", label=label)]
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek, extra_vars={"byok_regenerate": "never"})
    done = run(lab, run_playbook, inventory)
    assert done.rc == 0, str(done)
    assert "differs from the request (curve is P-256, wanted P-384) but regenerate is never" in done.output
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "transferred" and row["curve"] == "P-256", row
    assert lab.key_client().get_key(name).key.crv == "P-256"
