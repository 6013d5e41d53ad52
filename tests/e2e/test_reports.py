# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report of playbooks/transfer.yml says what happened, and only that: its rows are derived from what each step did
for each key (REAL SoftHSM2 tokens, the REAL lab vault, REAL ansible-playbook runs).

- a --limit that leaves the controller out still prints the table, writes the manifest and fails the run when a key
  failed; the keys of hosts outside the limit are "not done", never ok;
- each row names its proof: the vault's JWK, a KCV the vault computed, or only the collection's own tag (unverified);
- the signature check of byok_verify_signature is in the rows and the manifest;
- a key the vault holds is never reported failed or versionless because another step failed, and a vault that cannot
  be read marks only its own keys, with its own message;
- the manifest says which run, when, where, with which versions and under which KEK;
- the table fits 80 columns (one line per key) and shows more columns on a wider terminal.
"""

from __future__ import annotations

import json
import re
import socket

import yaml

from conftest import ROOT, TRANSFER_PLAYBOOK, unique
from test_transfer import report_rows, write_inventory

PROOF_JWK = "fingerprint from the vault's JWK"
PROOF_VAULT_KCV = "KCV computed by the vault"
PROOF_TAG = "unverified: only the collection's own tag"


def manifest(tmp_path):
    """The JSON manifest of the last run (the inventory's byok_manifest_dir is tmp_path/manifests)."""
    files = sorted((tmp_path / "manifests").glob("*.json"), key=lambda p: p.stat().st_mtime)
    assert files, "no manifest was written in %s" % (tmp_path / "manifests")
    return json.loads(files[-1].read_text())


def rows_by_name(document):
    return {r["name"]: r for r in document["keys"]}


def table_block(output):
    """The lines the YAML callback printed for the table task (between its TASK line and the next TASK line)."""
    m = re.search(r"TASK \[(?:[^\]]*: )?Keys, HSM hosts and vault versions\][^\n]*\n(.*?)\n(?:TASK|PLAY) \[", output, re.S)
    assert m, "no report table in the output:\n%s" % output[-6000:]
    return [line for line in m.group(1).splitlines() if line.strip()]


def mhsm_vault(lab, kek_name):
    return {"url": lab.env["LAB_VAULT_MHSM"], "type": "managed_hsm", "kek_name": kek_name, "kek_size": 3072}


def closed_port():
    """A port nothing listens on (bound, then closed: connecting to it is refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_limit_with_a_failing_wrap_reports_fails_and_says_not_done_for_hosts_outside(lab, make_token, run_playbook, tmp_path):
    a_key, b_key, kek = unique("rp-lim-a"), unique("rp-lim-b"), unique("rp-lim-kek")
    hosts = {
        "hsm-a": (make_token(), [{"name": a_key, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign"]}]),
        "hsm-b": (make_token(), [{"name": b_key, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign"]}]),
    }
    inventory = write_inventory(tmp_path / "inventory.yml", lab, hosts, kek)
    data = json.loads(inventory.read_text())
    # SoftHSM 2.6.1 has no CKM_RSA_AES_KEY_WRAP: asking hsm-a for the one-shot wrap makes its wrap fail
    data["all"]["children"]["byok_hsm_hosts"]["hosts"]["hsm-a"]["byok_wrap_method"] = "combined"
    inventory.write_text(json.dumps(data))

    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env, extra_args=["--limit", "hsm-a"])
    assert run.rc != 0, "a failed wrap must fail the run, also under --limit:\n%s" % run
    rows = report_rows(run.output)
    assert rows[a_key]["result"].startswith("failed"), rows
    document = manifest(tmp_path)
    by_name = rows_by_name(document)
    assert by_name[a_key]["result"] == "failed" and by_name[a_key]["host"] == "hsm-a", by_name[a_key]
    assert "wrap" in by_name[a_key]["message"].lower(), by_name[a_key]
    assert by_name[b_key]["result"] == "not done" and by_name[b_key]["host"] == "hsm-b", by_name[b_key]
    assert by_name[b_key]["message"] == "not in this run's --limit" and by_name[b_key]["in_run"] is False, by_name[b_key]
    assert rows[b_key]["result"].startswith("not done"), rows
    assert a_key not in lab.keys("premium") and b_key not in lab.keys("premium")


def test_limit_refuses_a_vault_key_a_host_outside_it_lists(lab, make_token, run_playbook, tmp_path):
    """hsm-a and hsm-b list one vault key: the plan refuses it without a limit, and must still refuse it with --limit hsm-a
    (else hsm-a's key becomes the current version of the vault key hsm-b transfers); nothing is touched."""
    name, kek = unique("rp-lim-dup"), unique("rp-lim-kek")
    key = {"name": name, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign"]}
    token_a = make_token()
    hosts = {"hsm-a": (token_a, [dict(key)]), "hsm-b": (make_token(), [dict(key, name=name.upper())])}
    inventory = write_inventory(tmp_path / "inventory.yml", lab, hosts, kek)
    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env, extra_args=["--limit", "hsm-a"])
    assert run.rc != 0, "the plan let hsm-a take a vault key hsm-b lists:\n%s" % run
    assert ("hsm-a: byok_keys[0] (%s).name: vault key '%s'" % (name, name)) in run.output, run.output[-3000:]
    assert "outside this run's --limit" in run.output, run.output[-3000:]
    assert name not in lab.keys("premium") and kek not in lab.keys("premium")
    assert token_a.objects() == [], token_a.objects()


def test_a_manifest_that_cannot_be_written_still_prints_the_table_and_fails_the_run(run_playbook, tmp_path):
    """The keys have moved by the time the report writes the manifest: a write that fails must not hide what happened to
    them; the table is printed, says the manifest was not written, and the run fails saying why."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    playbook = tmp_path / "report.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Report", "hosts": "localhost", "gather_facts": False,
                                         "vars": {"byok_report_hosts": [], "byok_manifest_dir": str(blocker / "manifests")},
                                         "roles": ["byok.keyvault.report"]}]))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    run = run_playbook(playbook, inventory)
    assert run.rc != 0, str(run)
    assert "audit manifest: NOT WRITTEN: cannot write the audit manifest" in run.output, run.output[-3000:]
    assert "Fail the run when its audit manifest could not be written" in run.output, run.output[-3000:]


def proof_inventory(lab, make_token, tmp_path, names, kek_names, extra_vars=None):
    """hsm1: an RSA key that may sign, an AES key that may only wrap (no encrypt: the vault computes no KCV) and an AES key
    that may encrypt, into the Managed HSM flavour of the lab (AES needs a Managed HSM)."""
    rsa, aes_wrap, aes_enc = names
    keys = [{"name": rsa, "vault": "mhsm", "key_type": "RSA", "key_size": 2048, "key_ops": ["sign", "verify"]},
            {"name": aes_wrap, "vault": "mhsm", "key_type": "oct", "key_size": 256, "key_ops": ["wrapKey", "unwrapKey"]},
            {"name": aes_enc, "vault": "mhsm", "key_type": "oct", "key_size": 256,
             "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey"]}]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (make_token(), keys)}, kek_names["premium"],
                                extra_vars=extra_vars)
    data = json.loads(inventory.read_text())
    data["all"]["vars"]["byok_vaults"]["mhsm"] = mhsm_vault(lab, kek_names["mhsm"])
    inventory.write_text(json.dumps(data))
    return inventory


def test_each_row_names_its_proof_and_an_aes_key_without_encrypt_is_unverified(lab, make_token, run_playbook, tmp_path):
    names = (unique("rp-rsa"), unique("rp-aeswrap"), unique("rp-aesenc"))
    inventory = proof_inventory(lab, make_token, tmp_path, names, {"premium": unique("rp-kek"), "mhsm": unique("rp-kek")})
    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert run.rc == 0, str(run)
    rsa, aes_wrap, aes_enc = names
    rows = rows_by_name(manifest(tmp_path))
    assert rows[rsa]["proof"] == PROOF_JWK and rows[rsa]["match"] is True, rows[rsa]
    assert rows[aes_enc]["proof"] == PROOF_VAULT_KCV and rows[aes_enc]["match"] is True, rows[aes_enc]
    # the vault computes no KCV of a key that may not encrypt: right after its import, only the byok-kcv tag the
    # collection wrote says it is the key
    assert rows[aes_wrap]["proof"] == PROOF_TAG and rows[aes_wrap]["match"] is not True, rows[aes_wrap]
    table = json.loads(re.search(r"TASK \[(?:[^\]]*: )?Keys, HSM hosts and vault versions\].*?\n(?:ok|fatal): \[[^\]]+\] => "
                                 r"(\{.*?\n\})", run.output, re.S).group(1))["msg"]
    wrap_line = [line for line in table if line.startswith(aes_wrap)]
    assert len(wrap_line) == 1 and "unverified" in wrap_line[0] and " match " not in wrap_line[0], table
    assert any(line.startswith(aes_enc) and " match " in line for line in table), table
    assert any(line.startswith("unverified:") for line in table), table
    # the next run, the key in place, proves it: the vault's key wrap of a random value is the HSM key's
    again = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert again.rc == 0, str(again)
    row = rows_by_name(manifest(tmp_path))[aes_wrap]
    assert row["result"] == "in place" and row["proof"] == "AES key wrap computed by the vault" and row["match"] is True, row


def test_the_signature_check_is_in_the_rows_and_the_manifest(lab, make_token, run_playbook, tmp_path):
    names = (unique("rp-sig-rsa"), unique("rp-sig-aes"), unique("rp-sig-aes2"))
    inventory = proof_inventory(lab, make_token, tmp_path, names, {"premium": unique("rp-kek"), "mhsm": unique("rp-kek")},
                                extra_vars={"byok_verify_signature": True})
    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert run.rc == 0, str(run)
    rows = rows_by_name(manifest(tmp_path))
    assert rows[names[0]]["signature"].startswith("verified"), rows[names[0]]
    assert rows[names[1]]["signature"].startswith("not possible for AES"), rows[names[1]]
    assert re.search(r"%s .*signature: verified" % re.escape(names[0]), run.output.replace("\n", " ")), "no signature in the output"

    # without byok_verify_signature the rows say it was not asked (a second host and names, so that something moves)
    names2 = (unique("rp-nosig-rsa"), unique("rp-nosig-aes"), unique("rp-nosig-aes2"))
    inventory = proof_inventory(lab, make_token, tmp_path, names2, {"premium": unique("rp-kek"), "mhsm": unique("rp-kek")})
    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert run.rc == 0, str(run)
    rows = rows_by_name(manifest(tmp_path))
    assert all(rows[n]["signature"] == "not asked" for n in names2), [rows[n] for n in names2]


def test_a_failed_signature_after_the_import_keeps_the_version_and_fails_the_run(lab, make_token, run_playbook, tmp_path):
    """The vault cannot sign (500s past the retries): the key was imported and the vault holds it, so its row keeps the
    version and the fingerprint and says the signature failed; the run fails, as the proof asked for is missing."""
    name, kek = unique("rp-sigfail"), unique("rp-kek")
    keys = [{"name": name, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign", "verify"]}]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (make_token(), keys)}, kek,
                                extra_vars={"byok_verify_signature": True})
    lab.faults(next=["500"] * 8, method="POST", path="/sign")
    try:
        run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    finally:
        lab.faults(off=True)
    assert run.rc != 0, str(run)
    row = rows_by_name(manifest(tmp_path))[name]
    held = lab.key_client().get_key(name)
    assert row["result"] == "transferred" and row["kid"] == held.id, row
    assert row["vault_fingerprint"] == row["hsm_fingerprint"] and row["signature"].startswith("failed: "), row
    assert "the signature check asked for failed (hsm1/premium/%s)" % name in run.output, run.output[-3000:]
    # the next run, the key in place, asks for the signature again: now it is verified, and the run passes
    again = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert again.rc == 0, str(again)
    row = rows_by_name(manifest(tmp_path))[name]
    assert row["result"] == "in place" and row["signature"].startswith("verified"), row


def test_a_wrong_pin_never_hides_the_vault_version_of_a_key_in_place(lab, make_token, run_playbook, tmp_path):
    held, new = unique("rp-pin-held"), unique("rp-pin-new")
    token = make_token()
    kek = unique("rp-pin-kek")
    keys = [{"name": held, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign"]}]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    first = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert first.rc == 0, str(first)
    kid = lab.key_client().get_key(held).id

    keys.append({"name": new, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign"]})
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    data = json.loads(inventory.read_text())
    data["all"]["children"]["byok_hsm_hosts"]["hosts"]["hsm1"]["byok_user_pin"] = "0000" + token.pin[4:][::-1]
    inventory.write_text(json.dumps(data))
    second = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert second.rc != 0, str(second)
    rows = rows_by_name(manifest(tmp_path))
    assert rows[held]["result"] == "not done" and rows[held]["kid"] == kid, rows[held]
    assert rows[held]["match"] is not True, rows[held]
    assert rows[new]["result"] == "failed" and rows[new]["kid"] is None, rows[new]
    assert "%s (hsm1, not done): %s" % (held, kid) in second.output, "the details do not show the vault version:\n%s" % second


def test_a_vault_that_cannot_be_read_marks_only_its_own_keys(lab, make_token, run_playbook, tmp_path):
    good_a, broken_a, good_b = unique("rp-vr-good"), unique("rp-vr-broken"), unique("rp-vr-other")
    kek = unique("rp-vr-kek")
    hosts = {
        "hsm1": (make_token(), [{"name": good_a, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign"]},
                                {"name": broken_a, "vault": "broken", "key_type": "EC", "curve": "P-256", "key_ops": ["sign"]}]),
        "hsm2": (make_token(), [{"name": good_b, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign"]}]),
    }
    inventory = write_inventory(tmp_path / "inventory.yml", lab, hosts, kek)
    data = json.loads(inventory.read_text())
    data["all"]["vars"]["byok_vaults"]["broken"] = {"url": "https://127.0.0.1:%d" % closed_port(), "type": "premium",
                                                    "kek_name": kek, "kek_size": 3072}
    inventory.write_text(json.dumps(data))
    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert run.rc != 0, str(run)
    rows = rows_by_name(manifest(tmp_path))
    assert rows[broken_a]["result"] == "failed" and rows[broken_a]["message"].startswith("vault broken could not be read"), rows[broken_a]
    # the other keys are not failed with the broken vault's text: hsm2's key moved, hsm1's other key was not done
    assert rows[good_b]["result"] == "transferred", rows[good_b]
    assert rows[good_a]["result"] == "not done", rows[good_a]
    assert "vault premium could not be read" not in json.dumps(rows), rows


def test_the_manifest_names_the_run_its_controller_versions_and_keks(lab, make_token, run_playbook, tmp_path):
    names = (unique("rp-man-rsa"), unique("rp-man-aes"), unique("rp-man-aes2"))
    keks = {"premium": unique("rp-kek"), "mhsm": unique("rp-kek")}
    inventory = proof_inventory(lab, make_token, tmp_path, names, keks)
    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert run.rc == 0, str(run)
    document = manifest(tmp_path)
    assert document["run_id"] and document["started"] and document["finished"], document
    assert document["started"] <= document["finished"], document
    assert document["controller"]["host"] == socket.gethostname() and document["controller"]["user"], document["controller"]
    # the version of the collection that ran (galaxy.yml of this checkout), and the ansible-core that ran it
    assert document["versions"]["collection"] == yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"], document["versions"]
    assert re.match(r"^2\.\d+", document["versions"]["ansible_core"]), document["versions"]
    mhsm = document["vaults"]["mhsm"]
    kek_id = lab.key_client("mhsm").get_key(keks["mhsm"]).id
    assert mhsm["kek_kid"] == kek_id and mhsm["kek_fingerprint"] == lab.vault_key_sha256(keks["mhsm"], "mhsm"), mhsm
    assert all(r["proof"] for r in document["keys"]), document["keys"]
    assert "premium" not in document["vaults"], document["vaults"]  # no key of this inventory goes there
    text = (tmp_path / "manifests" / ("byok-transfer-%s.txt" % document["run_id"])).read_text()
    assert "vault mhsm (%s): KEK %s, fingerprint %s" % (lab.env["LAB_VAULT_MHSM"], kek_id, mhsm["kek_fingerprint"]) in text, text


def test_the_table_fits_80_columns_one_line_per_key_and_a_wider_terminal_gets_more(lab, make_token, run_playbook, tmp_path):
    names = (unique("rp-tab-rsa-with-a-rather-long-name"), unique("rp-tab-aes"), unique("rp-tab-aes2"))
    inventory = proof_inventory(lab, make_token, tmp_path, names, {"premium": unique("rp-kek"), "mhsm": unique("rp-kek")})
    # the project's ansible.cfg prints results as YAML
    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=dict(lab.azure_env, COLUMNS="80", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml"))
    assert run.rc == 0, str(run)

    # every line of the table; the last line, the manifest's path, is as long as the path is
    lines = [line for line in table_block(run.output) if "audit manifest: " not in line]
    assert all(len(line) <= 80 for line in lines), "\n".join(line for line in lines if len(line) > 80)
    for name in names:  # one line per key (a long name is cut, ending in ~)
        assert len([line for line in lines if name[:16] in line]) == 1, lines
    narrow_header = [line for line in lines if "KEY" in line and "RESULT" in line]

    wide = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=dict(lab.azure_env, COLUMNS="160",
                                                                     ANSIBLE_CALLBACK_RESULT_FORMAT="yaml"))
    assert wide.rc == 0, str(wide)
    wide_header = [line for line in table_block(wide.output) if "KEY" in line and "RESULT" in line]
    assert narrow_header and wide_header and "PROOF" in wide_header[0] and "PROOF" not in narrow_header[0], (narrow_header,
                                                                                                             wide_header)
