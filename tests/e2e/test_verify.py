# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read-only audit, playbook verify (REAL SoftHSM2 tokens, the REAL lab vault changed behind the inventory's back
with the real SDK, REAL ansible-playbook runs): a clean fleet exits 0; each kind of drift is found, named and makes the
run fail; the JSON and JUnit XML reports say the same; nothing in the vault or the HSM changes.
"""

from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET

from conftest import ROOT, TRANSFER_PLAYBOOK, unique
from test_transfer import write_inventory

VERIFY_PLAYBOOK = ROOT / "playbooks" / "verify.yml"


def ec_key(name, **extra):
    key = {"name": name, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign", "verify"]}
    key.update(extra)
    return key


def reports(tmp_path):
    """The newest audit's JSON document and JUnit XML root."""
    found = sorted((tmp_path / "manifests").glob("byok-verify-*.json"))
    assert found, "no audit report written"
    doc = json.loads(found[-1].read_text())
    return doc, ET.parse(str(found[-1].with_suffix(".xml"))).getroot()


def state(client, names):
    """What an audit must never change: each key's versions with their enabled flag, tags and expiry."""
    out = {}
    for name in names:
        out[name] = sorted((p.version, p.enabled, tuple(sorted((p.tags or {}).items())), p.expires_on)
                           for p in client.list_properties_of_key_versions(name))
    return out


def test_verify_passes_a_clean_fleet_and_names_each_drift_and_changes_nothing(fresh_lab, make_token, run_playbook, tmp_path):
    lab = fresh_lab  # a vault of its own: every key another test leaves in a shared vault carries the identity tag
    a, b, c, d = (unique("vf-%s" % x) for x in "abcd")
    token, kek = make_token(), unique("vf-kek")
    keys = [ec_key(a, tags={"owner": "payments"}), ec_key(b), ec_key(c), ec_key(d)]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    moved = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert moved.rc == 0, str(moved)

    clean = run_playbook(VERIFY_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert clean.rc == 0, str(clean)
    doc, xml = reports(tmp_path)
    assert not doc["drift"] and [r["status"] for r in doc["keys"]] == ["ok"] * 4, doc["keys"]
    assert {r["proof"] for r in doc["keys"]} == {"fingerprint of the vault public key"}
    assert xml.get("tests") == "4" and xml.get("failures") == "0"

    # behind the inventory's back: a's tag changed, b disabled, c expiring in 10 days, d deleted, a stranger tagged
    client = lab.key_client()
    tag = client.get_key(a).properties.tags["byok-fingerprint"]
    client.update_key_properties(a, tags={"owner": "someone-else", "byok-fingerprint": tag})
    client.update_key_properties(b, enabled=False)
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=10)).replace(microsecond=0)
    client.update_key_properties(c, expires_on=soon)
    client.begin_delete_key(d).wait()
    stranger = unique("vf-stranger")
    client.create_ec_key(stranger, hardware_protected=True, tags={"byok-fingerprint": "00" * 32})
    before = state(client, [a, b, c, stranger])
    objects = token.objects()

    drifted = run_playbook(VERIFY_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert drifted.rc != 0, str(drifted)
    doc, xml = reports(tmp_path)
    rows = dict((r["name"], r) for r in doc["keys"])
    assert doc["drift"] and all(rows[n]["status"] == "drift" for n in (a, b, c, d, stranger)), doc["keys"]
    assert any("tags set owner=payments" in f for f in rows[a]["findings"]), rows[a]
    assert any("disabled in the vault" in f for f in rows[b]["findings"]), rows[b]
    assert rows[b]["proof"] == "unverifiable: only the collection's own tag", rows[b]
    assert any("expires on %s, within 30 days" % soon.strftime("%Y-%m-%d") in f for f in rows[c]["findings"]), rows[c]
    assert any("soft-deleted" in f for f in rows[d]["findings"]), rows[d]
    assert any("no inventory entry names it" in f for f in rows[stranger]["findings"]), rows[stranger]
    assert xml.get("failures") == "5", ET.tostring(xml)
    failures = [case.get("name") for case in xml.iter("testcase") if case.find("failure") is not None]
    assert len(failures) == 5 and any(a in n for n in failures)
    for text in ("tags set owner=payments", "disabled in the vault", "no inventory entry names it"):
        assert text in drifted.output, text
    # read-only: the vault and the token are as they were
    assert state(client, [a, b, c, stranger]) == before
    assert token.objects() == objects
