# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/transfer.yml end to end: two HSM hosts (two REAL SoftHSM2 tokens) move an RSA-3072 and an EC P-256 key
into the REAL lab vault (Premium flavour), idempotently, and --check creates nothing anywhere."""

from __future__ import annotations

import json
import re

from conftest import TRANSFER_PLAYBOOK, SOFTHSM_LIB, unique


def write_inventory(path, lab, hosts, kek_name, extra_vars=None):
    """An inventory like playbooks/inventory/lab.yml, but with tokens and names of this test.

    ``hosts`` maps a host name to (token, [byok_keys items]); ``extra_vars`` go to all.vars.
    """
    hsm_hosts = {}
    for name, (token, keys) in hosts.items():
        hsm_hosts[name] = {
            "byok_token_label": token.label,
            "byok_user_pin": token.pin,
            "byok_hsm_environment": token.env,
            "byok_keys": keys,
        }
    inventory = {"all": {
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "byok_controller": "localhost",
            # the report role writes an audit manifest (default: next to the playbook, i.e. into the checkout)
            "byok_manifest_dir": str(path.parent / "manifests"),
            "byok_vaults": {"premium": {"url": lab.env["LAB_VAULT_PREMIUM"], "type": "premium", "kek_name": kek_name,
                                        "kek_size": 3072}},
            "byok_azure": {"auth_source": "env", "cloud_environment": lab.env["LAB_AUTHORITY"],
                           "ca_bundle": lab.env["LAB_CA"]},
        },
        "children": {
            "byok_hsm_hosts": {"vars": {"byok_hsm_vendor": "softhsm", "byok_pkcs11_module": SOFTHSM_LIB},
                               "hosts": hsm_hosts},
            "controllers": {"hosts": {"localhost": {}}},
        },
    }}
    inventory["all"]["vars"].update(extra_vars or {})
    path.write_text(json.dumps(inventory, indent=1))  # JSON is YAML
    return path


def two_hosts(make_token, rsa_name, ec_name):
    return {
        "hsm1": (make_token(), [{"name": rsa_name, "vault": "premium", "key_type": "RSA", "key_size": 3072,
                                 "key_ops": ["sign", "verify", "wrapKey", "unwrapKey"], "tags": {"owner": "e2e"}}]),
        "hsm2": (make_token(), [{"name": ec_name, "vault": "premium", "key_type": "EC", "curve": "P-256",
                                 "key_ops": ["sign", "verify"]}]),
    }


def report_rows(output):
    """The table of the "Report what moved" play: {key name: {type, host, label, vault, version, fp, mark, result}}.

    The playbooks run with ANSIBLE_CALLBACK_RESULT_FORMAT=json, so the debug task's result is a JSON object.
    """
    m = re.search(r"TASK \[(?:[^\]]*: )?Keys, HSM hosts and vault versions\].*?\n(?:ok|fatal): \[[^\]]+\] => (\{.*?\n\})", output, re.S)
    assert m, "no report table in the output:\n%s" % output[-6000:]
    lines = json.loads(m.group(1))["msg"]
    rows = {}
    for line in lines[1:]:
        m = re.match(r"^(?P<name>[0-9A-Za-z-]+)\s+(?P<type>(?:RSA|EC|AES)-\S+)\s+(?P<host>\S+)\s+(?P<label>\S+)\s+"
                     r"(?P<vault>\S+)\s+(?P<version>\S+)\s+"
                     r"(?P<fp>[0-9a-f]{16}|-)\s+(?P<mark>match|DIFFERS|-)\s+(?P<result>.+?)\s*$", line)
        if m:
            rows[m.group("name")] = m.groupdict()
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


def test_check_mode_creates_nothing(fresh_lab, make_token, run_playbook, tmp_path):
    rsa_name, ec_name, kek_name = unique("e2e-rsa3072"), unique("e2e-ecp256"), unique("e2e-kek")
    hosts = two_hosts(make_token, rsa_name, ec_name)
    inventory = write_inventory(tmp_path / "inventory.yml", fresh_lab, hosts, kek_name)

    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=fresh_lab.azure_env, check=True)
    assert run.rc == 0, str(run)
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

    second = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert second.rc == 0, str(second)
    for host, counts in second.recap.items():
        assert counts["changed"] == 0 and counts["failed"] == 0, "re-run changed %s: %s\n%s" % (host, counts, second)
    rows = report_rows(second.output)
    assert rows[rsa_name]["result"] == "in place" and rows[ec_name]["result"] == "in place", rows
    keys = lab.keys("premium")
    assert kek_name not in keys, "the re-run created a KEK although nothing had to move"
    assert len(keys[rsa_name]["versions"]) == 1 and len(keys[ec_name]["versions"]) == 1
