# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet: four HSM hosts (four REAL SoftHSM2 tokens) and two vaults (Premium and Managed HSM flavours of the
REAL lab vault) move twelve keys in one run of playbooks/transfer.yml; a second run changes nothing and each vault
key has exactly one version.  And the staged (air-gapped) flow, whose HSM-host stage is given no vault URL at all."""

from __future__ import annotations

import json
import re

from conftest import ROOT, TRANSFER_PLAYBOOK, testing, unique

STAGED = [ROOT / "playbooks" / ("staged_%s.yml" % stage) for stage in ("1_fetch", "2_wrap", "3_import")]


def bundle_digests(run):
    """{host: digest} as stage 2 prints them for the operator to carry to stage 3."""
    return dict(re.findall(r"bundle digest of (\S+): ([0-9a-f]{4}(?:-[0-9a-f]{4}){7})", run.output))


def inventory(path, lab, hosts, keks, with_vaults=True):
    """hosts: {name: (token, [byok_keys])}.  Without with_vaults the inventory has no vault URL and no Azure option."""
    vaults = azure = None
    if with_vaults:
        vaults = dict(testing.lab_vaults(lab.env, keks["premium"], kek_size=2048),
                      **testing.lab_vaults(lab.env, keks["mhsm"], kek_size=3072, names=("mhsm",)))
        azure = testing.lab_azure(lab.env)
    return testing.write_inventory(path, {name: testing.token_vars(token, keys) for name, (token, keys) in hosts.items()},
                                   vaults, azure, path.parent / "manifests")


def twelve_keys(make_token):
    """Four hosts, three keys each, spread over both vaults (AES only into the Managed HSM)."""
    specs = [("premium", {"key_type": "RSA", "key_size": 2048}), ("premium", {"key_type": "EC", "curve": "P-256"}),
             ("mhsm", {"key_type": "oct", "key_size": 256}), ("mhsm", {"key_type": "EC", "curve": "P-384"})]
    hosts = {}
    for h in range(1, 5):
        keys = []
        for k in range(3):
            vault, spec = specs[(h + k) % len(specs)]
            keys.append(dict(spec, name=unique("fl%d-%s" % (h, spec["key_type"].lower())), vault=vault))
        hosts["hsm%d" % h] = (make_token(), keys)
    return hosts


def versions(lab, vault, name):
    return len(lab.keys(vault)[name]["versions"])


def test_four_hosts_two_vaults_twelve_keys_then_nothing_to_do(lab, make_token, run_playbook, tmp_path):
    hosts = twelve_keys(make_token)
    keks = {"premium": unique("fl-kek"), "mhsm": unique("fl-kek")}
    inv = inventory(tmp_path / "fleet.yml", lab, hosts, keks)
    all_keys = [(key["vault"], key["name"], host) for host, (_tok, keys) in hosts.items() for key in keys]
    assert len(all_keys) == 12 and len(set(v for v, _n, _h in all_keys)) == 2

    first = run_playbook(TRANSFER_PLAYBOOK, inv, extra_env=lab.azure_env, timeout=600)
    assert first.rc == 0, str(first)
    for host in hosts:
        assert first.recap[host]["failed"] == 0 and first.recap[host]["changed"] > 0, (host, first.recap)
    manifest = json.loads(sorted((tmp_path / "manifests").glob("*.json"))[-1].read_text())
    rows = dict(((r["vault"], r["name"]), r) for r in manifest["keys"])
    for vault, name, host in all_keys:
        row = rows[(vault, name)]
        assert row["host"] == host and row["result"] == "transferred" and row["match"], row
        assert row["kek_kid"].startswith(lab.env["LAB_VAULT_PREMIUM" if vault == "premium" else "LAB_VAULT_MHSM"]), row
        assert versions(lab, vault, name) == 1, (vault, name)
    for vault, kek in keks.items():
        assert versions(lab, vault, kek) == 1, "one KEK per vault per run: %s" % lab.keys(vault)[kek]

    second = run_playbook(TRANSFER_PLAYBOOK, inv, extra_env=lab.azure_env, timeout=600)
    assert second.rc == 0, str(second)
    for host, counts in second.recap.items():
        assert counts["changed"] == 0 and counts["failed"] == 0, (host, counts, str(second))
    for vault, name, _host in all_keys:
        assert versions(lab, vault, name) == 1, "%s/%s has a second version after a no-op run" % (vault, name)
    for vault, kek in keks.items():
        assert versions(lab, vault, kek) == 1


def test_staged_flow_hsm_stage_has_no_vault_url(lab, make_token, run_playbook, tmp_path):
    token = make_token()
    keys = [{"name": unique("st-rsa"), "vault": "premium", "key_type": "RSA", "key_size": 2048},
            {"name": unique("st-aes"), "vault": "mhsm", "key_type": "oct", "key_size": 128}]
    keks = {"premium": unique("st-kek"), "mhsm": unique("st-kek")}
    connected = inventory(tmp_path / "connected.yml", lab, {"hsm1": (token, keys)}, keks)
    offline = inventory(tmp_path / "offline.yml", lab, {"hsm1": (token, keys)}, keks, with_vaults=False)
    assert "LAB_VAULT" not in offline.read_text() and lab.env["LAB_VAULT_PREMIUM"] not in offline.read_text()
    bundle = tmp_path / "bundle"
    offline_env = dict((k, v) for k, v in lab.azure_env.items() if not k.startswith("AZURE_"))

    fetch = run_playbook(STAGED[0], connected, extra_env=lab.azure_env, extra_args=["-e", "byok_bundle_dir=%s" % bundle])
    assert fetch.rc == 0, str(fetch)
    fingerprints = dict((v, json.loads((bundle / "keks" / ("%s.json" % v)).read_text())["fingerprint"]) for v in keks)
    # check mode: each key said, nothing made or written
    looked = run_playbook(STAGED[1], offline, extra_env=offline_env, check=True,
                          extra_args=["-e", "byok_bundle_dir=%s" % bundle, "-e", json.dumps({"byok_expected_kek_fingerprints": fingerprints})])
    assert looked.rc == 0 and "check mode: nothing was wrapped or sealed" in looked.output, str(looked)
    assert all("%s would be generated" % k["name"] in looked.output for k in keys), str(looked)
    assert not (bundle / "wrapped").exists() and token.objects() == [], str(looked)
    wrap = run_playbook(STAGED[1], offline, extra_env=offline_env,
                        extra_args=["-e", "byok_bundle_dir=%s" % bundle,
                                    "-e", json.dumps({"byok_expected_kek_fingerprints": fingerprints})])
    assert wrap.rc == 0, str(wrap)
    for key in keys:
        assert (bundle / "wrapped" / "hsm1" / key["vault"] / ("%s.byok" % key["name"])).is_file(), key
    digests = bundle_digests(wrap)
    assert list(digests) == ["hsm1"], str(wrap)
    stage3_args = ["-e", "byok_bundle_dir=%s" % bundle, "-e", json.dumps({"byok_expected_bundle_digests": digests})]
    imported = run_playbook(STAGED[2], connected, extra_env=lab.azure_env, extra_args=stage3_args)
    assert imported.rc == 0, str(imported)
    for key in keys:
        assert versions(lab, key["vault"], key["name"]) == 1, key

    # a KEK fingerprint that does not match what was verified out of band stops stage 2 before any HSM work
    wrong = dict(fingerprints, premium="0" * 64)
    refused = run_playbook(STAGED[1], offline, extra_env=offline_env,
                           extra_args=["-e", "byok_bundle_dir=%s" % bundle, "-e", json.dumps({"byok_expected_kek_fingerprints": wrong})])
    assert refused.rc != 0 and "verified out of band" in refused.output, str(refused)

    again = run_playbook(STAGED[2], connected, extra_env=lab.azure_env, extra_args=stage3_args)
    assert again.rc == 0 and again.recap["localhost"]["changed"] == 0, str(again)
    for key in keys:
        assert versions(lab, key["vault"], key["name"]) == 1, key
