# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Someone who may write keys in a vault forges what the collection would take for the HSM key (REAL SoftHSM2 tokens,
the REAL lab vault, the real SDK as the forger and as an independent reader, REAL ansible-playbook runs).

- a soft-deleted AES key of their own, under the name the HSM key is to have and carrying the HSM key's identity tag
  (the tag value is in every manifest): a run that lists the key there recovers it (the tag is all a deleted AES key shows), finds the
  KCV the vault computes is another key's, deletes it again and fails, never reporting it recovered;
- a disabled key of their own under that name with the tag copied: the vault shows nothing of a disabled version but
  its tags, so only the tag would say it is the HSM key: "cannot be compared", the run fails, nothing is imported.
"""

from __future__ import annotations

import json

from conftest import TRANSFER_PLAYBOOK, unique
from test_reports import manifest, mhsm_vault, rows_by_name
from test_transfer import write_inventory


def aes_inventory(lab, tmp_path, token, keys, kek_names):
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek_names["premium"])
    data = json.loads(inventory.read_text())
    data["all"]["vars"]["byok_vaults"]["mhsm"] = mhsm_vault(lab, kek_names["mhsm"])
    inventory.write_text(json.dumps(data))
    return inventory


def failed_under(name, lab, tmp_path, token, keys, keks, run_playbook):
    """The row of the HSM key of keys[0] listed under name, in the vault where the forger put a key of their own: the
    run fails and the row says so."""
    keys[0]["name"] = name
    inventory = aes_inventory(lab, tmp_path, token, keys, keks)
    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert run.rc != 0, str(run)
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "failed", row
    return row


def test_a_soft_deleted_key_with_a_copied_identity_tag_is_not_put_back_into_service(lab, make_token, run_playbook, tmp_path):
    first_name, name, label, token = unique("fg-first"), unique("fg-rec"), unique("fg-label"), make_token()
    keks = {"premium": unique("fg-kek"), "mhsm": unique("fg-kek")}
    keys = [{"name": first_name, "label": label, "vault": "mhsm", "key_type": "oct", "key_size": 256,
             "key_ops": ["encrypt", "decrypt"]}]
    inventory = aes_inventory(lab, tmp_path, token, keys, keks)
    first = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert first.rc == 0, str(first)
    identity = rows_by_name(manifest(tmp_path))[first_name]["hsm_fingerprint"]
    assert len(identity) == 64, identity

    # the forger's own AES key under the name the HSM key is to have next, with its identity tag copied from the
    # manifest, soft-deleted
    client = lab.key_client("mhsm")
    forged = client.create_oct_key(name, size=256, hardware_protected=True, tags={"byok-kcv": identity})
    client.begin_delete_key(name).wait()
    assert client.get_deleted_key(name).properties.version == forged.properties.version

    row = failed_under(name, lab, tmp_path, token, keys, keks, run_playbook)
    assert "is not the HSM key" in row["message"], row
    assert "deleted again" in row["message"], row
    # the forger's key is soft-deleted again, as it was: nothing of it is in service
    assert client.get_deleted_key(name).properties.version == forged.properties.version
    assert not [p for p in client.list_properties_of_keys() if p.name == name]


def test_a_disabled_key_with_a_copied_identity_tag_is_not_taken_for_the_hsm_key(lab, make_token, run_playbook, tmp_path):
    first_name, name, label, token = unique("fg-first"), unique("fg-dis"), unique("fg-label"), make_token()
    keys = [{"name": first_name, "label": label, "vault": "premium", "key_type": "EC", "curve": "P-256",
             "key_ops": ["sign", "verify"]}]
    kek = unique("fg-kek")
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env).rc == 0
    identity = rows_by_name(manifest(tmp_path))[first_name]["hsm_fingerprint"]

    # the forger's own key under the name the HSM key is to have next, with the identity tag copied from the manifest,
    # disabled: the vault then shows nothing of its key material, only its tags
    client = lab.key_client()
    forged = client.create_ec_key(name, curve="P-256", hardware_protected=True, tags={"byok-fingerprint": identity})
    client.update_key_properties(name, enabled=False)

    keys[0]["name"] = name
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert run.rc != 0, str(run)
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "not done" and row["message"].startswith("cannot be compared"), row
    assert "nothing to transfer" not in run.output
    assert [v.version for v in client.list_properties_of_key_versions(name)] == [forged.properties.version]


def test_force_never_puts_back_a_key_an_older_version_held(lab, make_token, run_playbook, tmp_path):
    """A rotation by force (a new label) replaced HSM key A with B; the entry going back to A's label (an old inventory,
    or a replayed stage 3 of the staged flow) would make A the current version again: refused, nothing imported, also
    once the identity tag of A's version is gone."""
    name, first, second, token, kek = unique("fg-back"), unique("fg-l1"), unique("fg-l2"), make_token(), unique("fg-kek")
    keys = [{"name": name, "label": first, "vault": "premium", "key_type": "EC", "curve": "P-256",
             "key_ops": ["sign", "verify"]}]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env).rc == 0
    keys[0].update(label=second, force=True)
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    rotated = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert rotated.rc == 0, str(rotated)
    client = lab.key_client()
    versions = [v.version for v in client.list_properties_of_key_versions(name)]
    assert len(versions) == 2, versions

    # the older version's identity tag removed (anyone allowed to tag a key can): what the version holds still counts
    oldest = min(client.list_properties_of_key_versions(name), key=lambda p: p.created_on)
    client.update_key_properties(name, oldest.version, tags={})
    keys[0]["label"] = first
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    back = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert back.rc != 0, str(back)
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "failed" and "an older version of vault key %s held this HSM key" % name in row["message"], row
    assert sorted(v.version for v in client.list_properties_of_key_versions(name)) == sorted(versions)


def test_an_aes_key_that_may_only_wrap_with_a_copied_tag_is_found_out(lab, make_token, run_playbook, tmp_path):
    """An AES key that may not encrypt shows no KCV, only its tag: the forger's own such key under the name, with the
    tag copied, is found out by the vault's key wrap of a random value, which the HSM key does not give."""
    first_name, name, label, token = unique("fg-first"), unique("fg-wrap"), unique("fg-label"), make_token()
    keks = {"premium": unique("fg-kek"), "mhsm": unique("fg-kek")}
    keys = [{"name": first_name, "label": label, "vault": "mhsm", "key_type": "oct", "key_size": 256,
             "key_ops": ["wrapKey", "unwrapKey"]}]
    inventory = aes_inventory(lab, tmp_path, token, keys, keks)
    assert run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env).rc == 0
    identity = rows_by_name(manifest(tmp_path))[first_name]["hsm_fingerprint"]
    client = lab.key_client("mhsm")
    forged = client.create_oct_key(name, size=256, hardware_protected=True, key_operations=["wrapKey", "unwrapKey"],
                                   tags={"byok-kcv": identity})
    row = failed_under(name, lab, tmp_path, token, keys, keks, run_playbook)
    assert "key wrap of a random value is not the HSM key's" in row["message"], row
    assert [v.version for v in client.list_properties_of_key_versions(name)] == [forged.properties.version]
