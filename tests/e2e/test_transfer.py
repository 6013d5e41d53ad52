# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/transfer.yml end to end: two HSM hosts (two REAL SoftHSM2 tokens) move an RSA-3072 and an EC P-256 key
into the REAL lab vault (Premium flavour), idempotently, and --check creates nothing anywhere."""

from __future__ import annotations

import hashlib
import json
import re

from conftest import ROOT, TRANSFER_PLAYBOOK, testing, unique


def write_inventory(path, lab, hosts, kek_name, extra_vars=None):
    """An inventory like playbooks/inventory/lab.yml, but with tokens and names of this test.

    ``hosts`` maps a host name to (token, [byok_keys items]); ``extra_vars`` go to all.vars.
    """
    # the report role writes an audit manifest (default: next to the playbook, i.e. into the checkout)
    return testing.write_inventory(path, {name: testing.token_vars(token, keys) for name, (token, keys) in hosts.items()},
                                   testing.lab_vaults(lab.env, kek_name, kek_size=3072), testing.lab_azure(lab.env),
                                   path.parent / "manifests", extra_vars=extra_vars)


def two_hosts(make_token, rsa_name, ec_name):
    return {
        "hsm1": (make_token(), [{"name": rsa_name, "vault": "premium", "key_type": "RSA", "key_size": 3072,
                                 "key_ops": ["sign", "verify", "wrapKey", "unwrapKey"], "tags": {"owner": "e2e"}}]),
        "hsm2": (make_token(), [{"name": ec_name, "vault": "premium", "key_type": "EC", "curve": "P-256",
                                 "key_ops": ["sign", "verify"]}]),
    }


#: the table's headers and the fields report_rows() gives them
TABLE_FIELDS = {"KEY": "name", "TYPE": "type", "HOST": "host", "HSM LABEL": "label", "VAULT": "vault", "VERSION": "version",
                "FINGERPRINT": "fp", "CHECK": "mark", "PROOF": "proof", "SIGNATURE": "signature", "RESULT": "result"}


def report_rows(output):
    """The table of the "Report what moved" play: {key name: {type, host, label, vault, version, fp, mark, result, ...}}.

    The playbooks run with ANSIBLE_CALLBACK_RESULT_FORMAT=json, so the debug task's result is a JSON object; the
    columns are found from the header line (the e2e runs have a wide COLUMNS, so every column is shown). result is
    the result without its note number ("failed [1]" -> "failed"), and message the text of that note (the reason printed
    under the table as "[1] failed: ...").
    """
    m = re.search(r"TASK \[(?:[^\]]*: )?Keys, HSM hosts and vault versions\].*?\n(?:ok|fatal): \[[^\]]+\] => (\{.*?\n\})", output, re.S)
    assert m, "no report table in the output:\n%s" % output[-6000:]
    lines = json.loads(m.group(1))["msg"]
    header = lines[0]
    starts = sorted((header.index(h), h) for h in TABLE_FIELDS if re.search(r"(^|  )%s(  |$)" % re.escape(h), header))
    rows = {}
    notes, number = {}, None
    for line in lines[1:]:
        note = re.match(r"^\[(\d+)\] (.*)$", line)
        if note:
            number = note.group(1)
            notes[number] = note.group(2)
        elif number and line.startswith(" "):
            notes[number] += " " + line.strip()  # a note wrapped over several lines
    for line in lines[1:]:
        if not line or line.startswith((" ", "[")) or len(line) < starts[-1][0]:
            continue
        cells = {}
        for i, (start, h) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else len(line)
            cells[TABLE_FIELDS[h]] = line[start:end].strip()
        if not re.match(r"^[0-9A-Za-z-]+~?$", cells.get("name", "")) or not cells.get("result"):
            continue
        note = re.search(r" \[(\d+)\]$", cells["result"])
        cells["message"] = notes.get(note.group(1), "") if note else ""
        cells["result"] = re.sub(r" \[\d+\]$", "", cells["result"])
        rows[cells["name"]] = cells
    return rows


def test_transfer_two_hosts_then_idempotent(lab, make_token, run_playbook, tmp_path):
    rsa_name, ec_name, kek_name = unique("e2e-rsa3072"), unique("e2e-ecp256"), unique("e2e-kek")
    hosts = two_hosts(make_token, rsa_name, ec_name)
    inventory = write_inventory(tmp_path / "inventory.yml", lab, hosts, kek_name)

    first = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert first.rc == 0, str(first)
    assert set(first.recap) >= {"hsm1", "hsm2", "localhost"}, str(first)
    for host in ("hsm1", "hsm2"):
        assert first.recap[host]["failed"] == 0 and first.recap[host]["changed"] > 0, \
            "first run of %s: %s\n%s" % (host, first.recap[host], first)

    rows = report_rows(first.output)
    assert set(rows) >= {rsa_name, ec_name}, "report table lacks the keys:\n%s" % first
    assert rows[rsa_name]["host"] == "hsm1" and rows[ec_name]["host"] == "hsm2", rows
    for name in (rsa_name, ec_name):
        assert rows[name]["result"] == "transferred", rows[name]
        assert rows[name]["mark"] == "match", "HSM and vault fingerprints differ for %s: %s" % (name, rows[name])

    # The vault: one version of each key, the KEK, and the keys are the HSM keys (fingerprints compared in full)
    keys = lab.keys("premium")
    assert kek_name in keys and keys[kek_name]["versions"][0]["key_ops"] == ["import"], keys.get(kek_name)
    client = lab.key_client()
    for host, name in (("hsm1", rsa_name), ("hsm2", ec_name)):
        # both sides computed here, independently of the collection: pkcs11-tool on the token, the SDK's JWK in the vault
        hsm_fp = hosts[host][0].public_key_sha256(name)
        assert lab.vault_key_sha256(name) == hsm_fp, "vault key %s is not the HSM key" % name
        assert rows[name]["fp"] == hsm_fp[:16], rows[name]
        current = client.get_key(name)
        assert rows[name]["version"] == current.properties.version[:12], (rows[name], current.id)
    rsa_key, ec_key = client.get_key(rsa_name), client.get_key(ec_name)
    assert rsa_key.key_type == "RSA-HSM" and ec_key.key_type == "EC-HSM", (rsa_key.key_type, ec_key.key_type)
    assert sorted(rsa_key.key_operations) == sorted(["sign", "verify", "wrapKey", "unwrapKey"]), rsa_key.key_operations
    assert sorted(ec_key.key_operations) == ["sign", "verify"], ec_key.key_operations
    assert (rsa_key.properties.tags or {}).get("owner") == "e2e", rsa_key.properties.tags

    # Second run: nothing to do anywhere
    second = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert second.rc == 0, str(second)
    for host, counts in second.recap.items():
        assert counts["changed"] == 0 and counts["failed"] == 0, "second run changed %s: %s\n%s" % (host, counts, second)
    rows2 = report_rows(second.output)
    for name in (rsa_name, ec_name):
        assert rows2[name]["result"] == "in place" and rows2[name]["mark"] == "match", rows2.get(name)
    keys = lab.keys("premium")
    for name in (rsa_name, ec_name, kek_name):
        assert len(keys[name]["versions"]) == 1, "%s has %d versions after two runs: %s" % (
            name, len(keys[name]["versions"]), keys[name]["versions"])

    # One key object pair per token: the second run generated nothing either
    for host, name in (("hsm1", rsa_name), ("hsm2", ec_name)):
        objects = hosts[host][0].objects()
        assert sorted(o["class"] for o in objects) == ["Private Key", "Public Key"], objects
        assert all(o.get("label") == name for o in objects), objects
        private = [o for o in objects if o["class"] == "Private Key"][0]
        access = private.get("access", "")
        # generated in the HSM, sensitive, and extractable only by wrapping (BYOK needs CKA_EXTRACTABLE)
        assert "sensitive" in access and "never extractable" not in access and "local" in access, private


def tree(base):
    """{relative path: sha256 (files) or "dir"} of everything under base (a missing base is an empty tree)."""
    if not base.exists():
        return {}
    return {str(p.relative_to(base)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(base.rglob("*"))}


def token_store(base):
    """tree() of a SoftHSM2 token directory, token.object without its first 8 bytes: SoftHSM 2.6 rewrites token.object
    on every login (C_Login) with its change counter increased; everything else of it must stay as it was."""
    out = tree(base)
    for p in base.rglob("token.object"):
        out[str(p.relative_to(base))] = hashlib.sha256(p.read_bytes()[8:]).hexdigest()
    return out


def lock_files_only(entries):
    """The collection's host-lock folder (byok-keyvault-locks-<uid>/*.lock, empty, meant to stay) filtered out."""
    return {p: h for p, h in entries.items() if not re.fullmatch(r"byok-keyvault-locks-\d+(/[^/]+\.lock)?", p)
            or (h not in ("dir", hashlib.sha256(b"").hexdigest()))}


def test_check_mode_creates_nothing(fresh_lab, make_token, run_playbook, tmp_path):
    rsa_name, ec_name, kek_name = unique("e2e-rsa3072"), unique("e2e-ecp256"), unique("e2e-kek")
    hosts = two_hosts(make_token, rsa_name, ec_name)
    inventory = write_inventory(tmp_path / "inventory.yml", fresh_lab, hosts, kek_name)
    manifest_dir = tmp_path / "manifests"
    # Every place the run may write is its own: TMPDIR (tempfile.gettempdir() of ansible and of the modules), ansible's
    # local and remote tmp, the working directory (tmp_path, which holds the inventory and the token dirs)
    run_tmp = tmp_path / "run-tmp"
    for d in ("tmpdir", "local", "remote"):
        (run_tmp / d).mkdir(parents=True)
    run_env = dict(fresh_lab.azure_env, TMPDIR=str(run_tmp / "tmpdir"), ANSIBLE_LOCAL_TEMP=str(run_tmp / "local"),
                   ANSIBLE_REMOTE_TMP=str(run_tmp / "remote"))
    tokens_before = {host: token_store(token.directory / "tokens") for host, (token, _keys) in hosts.items()}
    assert all(tokens_before.values()), tokens_before

    def others():
        """The rest of the working directory: not the run's tmp dirs, the lab's own state, the token stores."""
        return {p: h for p, h in tree(tmp_path).items()
                if not p.startswith(("run-tmp", fresh_lab.state_dir.name)) and "/tokens/" not in "/%s/" % p}

    outside_before = others()
    playbooks_before = tree(ROOT / "playbooks")

    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=run_env, check=True)
    assert run.rc == 0, str(run)

    # No manifest, no .byok, no temporary file anywhere the run could write, and the token stores untouched
    assert not manifest_dir.exists() or not any(manifest_dir.iterdir()), \
        "check mode wrote into the manifest dir: %s" % sorted(tree(manifest_dir))
    byok_files = [str(p) for base in (tmp_path, ROOT / "playbooks") for p in base.rglob("*.byok*")]
    assert not byok_files, "check mode wrote .byok files: %s" % byok_files
    left = {d: lock_files_only(tree(run_tmp / d)) for d in ("tmpdir", "local", "remote")}
    assert not any(left.values()), "check mode left files in the run's TMPDIR / ansible tmp dirs: %s" % left
    changed = sorted(set(outside_before.items()) ^ set(others().items()))
    assert not changed, "check mode changed files in its working directory: %s" % changed
    for host, (token, _keys) in hosts.items():
        after = token_store(token.directory / "tokens")
        assert after == tokens_before[host], "check mode changed the token store of %s: %s" % (
            host, sorted(set(tokens_before[host].items()) ^ set(after.items())))
    assert tree(ROOT / "playbooks") == playbooks_before, "check mode wrote next to the playbook"
    for host in ("hsm1", "hsm2"):
        assert run.recap[host]["failed"] == 0, str(run)
        assert run.recap[host]["changed"] > 0, "check mode does not report the pending transfer of %s:\n%s" % (host, run)
    rows = report_rows(run.output)
    assert set(rows) >= {rsa_name, ec_name}, "report table lacks the keys:\n%s" % run
    for name in (rsa_name, ec_name):
        assert rows[name]["result"] == "would transfer", rows[name]

    # Nothing on the tokens, nothing in any vault of the lab (no KEK either)
    for host in ("hsm1", "hsm2"):
        objects = hosts[host][0].objects()
        assert objects == [], "check mode created token objects on %s: %s" % (host, objects)
    for vault, state in fresh_lab.dump().items():
        assert state["keys"] == {}, "check mode created keys in vault %s: %s" % (vault, sorted(state["keys"]))


def test_rerun_after_kek_deletion_creates_no_kek(lab, make_token, run_playbook, tmp_path):
    """byok_kek_delete_after_run: the KEK lives only for the run that needs it; a re-run with every key in place
    makes no KEK at all (nothing to wrap), so it changes nothing and leaves no KEK behind."""
    rsa_name, ec_name, kek_name = unique("e2e-rsa3072"), unique("e2e-ecp256"), unique("e2e-kek")
    hosts = two_hosts(make_token, rsa_name, ec_name)
    inventory = write_inventory(tmp_path / "inventory.yml", lab, hosts, kek_name,
                                {"byok_kek_delete_after_run": True, "byok_kek_purge": True})

    first = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert first.rc == 0, str(first)
    keys = lab.keys("premium")
    # deleted and purged: a soft-deleted key would still be listed, with deleted set
    assert kek_name not in keys and len(keys[rsa_name]["versions"]) == 1 and len(keys[ec_name]["versions"]) == 1, sorted(keys)
    assert "KEK %s of vault premium: deleted and purged after the run (byok_kek_delete_after_run)" % kek_name in first.output

    second = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert second.rc == 0, str(second)
    for host, counts in second.recap.items():
        assert counts["changed"] == 0 and counts["failed"] == 0, "re-run changed %s: %s\n%s" % (host, counts, second)
    rows = report_rows(second.output)
    assert rows[rsa_name]["result"] == "in place" and rows[ec_name]["result"] == "in place", rows
    keys = lab.keys("premium")
    assert kek_name not in keys, "the re-run created a KEK although nothing had to move"
    assert len(keys[rsa_name]["versions"]) == 1 and len(keys[ec_name]["versions"]) == 1
