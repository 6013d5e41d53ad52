# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""After the transfer the inventory keeps describing the key: the attributes it states are kept as stated on the vault's
current version, in place (Update Key, no new version), and a disabled key is still recognised (REAL SoftHSM2 tokens,
the REAL lab vault, the real SDK as an independent reader, REAL ansible-playbook runs).

- changed tags, enabled: false, expires_on and key_ops are applied to the key that is in place, once; the next run
  changes nothing and still knows the disabled key (403 KeyDisabled on a read) by the identity recorded at its import;
- a field the inventory does not state is left as it is: a key disabled outside the inventory stays disabled, and its
  row says so;
- append_tags: false leaves exactly the stated tags (and the collection's identity tag);
- check mode says "would update" and changes nothing.
"""

from __future__ import annotations

import datetime

from conftest import TRANSFER_PLAYBOOK, parse_recap, unique
from test_reports import manifest, rows_by_name
from test_transfer import write_inventory


def ec_key(name, **extra):
    key = {"name": name, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign", "verify"]}
    key.update(extra)
    return key


def run(lab, run_playbook, inventory, *args):
    return run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env, extra_args=list(args))


def changed(result):
    return sum(h.get("changed", 0) for h in parse_recap(result.output).values())


def test_stated_attributes_are_kept_in_place_and_a_disabled_key_is_still_known(lab, make_token, run_playbook, tmp_path):
    a, b = unique("lc-a"), unique("lc-b")
    token, kek = make_token(), unique("lc-kek")
    keys = [ec_key(a, tags={"owner": "payments", "cost": "1"}), ec_key(b)]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    first = run(lab, run_playbook, inventory)
    assert first.rc == 0, str(first)
    client = lab.key_client()
    before = client.get_key(a)
    assert before.properties.tags["owner"] == "payments" and "byok-fingerprint" in before.properties.tags

    # the inventory now states other tags, disables a, gives it an expiry and fewer operations; b is disabled outside
    expiry = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=400)).replace(microsecond=0)
    keys[0].update(tags={"owner": "treasury"}, enabled=False, expires_on=expiry.isoformat(), key_ops=["verify"])
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    client.update_key_properties(b, enabled=False)

    check = run(lab, run_playbook, inventory, "--check")
    assert check.rc != 0, str(check)  # b: see below
    assert "would update" in check.output and client.get_key(a).properties.tags["owner"] == "payments"

    second = run(lab, run_playbook, inventory, "--diff")
    # b, disabled outside the inventory, shows only its identity tag, which proves nothing: not "in place", the run fails
    assert second.rc != 0, str(second)
    rows = rows_by_name(manifest(tmp_path))
    assert rows[a]["result"] == "updated", rows[a]
    for text in ("enabled true -> false", "tags set owner=treasury", "key_ops [sign, verify] -> [verify]", "expires_on"):
        assert text in rows[a]["message"], rows[a]
    assert rows[b]["result"] == "not done" and "left disabled" in rows[b]["message"], rows[b]
    assert rows[b]["message"].startswith("cannot be compared: only the collection's identity tag says"), rows[b]
    # read independently: one version, in place, with the stated attributes (a disabled version is read from the list)
    versions = list(client.list_properties_of_key_versions(a))
    assert len(versions) == 1, [v.version for v in versions]
    props = versions[0]
    assert props.enabled is False and props.expires_on == expiry, props
    assert props.tags["owner"] == "treasury" and props.tags["cost"] == "1", props.tags  # append_tags: cost is kept
    assert props.tags["byok-fingerprint"] == before.properties.tags["byok-fingerprint"]
    assert not [p for p in client.list_properties_of_key_versions(b) if p.enabled], "b was enabled again"

    keys[1]["enabled"] = False  # the inventory now says what the vault holds of b
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    third = run(lab, run_playbook, inventory)
    assert third.rc == 0, str(third)
    assert changed(third) == 0, third.output[-4000:]
    rows = rows_by_name(manifest(tmp_path))
    assert rows[a]["result"] == "in place" and rows[a]["proof"] == "unverified: only the collection's own tag", rows[a]
    assert rows[b]["result"] == "in place" and rows[b]["proof"] == "unverified: only the collection's own tag", rows[b]
    assert len(list(client.list_properties_of_key_versions(a))) == 1


def test_append_tags_false_leaves_exactly_the_stated_tags(lab, make_token, run_playbook, tmp_path):
    name, token, kek = unique("lc-tags"), make_token(), unique("lc-kek")
    keys = [ec_key(name, tags={"owner": "payments", "old": "x"})]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run(lab, run_playbook, inventory).rc == 0
    keys[0].update(tags={"owner": "payments"}, append_tags=False)
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    again = run(lab, run_playbook, inventory)
    assert again.rc == 0, str(again)
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "updated" and "removed old" in row["message"], row
    tags = lab.key_client().get_key(name).properties.tags
    assert sorted(tags) == ["byok-fingerprint", "owner"], tags
    assert changed(run(lab, run_playbook, inventory)) == 0


def test_state_absent_deletes_softly_keeps_the_hsm_key_and_present_recovers(lab, make_token, run_playbook, tmp_path):
    name, token, kek = unique("lc-abs"), make_token(), unique("lc-kek")
    keys = [ec_key(name)]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run(lab, run_playbook, inventory).rc == 0
    client = lab.key_client()
    kid = client.get_key(name).id
    objects = token.objects()

    keys[0]["state"] = "absent"
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    check = run(lab, run_playbook, inventory, "--check")
    assert check.rc == 0 and "would delete" in check.output, str(check)
    assert client.get_key(name).id == kid
    gone = run(lab, run_playbook, inventory)
    assert gone.rc == 0, str(gone)
    assert rows_by_name(manifest(tmp_path))[name]["result"] == "deleted"
    deleted = client.get_deleted_key(name)  # soft-deleted, never purged
    assert deleted.properties.id == kid
    assert token.objects() == objects, "the HSM key must be kept"
    again = run(lab, run_playbook, inventory)
    assert again.rc == 0 and changed(again) == 0, str(again)
    assert rows_by_name(manifest(tmp_path))[name]["result"] == "absent"

    keys[0]["state"] = "present"
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    back = run(lab, run_playbook, inventory)
    assert back.rc == 0, str(back)
    assert rows_by_name(manifest(tmp_path))[name]["result"] == "recovered"
    assert client.get_key(name).id == kid and len(list(client.list_properties_of_key_versions(name))) == 1
    assert run(lab, run_playbook, inventory).rc == 0
    assert rows_by_name(manifest(tmp_path))[name]["result"] == "in place"


def test_destroy_hsm_key_destroys_it_only_after_the_vault_deleted_the_key(lab, make_token, run_playbook, tmp_path):
    name, kept, token, kek = unique("lc-destroy"), unique("lc-kept"), make_token(), unique("lc-kek")
    keys = [ec_key(name), ec_key(kept)]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run(lab, run_playbook, inventory).rc == 0

    def labels():
        return sorted(o["label"] for o in token.objects() if o["class"] == "Private Key")

    keys[0].update(state="absent", destroy_hsm_key=True)
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    check = run(lab, run_playbook, inventory, "--check")
    assert check.rc == 0 and "would be destroyed" in check.output, str(check)
    assert labels() == sorted([name, kept])
    gone = run(lab, run_playbook, inventory)
    assert gone.rc == 0, str(gone)
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "deleted" and "HSM key %s destroyed" % name in row["message"], row
    assert labels() == [kept], "only the retired key's HSM key goes"
    assert lab.key_client().get_deleted_key(name).name == name  # soft-deleted, never purged
    again = run(lab, run_playbook, inventory)
    assert again.rc == 0 and changed(again) == 0, str(again)
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "absent" and "the HSM holds no key labelled %s" % name in row["message"], row


def test_a_retirement_under_a_name_the_vault_holds_nothing_under_keeps_the_hsm_key(lab, make_token, run_playbook, tmp_path):
    """A wrong name (a typo, a renamed entry) finds nothing in the vault: that is no proof that the vault key holding the
    HSM key is gone, and the HSM key stays (the vault still holds it under its real name)."""
    name, token, kek = unique("lc-typo"), make_token(), unique("lc-kek")
    keys = [ec_key(name)]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run(lab, run_playbook, inventory).rc == 0
    keys[0].update(name=name + "-retired", label=name, state="absent", destroy_hsm_key=True)
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    retire = run(lab, run_playbook, inventory)
    row = rows_by_name(manifest(tmp_path))[name + "-retired"]
    assert "HSM key not destroyed: the vault holds no key named %s-retired" % name in row["message"], row
    assert name in [o["label"] for o in token.objects() if o["class"] == "Private Key"], str(retire)
    assert lab.key_client().get_key(name).properties.enabled


def test_a_lost_identity_tag_is_restored_and_the_disabled_key_stays_manageable(fresh_lab, make_token, run_playbook,
                                                                               tmp_path):
    """A portal edit replaced the key's tags (no byok-fingerprint left); disabling the key through the inventory writes the
    identity tag back in the same update, so later runs still know the disabled key (they converge), and the audit calls
    it unverified (only the collection's own tag), never ok."""
    from test_verify import VERIFY_PLAYBOOK, reports

    lab = fresh_lab  # the audit lists the vault's tagged keys: a vault of its own
    name, token, kek = unique("lc-tagless"), make_token(), unique("lc-kek")
    keys = [ec_key(name)]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run(lab, run_playbook, inventory).rc == 0
    client = lab.key_client()
    fingerprint = client.get_key(name).properties.tags["byok-fingerprint"]
    client.update_key_properties(name, tags={"owner": "portal"})
    keys[0]["enabled"] = False
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    first = run(lab, run_playbook, inventory)
    assert first.rc == 0, str(first)
    versions = list(client.list_properties_of_key_versions(name))
    assert len(versions) == 1 and not versions[0].enabled, versions
    assert versions[0].tags == {"owner": "portal", "byok-fingerprint": fingerprint}, versions[0].tags
    again = run(lab, run_playbook, inventory)
    assert again.rc == 0 and changed(again) == 0, str(again)
    audit = run_playbook(VERIFY_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert audit.rc == 0, str(audit)
    doc, xml = reports(tmp_path)
    (row,) = doc["keys"]
    assert row["status"] == "unverified" and row["vault_identity"] is None and row["claimed_identity"] == fingerprint, row
    assert xml.get("failures") == "0" and xml.get("skipped") == "1"


def test_an_id_added_to_the_entry_of_a_key_in_place_is_named_never_taken_for_no_key(lab, make_token, run_playbook, tmp_path):
    """The token's key has another CKA_ID than the id now given: the row names both ids, and nothing is generated (a
    second key of the label) or imported."""
    name, token, kek = unique("lc-id"), make_token(), unique("lc-kek")
    keys = [ec_key(name)]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run(lab, run_playbook, inventory).rc == 0
    keys[0]["id"] = "aa"
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    again = run(lab, run_playbook, inventory)
    assert again.rc != 0, str(again)
    row = rows_by_name(manifest(tmp_path))[name]
    assert "has id " in row["message"] and "not aa as its entry gives" in row["message"], row
    assert "holds no key" not in row["message"], row
    assert len([o for o in token.objects() if o["class"] == "Private Key"]) == 1
    assert len(lab.versions(name)) == 1


def test_a_key_listed_again_is_recovered_with_the_stated_attributes_in_one_run(lab, make_token, run_playbook, tmp_path):
    name, token, kek = unique("lc-back"), make_token(), unique("lc-kek")
    keys = [ec_key(name, enabled=False)]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run(lab, run_playbook, inventory).rc == 0
    keys[0]["state"] = "absent"
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    assert run(lab, run_playbook, inventory).rc == 0
    keys[0].update(state="present", enabled=True, tags={"owner": "back"})
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    back = run(lab, run_playbook, inventory)
    assert back.rc == 0, str(back)
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "recovered" and "its attributes updated: enabled false -> true" in row["message"], row
    key = lab.key_client().get_key(name)
    assert key.properties.enabled and key.properties.tags["owner"] == "back"
    again = run(lab, run_playbook, inventory)
    assert again.rc == 0 and changed(again) == 0, str(again)
