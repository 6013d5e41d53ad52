# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secure Key Release (REAL SoftHSM2 tokens, the REAL lab vault, the real SDK as an independent reader, REAL
ansible-playbook runs): an exportable key goes to the vault with its release policy, read back as the vault holds it;
a changed policy is updated in place (no new version), an immutable one is never replaced, and the plan refuses what
Azure would refuse before any HSM or vault work.
"""

from __future__ import annotations

import json

from conftest import TRANSFER_PLAYBOOK, parse_recap, unique
from test_reports import manifest, rows_by_name
from test_transfer import write_inventory

POLICY = {"version": "1.0.0", "anyOf": [{"authority": "https://sharedeus.eus.attest.azure.net", "allOf": [
    {"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"},
    {"claim": "x-ms-isolation-tee.x-ms-compliance-status", "equals": "azure-compliant-cvm"},
    {"claim": "x-ms-isolation-tee.x-ms-sevsnpvm-is-debuggable", "equals": False}]}]}


def as_text(node):
    """A policy with its claim values as text, as Key Vault answers them ("equals": false comes back as "false")."""
    if isinstance(node, list):
        return [as_text(v) for v in node]
    if isinstance(node, dict):
        return {k: as_text(v) for k, v in node.items()}
    if isinstance(node, bool):
        return "true" if node else "false"
    return node


def run(lab, run_playbook, inventory, *args):
    return run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env, extra_args=list(args))


def changed(result):
    return sum(h.get("changed", 0) for h in parse_recap(result.output).values())


def held_policy(client, name):
    """(exportable, policy document, immutable) of the vault's current version, read with the SDK."""
    props = client.get_key(name).properties
    policy = props.release_policy
    return props.exportable, as_text(json.loads(policy.encoded_policy)) if policy else None, policy.immutable if policy else None


def test_an_exportable_key_carries_its_release_policy_and_keeps_it_as_stated(lab, make_token, run_playbook, tmp_path):
    name, token, kek = unique("skr"), make_token(), unique("skr-kek")
    policy_file = tmp_path / "cvm-policy.json"
    policy_file.write_text(json.dumps(POLICY, indent=2))
    keys = [{"name": name, "vault": "premium", "key_type": "RSA", "key_size": 3072, "key_ops": ["wrapKey", "unwrapKey"],
             "exportable": True, "release_policy": str(policy_file)}]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    client = lab.key_client()

    check = run(lab, run_playbook, inventory, "--check")
    assert check.rc == 0, str(check)
    assert [k for k in client.list_properties_of_keys() if k.name == name] == []

    first = run(lab, run_playbook, inventory)
    assert first.rc == 0, str(first)
    assert rows_by_name(manifest(tmp_path))[name]["result"] == "transferred"
    assert held_policy(client, name) == (True, as_text(POLICY), False)
    again = run(lab, run_playbook, inventory)
    assert again.rc == 0 and changed(again) == 0, str(again)

    # another attestation authority, made immutable: one Update Key on the version in place
    moved = dict(POLICY, anyOf=[dict(POLICY["anyOf"][0], authority="https://sharedweu.weu.attest.azure.net")])
    keys[0].update(release_policy=moved, release_policy_immutable=True)
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    check = run(lab, run_playbook, inventory, "--check")
    assert check.rc == 0 and "would update" in check.output, str(check)
    assert held_policy(client, name) == (True, as_text(POLICY), False)
    second = run(lab, run_playbook, inventory)
    assert second.rc == 0, str(second)
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "updated", row
    assert ("release policy anyOf[0].authority https://sharedeus.eus.attest.azure.net -> https://sharedweu.weu.attest.azure.net; "
            "immutable false -> true") in row["message"], row
    assert held_policy(client, name) == (True, as_text(moved), True)
    assert len(list(client.list_properties_of_key_versions(name))) == 1
    assert changed(run(lab, run_playbook, inventory)) == 0

    # an immutable policy is never replaced: reported with Azure's reason, the vault unchanged
    keys[0].update(release_policy=POLICY)
    write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    refused = run(lab, run_playbook, inventory)
    assert refused.rc != 0, str(refused)
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "failed" and "AKV.SKR.1011" in row["message"], row
    assert held_policy(client, name) == (True, as_text(moved), True)


def test_the_plan_refuses_what_secure_key_release_would_refuse_before_any_work(lab, make_token, run_playbook, tmp_path):
    a, b, c = unique("skr-a"), unique("skr-b"), unique("skr-c")
    token, kek = make_token(), unique("skr-kek")
    broken = dict(POLICY, version="2.0")
    keys = [{"name": a, "vault": "premium", "key_type": "EC", "exportable": True},
            {"name": b, "vault": "premium", "key_type": "EC", "release_policy": POLICY},
            {"name": c, "vault": "premium", "key_type": "EC", "exportable": True, "release_policy": broken}]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    objects = token.objects()
    result = run(lab, run_playbook, inventory)
    assert result.rc != 0
    text = result.output.replace("\\n", "\n")
    assert "hsm1: byok_keys[0] (%s).release_policy: is missing: an exportable key needs a release policy" % a in text, text[-3000:]
    assert "hsm1: byok_keys[1] (%s).release_policy: is given for a key that is not exportable" % b in text
    assert 'hsm1: byok_keys[2] (%s).release_policy.version: "2.0" is not a policy version' % c in text
    # nothing happened: no HSM key, no KEK, no vault key
    assert token.objects() == objects
    names = [k.name for k in lab.key_client().list_properties_of_keys()]
    assert not set(names) & {a, b, c, kek}, names
