# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vendor roles (luna, nshield, generic_pkcs11) against REAL SoftHSM2 tokens, their .byok files imported into
the REAL lab vault with keyvault_import, and a second run that changes nothing.

One playbook run drives six HSM hosts at once (each its own token): the controller fetches the KEK, every HSM host
includes its vendor role, the controller imports the .byok files of the hosts that should succeed.

    luna74        roles/luna through the CKM_RSA_AES_KEY_WRAP shim, firmware 7.4: RSA-4096 and EC P-256, combined wrap
    luna72        roles/luna, firmware 7.2: refused, naming 7.3; nothing generated
    luna73        roles/luna, firmware 7.3, RSA-4096: refused, naming 7.4; nothing generated
    nshieldlegacy roles/nshield with nshield_legacy_method: refused (30 June 2021, the current method); nothing run
    nshieldpin    roles/nshield with PKCS11_USER_PIN in nshield_environment: refused (the task keyword environment puts
                  it on a command line); nothing run
    nshield       roles/nshield on SoftHSM: two-step wrap (no combined mechanism without the shim)
    generic       roles/generic_pkcs11, profile auto on SoftHSM: two_step and the zero-padding warning
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import SHIM_LIB, SOFTHSM_LIB, luna_client, unique
from test_key_matrix import VaultView, failure_of, new_token, playbook, task_results, token_fingerprints

PLAYBOOK = """
- name: Fetch the KEK on the controller
  hosts: controllers
  gather_facts: false
  tasks:
    - name: Fetch or create the KEK of the vault
      byok.keyvault.byok_kek_fetch:
        vault_url: "{{ vr_vault_url }}"
        vault_type: premium
        name: "{{ vr_kek_name }}"
        key_size: 2048
        dest: "{{ vr_work }}/kek.pem"
        auth_source: env
        cloud_environment: "{{ vr_authority }}"
        ca_bundle: "{{ vr_ca }}"
      register: vr_kek

- name: Generate and wrap with the vendor role of each HSM host
  hosts: hsm_hosts
  gather_facts: false
  strategy: free  # each host runs its own role without waiting for the others' tasks
  tasks:
    - name: Run the vendor role
      ansible.builtin.include_role:
        name: "{{ vr_role }}"

- name: Import the .byok files into the vault
  hosts: controllers
  gather_facts: false
  tasks:
    - name: Import the wrapped keys
      byok.keyvault.keyvault_import:
        vault_url: "{{ vr_vault_url }}"
        vault_type: premium
        keys: "{{ vr_imports }}"
        auth_source: env
        cloud_environment: "{{ vr_authority }}"
        ca_bundle: "{{ vr_ca }}"
      register: vr_import

    - name: Show the import result
      ansible.builtin.debug:
        var: vr_import
"""

KEK_KID = "{{ hostvars['localhost'].vr_kek.kid }}"
KEK_FP = "{{ hostvars['localhost'].vr_kek.fingerprint }}"

# host: (role, keys, expected outcome)
HOSTS = {
    "luna74": ("byok.keyvault.luna", [("RSA", 4096), ("EC", "P-256")], "ok"),
    "luna72": ("byok.keyvault.luna", [("EC", "P-256")], "firmware"),
    "luna73": ("byok.keyvault.luna", [("RSA", 4096)], "rsa4096"),
    "nshieldlegacy": ("byok.keyvault.nshield", [("EC", "P-256")], "legacy"),
    "nshieldpin": ("byok.keyvault.nshield", [("EC", "P-256")], "secret"),
    "nshield": ("byok.keyvault.nshield", [("RSA", 2048)], "ok"),
    "generic": ("byok.keyvault.generic_pkcs11", [("EC", "P-256"), ("RSA", 2048)], "ok"),
}
SUCCEEDING = [h for h, (_r, _k, outcome) in HOSTS.items() if outcome == "ok"]
FIRMWARE = {"luna74": "7.4", "luna72": "7.2", "luna73": "7.3"}
EXPECTED_WRAP = {"luna74": "combined", "nshield": "two_step", "generic": "two_step"}
EXPECTED_PROFILE = {"luna74": "luna", "nshield": "nshield", "generic": "softhsm"}


def _key_item(host, spec):
    kind, value = spec
    label = unique("vr-%s-%s" % (host, ("%s%s" % (kind, value)).lower().replace("-", "")))
    if kind == "EC":
        return {"label": label, "key_type": "EC", "curve": value}
    return {"label": label, "key_type": kind, "key_size": value}


def _host_vars(host, role, token, keys, work: Path, chrystoki: Path):
    out_dir = str(work / ("byok-%s" % host))
    common = {"vr_role": role}
    if role.endswith(".luna"):
        common.update({
            "luna_pkcs11_module": str(SHIM_LIB), "luna_token_label": token.label, "luna_user_pin": token.pin,
            "luna_environment": {"SOFTHSM2_CONF": str(token.conf), "BYOK_SHIM_TARGET": SOFTHSM_LIB,
                                 "BYOK_SHIM_FIRMWARE": FIRMWARE[host], "ChrystokiConfigurationPath": str(chrystoki)},
            "luna_keys": keys, "luna_kek_file": str(work / "kek.pem"), "luna_kek_kid": KEK_KID,
            "luna_kek_fingerprint": KEK_FP, "luna_byok_dir": out_dir})
    elif role.endswith(".nshield"):
        common.update({
            "nshield_pkcs11_module": SOFTHSM_LIB, "nshield_token_label": token.label, "nshield_user_pin": token.pin,
            "nshield_environment": {"SOFTHSM2_CONF": str(token.conf)}, "nshield_keys": keys,
            "nshield_kek_file": str(work / "kek.pem"), "nshield_kek_kid": KEK_KID, "nshield_kek_fingerprint": KEK_FP,
            "nshield_byok_dir": out_dir})
        if host == "nshieldlegacy":
            common["nshield_legacy_method"] = "KeyTransferRemote"
        if host == "nshieldpin":
            common["nshield_environment"]["PKCS11_USER_PIN"] = token.pin
    else:
        common.update({
            "generic_pkcs11_vendor": "auto", "generic_pkcs11_module": SOFTHSM_LIB,
            "generic_pkcs11_token_label": token.label, "generic_pkcs11_user_pin": token.pin,
            "generic_pkcs11_environment": {"SOFTHSM2_CONF": str(token.conf)}, "generic_pkcs11_keys": keys,
            "generic_pkcs11_kek_file": str(work / "kek.pem"), "generic_pkcs11_kek_kid": KEK_KID,
            "generic_pkcs11_kek_fingerprint": KEK_FP, "generic_pkcs11_byok_dir": out_dir})
    return common


@pytest.fixture(scope="module")
def vendor_runs(lab, base_env, tmp_path_factory):
    work = tmp_path_factory.mktemp("vendor-roles")
    chrystoki = luna_client(work)
    tokens, keys, hsm_hosts = {}, {}, {}
    for host, (role, specs, _outcome) in HOSTS.items():
        tokens[host] = new_token(work / ("token-%s" % host), base_env)
        keys[host] = [_key_item(host, spec) for spec in specs]
        hsm_hosts[host] = _host_vars(host, role, tokens[host], keys[host], work, chrystoki)
    imports = [{"name": k["label"], "byok_file": str(work / ("byok-%s" % host) / ("%s.byok" % k["label"]))}
               for host in SUCCEEDING for k in keys[host]]
    kek_name = unique("vr-kek")
    inventory = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                 "vr_work": str(work), "vr_vault_url": lab.env["LAB_VAULT_PREMIUM"], "vr_kek_name": kek_name,
                 "vr_authority": lab.env["LAB_AUTHORITY"], "vr_ca": lab.env["LAB_CA"]},
        "children": {"hsm_hosts": {"hosts": hsm_hosts},
                     "controllers": {"hosts": {"localhost": {"vr_imports": imports}}}},
    }}
    (work / "inventory.yml").write_text(json.dumps(inventory, indent=1))
    (work / "vendor_roles.yml").write_text(PLAYBOOK)
    first = playbook(base_env, work, work / "vendor_roles.yml", work / "inventory.yml", extra_env=lab.azure_env)
    (work / "first-run.log").write_text(first.output)
    snapshot = {p: p.read_bytes() for p in work.glob("byok-*/*")}
    second = playbook(base_env, work, work / "vendor_roles.yml", work / "inventory.yml", extra_env=lab.azure_env,
                      extra_args=["--limit", ",".join(SUCCEEDING + ["localhost"])])
    (work / "second-run.log").write_text(second.output)
    return {"first": first, "second": second, "tokens": tokens, "keys": keys, "work": work, "kek_name": kek_name,
            "snapshot": snapshot, "lab": lab, "view": VaultView(lab)}


def _results(run, host, task_part):
    return [r for r in task_results(run.output) if r["host"] == host and task_part in r["task"]]


def _import_result(run):
    found = _results(run, "localhost", "Show the import result")
    assert found, "no import result in the output:\n%s" % run.output[-8000:]
    return found[-1]["result"]["vr_import"]


def test_first_run_outcome_per_host(vendor_runs):
    run = vendor_runs["first"]
    assert run.rc != 0, "four hosts must fail:\n%s" % run  # the refusals
    problems = []
    for host, (_role, _specs, outcome) in HOSTS.items():
        counts = run.recap.get(host) or {}
        if outcome == "ok" and (counts.get("failed") != 0 or not counts.get("changed")):
            problems.append("%s should succeed and change: %s" % (host, counts))
        if outcome != "ok" and counts.get("failed") != 1:
            problems.append("%s should fail once: %s" % (host, counts))
    if run.recap.get("localhost", {}).get("failed") != 0:
        problems.append("controller: %s" % run.recap.get("localhost"))
    assert not problems, "\n".join(problems) + "\n" + str(run)


def test_luna_firmware_gates(vendor_runs):
    run = vendor_runs["first"]
    low = failure_of(run.output, "luna72")
    msg = low["result"].get("msg", "")
    assert "Generate the target keys" in low["task"], low
    assert "7.2" in msg and "7.3" in msg and "upgrade" in msg.lower(), msg
    big = failure_of(run.output, "luna73")
    msg = big["result"].get("msg", "")
    assert "Generate the target keys" in big["task"], big
    assert "RSA-4096" in msg and "7.4" in msg, msg
    for host in ("luna72", "luna73"):
        assert vendor_runs["tokens"][host].objects() == [], "%s: refused, yet the partition holds objects" % host
    # at 7.4 the same gate lets RSA-4096 through; the partition report names the profile and the firmware
    report = _results(run, "luna74", "Report the token and the keys")
    assert report and "firmware 7.4" in report[0]["result"]["msg"][0] and "profile luna" in report[0]["result"]["msg"][0], \
        report


def test_nshield_legacy_method_refused(vendor_runs):
    run = vendor_runs["first"]
    failure = failure_of(run.output, "nshieldlegacy")
    msg = failure["result"].get("msg", "")
    assert "Refuse the retired legacy" in failure["task"], failure
    for words in ("KeyTransferRemote", "30 June 2021", "current"):
        assert words in msg, "legacy refusal does not mention %r: %s" % (words, msg)
    assert "vendor-agnostic" in msg and "docs/nshield.md" in msg, msg
    # refused before anything else: no preflight, no HSM work
    assert not _results(run, "nshieldlegacy", "Preflight") and not _results(run, "nshieldlegacy", "Report the PKCS#11"), \
        "the legacy host went on after the refusal"
    assert vendor_runs["tokens"]["nshieldlegacy"].objects() == []


def test_a_pin_in_the_vendor_environment_is_refused_before_anything_runs(vendor_runs):
    run = vendor_runs["first"]
    failure = failure_of(run.output, "nshieldpin")
    msg = failure["result"].get("msg", "")
    assert "Refuse a secret in the environment" in failure["task"], failure
    assert "nshield_environment sets PKCS11_USER_PIN" in msg and "nshield_user_pin" in msg, msg
    assert not _results(run, "nshieldpin", "Preflight") and not _results(run, "nshieldpin", "Report"), \
        "the host went on after the refusal"
    assert vendor_runs["tokens"]["nshieldpin"].objects() == []
    assert vendor_runs["tokens"]["nshieldpin"].pin not in run.output


def test_preflight_reports_skipped_vendor_tools(vendor_runs):
    run = vendor_runs["first"]
    luna = " ".join(str(r["result"].get("msg")) for r in _results(run, "luna74", "Report"))
    assert re.search(r"lunacm check skipped: not found in /usr/safenet/lunaclient/bin \(set luna_client_bin", luna), luna
    assert "vtl verify skipped: vtl not found in /usr/safenet/lunaclient/bin" in luna, luna
    assert "Luna client configuration found" in luna and "PKCS#11 library found: %s" % SHIM_LIB in luna, luna
    nshield = " ".join(str(r["result"].get("msg")) for r in _results(run, "nshield", "Report"))
    assert "Security World check skipped: no world file at /opt/nfast/kmdata/local/world (" in nshield, nshield
    for tool in ("enquiry", "nfkminfo"):
        assert "%s skipped: not found in /opt/nfast/bin" % tool in nshield, nshield
    assert "CKNFAST_LOADSHARING" in nshield, nshield
    generic = " ".join(str(r["result"].get("msg")) for r in _results(run, "generic", "Report the slots"))
    assert vendor_runs["tokens"]["generic"].label in generic, generic


def test_wrap_methods_and_zero_padding_warning(vendor_runs):
    run = vendor_runs["first"]
    for host in SUCCEEDING:
        for key in vendor_runs["keys"][host]:
            sidecar = vendor_runs["work"] / ("byok-%s" % host) / ("%s.byok.json" % key["label"])
            assert sidecar.exists(), "no sidecar for %s on %s" % (key["label"], host)
            meta = json.loads(sidecar.read_text())
            assert meta["wrap_method"] == EXPECTED_WRAP[host], (host, meta)
            assert meta["token"]["vendor"] == EXPECTED_PROFILE[host], (host, meta["token"])
            # every host here is SoftHSM 2.6.1 underneath (the shim's one-step path wraps with SoftHSM's own AES step),
            # and its test wrap shows that it zero-pads: the sidecar says so whatever the vendor profile
            assert meta["zero_padded"] is True, (host, meta)
            byok = json.loads((vendor_runs["work"] / ("byok-%s" % host) / ("%s.byok" % key["label"])).read_text())
            assert byok["header"]["enc"] == "CKM_RSA_AES_KEY_WRAP" and "/keys/%s/" % vendor_runs["kek_name"] in \
                byok["header"]["kid"], byok["header"]
    warnings = re.findall(r"\[WARNING\]: (.*?)(?=\n\S|\Z)", run.output, re.S)
    padding = [" ".join(w.split()) for w in warnings if "zero-pads" in w]
    assert padding, "no zero-padding warning:\n%s" % run.output[-6000:]
    text = " ".join(padding)
    for host in SUCCEEDING:
        for key in vendor_runs["keys"][host]:
            assert key["label"] in text, (key["label"], padding)
    assert "test wrap showed it" in text, padding


def test_imports_match_the_hsm_keys(vendor_runs):
    run = vendor_runs["first"]
    result = _import_result(run)
    assert not result.get("failed"), result
    by_name = {k["name"]: k for k in result["keys"]}
    view = vendor_runs["view"]
    dump = vendor_runs["lab"].keys("premium")
    problems = []
    for host in SUCCEEDING:
        on_token = token_fingerprints(vendor_runs["tokens"][host])
        for key in vendor_runs["keys"][host]:
            name = key["label"]
            r = by_name.get(name) or {}
            vault_fp = view.sha256(view.key("premium", name))
            if not (r.get("changed") and not r.get("failed")):
                problems.append("%s (%s): import result %s" % (name, host, r))
            if not (on_token.get(name) == vault_fp == r.get("fingerprint") == r.get("expected_fingerprint")):
                problems.append("%s (%s): token %s, vault %s, import %s/%s" % (
                    name, host, on_token.get(name), vault_fp, r.get("fingerprint"), r.get("expected_fingerprint")))
            versions = dump[name]["versions"]
            if len(versions) != 1 or versions[0]["origin"] != "byok":
                problems.append("%s: versions %s" % (name, versions))
    assert not problems, "\n".join(problems)


def test_second_run_changes_nothing(vendor_runs):
    run = vendor_runs["second"]
    assert run.rc == 0, str(run)
    assert set(run.recap) == set(SUCCEEDING) | {"localhost"}, run.recap
    for host, counts in run.recap.items():
        assert counts["changed"] == 0 and counts["failed"] == 0, "second run changed %s: %s\n%s" % (host, counts, run)
    result = _import_result(run)
    assert all(k.get("decision") == "keep" and not k.get("changed") for k in result["keys"]), result["keys"]
    dump = vendor_runs["lab"].keys("premium")
    for host in SUCCEEDING:
        labels = sorted(k["label"] for k in vendor_runs["keys"][host])
        objects = vendor_runs["tokens"][host].objects()
        assert sorted(o.get("label") for o in objects) == sorted(labels * 2), (host, objects)  # one key pair each
        for name in labels:
            assert len(dump[name]["versions"]) == 1, (name, dump[name]["versions"])
    assert len(dump[vendor_runs["kek_name"]]["versions"]) == 1
    after = {p: p.read_bytes() for p in vendor_runs["work"].glob("byok-*/*")}
    assert after == vendor_runs["snapshot"], "the second run rewrote .byok files or sidecars"
