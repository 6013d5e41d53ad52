# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rotation by cryptoperiod (REAL SoftHSM2 tokens, a REAL lab vault of its own whose clock is set back so that a key is
old without waiting a year, the real SDK as an independent reader, REAL ansible-playbook runs).

- a key whose vault version is older than rotate_after gets exactly one new version, from a new HSM key LABEL.r2 (the
  old HSM key stays); check mode says what would rotate and why and changes nothing; a run after that changes nothing;
- an import that failed after the new HSM key was made is finished by the next run with that same key (no LABEL.r3,
  still exactly one new version);
- a key whose version is younger than its period is left alone.
"""

from __future__ import annotations

from conftest import TRANSFER_PLAYBOOK, parse_recap, unique
from test_reports import manifest, rows_by_name
from test_transfer import report_rows, write_inventory

DAY = 86400


def run(lab, run_playbook, inventory, *args):
    return run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env, extra_args=list(args))


def changed(result):
    return sum(h.get("changed", 0) for h in parse_recap(result.output).values())


def labels(token):
    return sorted(o["label"] for o in token.objects() if o["class"] == "Private Key")


def test_a_key_older_than_its_period_gets_one_new_version_from_a_new_hsm_key(fresh_lab, make_token, run_playbook, tmp_path):
    lab = fresh_lab
    old, young = unique("rot-old"), unique("rot-young")
    token, kek = make_token(), unique("rot-kek")
    keys = [{"name": old, "vault": "premium", "key_type": "EC", "key_ops": ["sign", "verify"], "rotate_after": "P365D"},
            {"name": young, "vault": "premium", "key_type": "EC", "key_ops": ["sign", "verify"], "rotate_after": "P2Y"}]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    lab.settings({"clock_offset": -400 * DAY})  # the vault's clock 400 days back: what it makes now is 400 days old
    try:
        first = run(lab, run_playbook, inventory)
    finally:
        lab.settings({"clock_offset": 0})
    assert first.rc == 0, str(first)
    client = lab.key_client()
    v1 = client.get_key(old)

    check = run(lab, run_playbook, inventory, "--check")
    assert check.rc == 0, str(check)
    rows = report_rows(check.output)  # check mode writes no manifest: the table says it
    assert rows[old]["result"] == "would rotate", rows[old]
    assert "older than P365D" in rows[old]["message"] and "%s.r2" % old in rows[old]["message"], rows[old]
    assert rows[young]["result"] == "in place", rows[young]  # 400 days are not two years
    assert len(list(client.list_properties_of_key_versions(old))) == 1
    assert labels(token) == sorted([old, young]), "check mode made an HSM key"

    # the new version's import fails (every PUT answered 500) after its HSM key was made
    lab.faults(next=["500"] * 8, method="PUT")
    try:
        failed = run(lab, run_playbook, inventory)
    finally:
        lab.faults(off=True)
    assert failed.rc != 0, str(failed)
    assert len(list(client.list_properties_of_key_versions(old))) == 1
    assert labels(token) == sorted([old, old + ".r2", young])

    rotated = run(lab, run_playbook, inventory)
    assert rotated.rc == 0, str(rotated)
    rows = rows_by_name(manifest(tmp_path))
    assert rows[old]["result"] == "transferred" and rows[old]["label"] == old + ".r2", rows[old]
    assert rows[young]["result"] == "in place", rows[young]
    versions = list(client.list_properties_of_key_versions(old))
    assert len(versions) == 2, [v.version for v in versions]
    v2 = client.get_key(old)
    assert v2.properties.version != v1.properties.version
    # the new version is the new HSM key (its public key, read from the token), the old HSM key is kept
    assert v2.properties.tags["byok-fingerprint"] == token.public_key_sha256(old + ".r2")
    assert v1.properties.tags["byok-fingerprint"] == token.public_key_sha256(old)
    assert labels(token) == sorted([old, old + ".r2", young])

    again = run(lab, run_playbook, inventory)
    assert again.rc == 0 and changed(again) == 0, str(again)
    rows = rows_by_name(manifest(tmp_path))
    assert rows[old]["result"] == "in place" and rows[old]["label"] == old + ".r2", rows[old]
    assert len(list(client.list_properties_of_key_versions(old))) == 2
    assert labels(token) == sorted([old, old + ".r2", young])


def test_two_runs_at_once_still_make_one_new_version(fresh_lab, make_token, run_playbook, tmp_path):
    import concurrent.futures

    lab = fresh_lab
    name, token, kek = unique("rot-two"), make_token(), unique("rot-kek")
    keys = [{"name": name, "vault": "premium", "key_type": "EC", "key_ops": ["sign"], "rotate_after": "P1Y"}]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    lab.settings({"clock_offset": -400 * DAY})
    try:
        assert run(lab, run_playbook, inventory).rc == 0
    finally:
        lab.settings({"clock_offset": 0})
    # two jobs of the same schedule (or two slices of one) find the same key over its period at the same time
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run(lab, run_playbook, inventory), range(2)))
    assert all(r.rc == 0 for r in results), [str(r) for r in results]
    client = lab.key_client()
    assert len(list(client.list_properties_of_key_versions(name))) == 2
    assert labels(token) == sorted([name, name + ".r2"])
    assert client.get_key(name).properties.tags["byok-fingerprint"] == token.public_key_sha256(name + ".r2")
