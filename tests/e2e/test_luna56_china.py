# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rest of Microsoft's supported-HSM table, end to end: Luna 5/6 (Key Export variant only), and Azure China.

Luna 6 tokens are REAL SoftHSM2 tokens behind the test shim (tests/pkcs11_shim), which makes them look like a Luna 6:
manufacturer "Safenet, Inc.", model "LunaSA", firmware 6.10, no CKM_RSA_AES_KEY_WRAP (0x1054), and Luna's vendor
CKM_AES_KWP (0x80000171) in place of CKM_AES_KEY_WRAP_PAD.  The cloning token also refuses, as a Luna cloning model
or a Key Export partition with policy 1 "Allow private key wrapping" off does, to wrap any private key
(CKR_KEY_NOT_WRAPPABLE).

    luna6ke     playbooks/transfer.yml, vendor luna: profile luna56, two-step wrap with 0x80000171, imported into the lab
    luna6clone  the same run: refused at login (a probe wrap of a session key), before any key is generated
    China       a vault in *.vault.azure.cn is refused by the plan; byok_kek_fetch and keyvault_import refuse
                cloud_environment AzureChinaCloud before any request; nothing is created anywhere
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import (SHIM_LIB, SOFTHSM_LIB, TRANSFER_PLAYBOOK, assert_one_line_failure, assert_says_how_to_fix, luna_client, new_token,
                      testing, unique)
from test_key_matrix import failure_of, playbook, task_results
from test_transfer import report_rows

CKR_KEY_NOT_WRAPPABLE = "0x69"


def luna6_env(token, chrystoki: Path, call_log: Path, cloning: bool) -> dict:
    env = {"SOFTHSM2_CONF": str(token.conf), "BYOK_SHIM_TARGET": SOFTHSM_LIB, "BYOK_SHIM_FIRMWARE": "6.10",
           "BYOK_SHIM_MANUFACTURER": "Safenet, Inc.", "BYOK_SHIM_MODEL": "LunaSA", "BYOK_SHIM_COMBINED": "0",
           "BYOK_SHIM_LUNA_KWP": "1", "BYOK_SHIM_CALL_LOG": str(call_log), "ChrystokiConfigurationPath": str(chrystoki)}
    if cloning:
        env["BYOK_SHIM_PRIVATE_WRAP_RV"] = CKR_KEY_NOT_WRAPPABLE
    return env


def transfer_inventory(path: Path, lab, hosts: dict, vaults: dict, azure: dict = None) -> Path:
    """hosts: {name: (token, environment, byok_keys)}; vaults: byok_vaults."""
    hsm_hosts = {name: dict(testing.token_vars(token, keys), byok_hsm_environment=env) for name, (token, env, keys) in hosts.items()}
    return testing.write_inventory(path, hsm_hosts, vaults, testing.lab_azure(lab.env, **(azure or {})), path.parent / "manifests",
                                   hsm_vars={"byok_hsm_vendor": "luna", "byok_pkcs11_module": str(SHIM_LIB)})


@pytest.fixture(scope="module")
def luna6_run(lab, base_env, tmp_path_factory):
    work = tmp_path_factory.mktemp("luna6")
    chrystoki = luna_client(work)
    kek = unique("l6-kek")
    tokens, logs, keys, hosts = {}, {}, {}, {}
    for host, cloning in (("luna6ke", False), ("luna6clone", True)):
        tokens[host] = new_token(work / ("token-%s" % host), base_env)
        logs[host] = work / ("calls-%s.log" % host)
        keys[host] = [{"name": unique("l6-%s-rsa" % host[5:]), "vault": "premium", "key_type": "RSA", "key_size": 3072,
                       "key_ops": ["sign", "verify"]},
                      {"name": unique("l6-%s-ec" % host[5:]), "vault": "premium", "key_type": "EC", "curve": "P-256",
                       "key_ops": ["sign", "verify"]}]
        hosts[host] = (tokens[host], luna6_env(tokens[host], chrystoki, logs[host], cloning), keys[host])
    vaults = {"premium": {"url": lab.env["LAB_VAULT_PREMIUM"], "type": "premium", "kek_name": kek, "kek_size": 2048}}
    inventory = transfer_inventory(work / "inventory.yml", lab, hosts, vaults)
    run = playbook(base_env, work, TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    (work / "run.log").write_text(run.output)
    return {"run": run, "tokens": tokens, "logs": logs, "keys": keys, "kek": kek, "work": work}


def test_luna6_key_export_transfers_with_the_two_step_wrap(luna6_run, lab):
    run = luna6_run["run"]
    assert run.recap.get("luna6ke", {}).get("failed") == 0, str(run)
    rows = report_rows(run.output)
    token = luna6_run["tokens"]["luna6ke"]
    for key in luna6_run["keys"]["luna6ke"]:
        name = key["name"]
        assert rows.get(name, {}).get("result") == "transferred" and rows[name]["mark"] == "match", (name, rows.get(name))
        # the vault's key is the HSM's key (pkcs11-tool on the token against the lab's own JWK)
        assert lab.vault_key_sha256(name) == token.public_key_sha256(name), name
        versions = lab.keys("premium")[name]["versions"]
        assert len(versions) == 1 and versions[0]["origin"] == "byok", versions
    calls = luna6_run["logs"]["luna6ke"].read_text()
    wraps = [line.split("mechanism=")[1].split()[0] for line in calls.splitlines() if "C_WrapKey begin" in line]
    # every private key went through Luna's CKM_AES_KWP, the AES key through OAEP; never the one-shot 0x1054
    assert "0x80000171" in wraps and "0x9" in wraps and "0x1054" not in wraps, wraps
    # the audit manifest: profile luna56 (from the token's firmware), the two-step wrap
    rows = {r["name"]: r for m in (luna6_run["work"] / "manifests").glob("*.json") for r in json.loads(m.read_text())["keys"]}
    for key in luna6_run["keys"]["luna6ke"]:
        row = rows[key["name"]]
        assert row["wrap_method"] == "two_step" and row["token"]["vendor"] == "luna56", row
        assert row["token"]["model"] == "LunaSA" and row["token"]["firmware_version"] == "6.10", row["token"]


def test_luna6_cloning_is_refused_before_any_key_is_generated(luna6_run, lab):
    run = luna6_run["run"]
    assert run.recap.get("luna6clone", {}).get("failed", 0) >= 1 or "luna6clone" not in report_rows(run.output), str(run)
    text = " ".join(run.output.split())
    for words in ("partition '%s'" % luna6_run["tokens"]["luna6clone"].label, "CKR_KEY_NOT_WRAPPABLE", "cloning",
                  "Allow private key wrapping", "Key Export", "nothing was generated"):
        assert words in text, "the refusal does not say %r:\n%s" % (words, run.output[-8000:])
    assert luna6_run["tokens"]["luna6clone"].objects() == [], "refused, yet the partition holds objects"
    calls = luna6_run["logs"]["luna6clone"].read_text()
    # one EC P-256 session pair for the probe wrap, and no other key pair: neither target key was generated
    pairs = [line.split("mechanism=")[1].split()[0] for line in calls.splitlines() if "C_GenerateKeyPair begin" in line]
    assert pairs == ["0x1040"], pairs
    held = lab.keys("premium")
    for key in luna6_run["keys"]["luna6clone"]:
        assert key["name"] not in held, key["name"]


def test_china_vault_refused_by_the_plan(lab, base_env, make_token, tmp_path):
    chrystoki = luna_client(tmp_path)
    token = make_token()
    kek = unique("cn-kek")
    name = unique("cn-rsa")
    vaults = {"china": {"url": "https://contoso-byok.vault.azure.cn", "kek_name": kek},
              "premium": {"url": lab.env["LAB_VAULT_PREMIUM"], "type": "premium", "kek_name": kek}}
    hosts = {"hsm1": (token, dict(token.env, BYOK_SHIM_TARGET=SOFTHSM_LIB, BYOK_SHIM_FIRMWARE="7.4"),
                      [{"name": name, "vault": "china", "key_type": "RSA", "key_size": 2048},
                       {"name": name + "-lab", "vault": "premium", "key_type": "RSA", "key_size": 2048}])}
    inventory = transfer_inventory(tmp_path / "inventory.yml", lab, hosts, vaults)
    run = playbook(base_env, tmp_path, TRANSFER_PLAYBOOK, inventory, extra_env=dict(lab.azure_env, ChrystokiConfigurationPath=str(chrystoki)))
    assert run.rc != 0, str(run)
    lines = [" ".join(line.split()) for line in run.output.splitlines() if "vault.azure.cn" in line]
    assert any("byok_vaults.china.url" in line and "Azure China 21Vianet" in line and "does not offer BYOK" in line
               and "byok_azure.allow_unsupported_clouds" in line for line in lines), run.output[-6000:]
    assert token.objects() == [], "the plan refused, yet the token holds objects"
    assert kek not in lab.keys("premium"), "the plan refused, yet a KEK was created"


@pytest.mark.parametrize("module", ["byok_kek_fetch", "keyvault_import"])
def test_china_refused_by_the_modules(lab, run_module, tmp_path, module):
    name = unique("cn-mod")
    byok = tmp_path / "k.byok"
    byok.write_text("{}")
    extra = {"name": name, "key_size": 2048} if module == "byok_kek_fetch" else \
        {"name": name, "byok_file": str(byok), "key_type": "RSA", "key_size": 2048}
    # the lab vault reached "through" Azure China: refused before any token request or vault call
    args = dict(lab.azure_args(), cloud_environment="AzureChinaCloud", **extra)
    run = run_module(module, args, env=lab.azure_env)
    msg = assert_one_line_failure(run, lab.env["LAB_VAULT_PREMIUM"].lower().rstrip("/"), "AzureChinaCloud",
                                  "does not offer BYOK", "allow_unsupported_clouds")
    assert_says_how_to_fix(msg)
    # and a *.vault.azure.cn URL with the default cloud_environment
    run = run_module(module, dict(args, vault_url="https://contoso.vault.azure.cn", cloud_environment="AzureCloud"),
                     env=lab.azure_env)
    assert_one_line_failure(run, "https://contoso.vault.azure.cn", "Azure China 21Vianet", "allow_unsupported_clouds")
    assert name not in lab.keys("premium")


ROLE_PLAYBOOK = """
- name: Generate with the luna role (no KEK, generate only)
  hosts: hsm_hosts
  gather_facts: false
  tasks:
    - name: Run the luna role
      ansible.builtin.include_role:
        name: byok.keyvault.luna
"""


def test_luna_role_preflight_reports_the_case_it_found(base_env, tmp_path):
    chrystoki = luna_client(tmp_path)
    hosts, tokens = {}, {}
    for host, cloning in (("ke", False), ("clone", True)):
        tokens[host] = new_token(tmp_path / ("token-%s" % host), base_env)
        hosts[host] = {"luna_pkcs11_module": str(SHIM_LIB), "luna_token_label": tokens[host].label,
                       "luna_user_pin": tokens[host].pin,
                       "luna_environment": luna6_env(tokens[host], chrystoki, tmp_path / ("calls-%s" % host), cloning),
                       "luna_keys": [{"label": unique("l6r-%s" % host), "key_type": "EC", "curve": "P-256"}]}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"vars": {"ansible_connection": "local",
                                                      "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                                             "children": {"hsm_hosts": {"hosts": hosts}}}}))
    (tmp_path / "role.yml").write_text(ROLE_PLAYBOOK)
    run = playbook(base_env, tmp_path, tmp_path / "role.yml", inventory)
    reports = {r["host"]: r["result"].get("msg", "") for r in task_results(run.output) if r["task"].endswith("Report the partition")}
    assert "Thales Luna 5/6 (Key Export)" in reports.get("ke", "") and "private-key wrapping allowed" in reports["ke"], reports
    assert "firmware 6.10" in reports["ke"] and "model LunaSA" in reports["ke"], reports
    assert "private-key wrapping refused" in reports.get("clone", "") and "CKR_KEY_NOT_WRAPPABLE" in reports["clone"] \
        and "cloning" in reports["clone"], reports
    # the KE partition holds its key pair; the cloning one refused at "Generate", with nothing on the partition
    assert run.recap["ke"]["failed"] == 0 and len(tokens["ke"].objects()) == 2, (run.recap, tokens["ke"].objects())
    failure = failure_of(run.output, "clone")
    assert "Generate the target keys" in failure["task"] and "nothing was generated" in failure["result"]["msg"], failure
    assert tokens["clone"].objects() == []
