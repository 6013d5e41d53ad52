# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules against a lab that behaves like Azure where it matters for a transfer: service limits (429 with
Retry-After), purge protection, asynchronous delete and purge, case-insensitive names.

The tests share a lab of this module (they change its settings, so not the session's), each on its own vault or
with the limits switched on only for its run."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from conftest import TRANSFER_PLAYBOOK, assert_one_line_failure, lab_of_the_module, unique
from test_transfer import report_rows, write_inventory

KEYS = 30
UNPACED_KEYS = 15
SHARED_KEYS = 12


def settings(lab, *args: str) -> dict:
    return json.loads(lab.cli("settings", *args).stdout)


limits_lab = lab_of_the_module("limits-lab")


def new_kek(lab, vault, name):
    """A KEK made with the SDK, as byok_kek_fetch makes it: the versioned kid."""
    return lab.key_client(vault).create_rsa_key(name, size=2048, hardware_protected=True, key_operations=["import"]).id


def ec_keys(run_module, token, count):
    labels = [unique("paced-%02d" % i) for i in range(count)]
    gen = run_module("hsm_keygen", dict(token.pkcs11_args(), keys=[{"label": label, "key_type": "EC", "curve": "P-256"}
                                                                   for label in labels]), env=token.env)
    assert not gen.failed, str(gen)
    return labels


def wrapped_for(run_module, token, lab, tmp_path, labels, vault):
    """The keys wrapped under a new KEK of the vault: keyvault_import items."""
    kek_pem = tmp_path / ("kek-%s.pem" % vault)
    kek = run_module("byok_kek_fetch", dict(lab.azure_args(vault), name=unique("kek"), key_size=2048, dest=str(kek_pem)),
                     env=lab.azure_env)
    assert not kek.failed, str(kek)
    out = tmp_path / ("byok-%s" % vault)
    out.mkdir()
    wrap = run_module("byok_wrap", dict(token.pkcs11_args(), kek_file=str(kek_pem), kek_kid=kek.result["kid"],
                                        keys=[{"label": label, "dest": str(out / ("%s.byok" % label))} for label in labels]),
                      env=token.env)
    assert not wrap.failed, str(wrap)
    return [{"name": label, "byok_file": str(out / ("%s.byok" % label)), "key_ops": ["sign", "verify"]} for label in labels]


def test_parallel_imports_stay_under_the_vault_limits(limits_lab, run_module, make_token, tmp_path):
    """30 EC keys into one vault, 8 imports in flight, with Azure's limits on (10 HSM-key creates per window, windows
    shrunk to 1 s): paced, the vault answers (almost) no 429 and every key has one version. The same import without
    pacing (the same blobs under other names) makes the lab throttle, which shows the limit is live; the import still never
    duplicates a version."""
    token = make_token()
    labels = ec_keys(run_module, token, KEYS)
    paced_items = wrapped_for(run_module, token, limits_lab, tmp_path, labels, "premium")
    # the same blobs under other vault key names, for the run without pacing
    unpaced_items = [dict(item, name=item["name"] + "-unpaced") for item in paced_items[:UNPACED_KEYS]]
    before = settings(limits_lab, "--limits", "on", "--time-scale", "0.1")
    assert before["limits"]["enabled"] and before["limits"]["window_seconds"] == 1.0 and before["limits"]["throttled"] == {}
    try:
        paced_and_unpaced(limits_lab, run_module, paced_items, unpaced_items)
    finally:
        settings(limits_lab, "--limits", "off")


def paced_and_unpaced(limits_lab, run_module, paced_items, unpaced_items):
    run = run_module("keyvault_import", dict(limits_lab.azure_args(), keys=paced_items, parallel=8, pacing_window=1),
                     env=limits_lab.azure_env)
    assert not run.failed, str(run)
    assert [k["decision"] for k in run.result["keys"]] == ["import"] * KEYS, run.result["keys"]
    served = settings(limits_lab)["limits"]
    assert served["throttled"].get("premium", 0) == 0, "the paced import was throttled: %s" % served
    keys = limits_lab.keys("premium")
    assert all(len(keys[item["name"]]["versions"]) == 1 for item in paced_items), {
        item["name"]: len(keys[item["name"]]["versions"]) for item in paced_items}

    settings(limits_lab, "--limits", "on")  # counts from zero again
    unpaced = run_module("keyvault_import", dict(limits_lab.azure_args(), keys=unpaced_items, parallel=8, pacing=False),
                         env=limits_lab.azure_env)
    served = settings(limits_lab)["limits"]
    assert served["throttled"].get("premium", 0) >= 1, "without pacing the lab did not throttle: %s\n%s" % (served, unpaced)
    keys = limits_lab.keys("premium")
    assert all(len(keys[item["name"]]["versions"]) <= 1 for item in unpaced_items if item["name"] in keys)


def test_two_runs_on_one_vault_stay_under_its_limits_with_half_a_share_each(limits_lab, run_module, make_token, tmp_path):
    """Two imports into one vault at the same time (two jobs, or two slices of a sliced job template), each pacing
    alone: with the whole budget each (pacing_share 1, the default) their first bursts together exceed the vault's 10
    creates per window and the lab throttles; with pacing_share 0.5 each, as docs/performance.md advises for two runs,
    no request is throttled. Every key ends with one version either way."""
    token = make_token()
    labels = ec_keys(run_module, token, 4 * SHARED_KEYS)
    items = wrapped_for(run_module, token, limits_lab, tmp_path, labels, "premium3")
    parts = [items[i * SHARED_KEYS:(i + 1) * SHARED_KEYS] for i in range(4)]

    def two_runs(first, second, share):
        settings(limits_lab, "--limits", "on", "--time-scale", "0.1")  # counts from zero
        try:
            with ThreadPoolExecutor(2) as pool:
                runs = list(pool.map(lambda part: run_module("keyvault_import", dict(
                    limits_lab.azure_args("premium3"), keys=part, parallel=8, pacing_window=1, pacing_share=share),
                    env=limits_lab.azure_env), [first, second]))
            return runs, settings(limits_lab)["limits"]["throttled"].get("premium3", 0)
        finally:
            settings(limits_lab, "--limits", "off")

    whole, throttled_whole = two_runs(parts[0], parts[1], 1.0)
    half, throttled_half = two_runs(parts[2], parts[3], 0.5)
    assert not any(r.failed for r in whole + half), [str(r) for r in whole + half]
    assert throttled_whole >= 1, "two runs with the whole budget each were not throttled: the test shows nothing"
    assert throttled_half == 0, "two runs with half the budget each were throttled %d times" % throttled_half
    keys = limits_lab.keys("premium3")
    assert all(len(keys[item["name"]]["versions"]) == 1 for item in items), {
        item["name"]: len(keys[item["name"]]["versions"]) for item in items}


def test_delete_after_run_on_a_purge_protected_vault(limits_lab, run_module):
    """byok_kek_delete_after_run's step (state absent, purge true) on a purge-protected vault deletes the KEK, says the
    purge is not possible and does not fail; the next run's KEK step recovers the deleted KEK instead of failing on its
    name (409), and finds it under any case of its name."""
    settings(limits_lab, "--vault", "premium", "--purge-protection", "on", "--delete-delay", "0.5")
    name = unique("Protected-KEK")
    kid = new_kek(limits_lab, "premium", name)

    gone = run_module("byok_kek_fetch", dict(limits_lab.azure_args(), name=name, state="absent", purge=True),
                      env=limits_lab.azure_env)
    assert not gone.failed, str(gone)
    assert gone.changed and gone.result["deleted"] and gone.result["purged"] is False, gone.result
    assert "purge protection" in gone.result["purge_refused"] and gone.result["scheduled_purge_date"], gone.result
    assert "cannot be purged" in gone.output, "no warning about the purge:\n%s" % gone.output
    assert limits_lab.keys("premium")[name]["deleted"] is True

    again = run_module("byok_kek_fetch", dict(limits_lab.azure_args(), name=name.lower(), key_size=2048),
                       env=limits_lab.azure_env)
    assert not again.failed, str(again)
    assert again.result["recovered"] and not again.result["created"] and again.changed, again.result
    assert again.result["kid"] == kid, (again.result, kid)
    kek = limits_lab.keys("premium")[name]
    assert kek["deleted"] is False and len(kek["versions"]) == 1, kek
    assert name.lower() not in limits_lab.keys("premium")

    upper = run_module("byok_kek_fetch", dict(limits_lab.azure_args(), name=name.upper(), key_size=2048),
                       env=limits_lab.azure_env)
    assert not upper.failed and not upper.changed and not upper.result["created"], str(upper)
    assert len(limits_lab.keys("premium")[name]["versions"]) == 1


def test_a_deleted_key_that_cannot_be_the_kek_is_named(limits_lab, run_module):
    """A deleted key of another type holds the KEK name on a purge-protected vault (a Managed HSM): one line, with
    what to do."""
    name = unique("held")
    client = limits_lab.key_client("mhsm")
    client.create_ec_key(name, curve="P-256", hardware_protected=True)
    client.begin_delete_key(name).wait()
    run = run_module("byok_kek_fetch", dict(limits_lab.azure_args("mhsm"), name=name, key_size=2048), env=limits_lab.azure_env)
    assert_one_line_failure(run, name, "deleted key", "choose another KEK name")
    assert limits_lab.keys("mhsm")[name]["deleted"] is True


def test_purge_after_delete_frees_the_name_for_the_next_kek(limits_lab, run_module):
    """Without purge protection, delete + purge run in the background (the lab takes 0.5 s for each); a KEK created
    right after under the same name waits for the purge to finish instead of failing on 409."""
    settings(limits_lab, "--vault", "premium2", "--delete-delay", "0.5", "--purge-delay", "0.5")
    name = unique("kek")
    new_kek(limits_lab, "premium2", name)
    gone = run_module("byok_kek_fetch", dict(limits_lab.azure_args("premium2"), name=name, state="absent", purge=True),
                      env=limits_lab.azure_env)
    assert not gone.failed and gone.result["purged"] and gone.result["purge_refused"] is None, str(gone)
    again = run_module("byok_kek_fetch", dict(limits_lab.azure_args("premium2"), name=name, key_size=2048),
                       env=limits_lab.azure_env)
    assert not again.failed and again.result["created"] and not again.result["recovered"], str(again)
    assert len(limits_lab.keys("premium2")[name]["versions"]) == 1


def test_transfer_deleting_its_kek_on_a_purge_protected_vault(limits_lab, make_token, run_playbook, tmp_path):
    """byok_kek_delete_after_run + byok_kek_purge on a purge-protected vault: the first run transfers and deletes its
    KEK (the purge is refused, the run does not fail); the next run, which has a new key to move and so needs the KEK,
    recovers it, transfers, and deletes it again."""
    settings(limits_lab, "--vault", "premium", "--purge-protection", "on")
    token = make_token()
    first_key, second_key, kek = unique("pp-ec1"), unique("pp-ec2"), unique("pp-kek")
    keys = [{"name": first_key, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign", "verify"]}]
    extra = {"byok_kek_delete_after_run": True, "byok_kek_purge": True}

    inventory = write_inventory(tmp_path / "first.yml", limits_lab, {"hsm1": (token, keys)}, kek, extra)
    first = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=limits_lab.azure_env)
    assert first.rc == 0, str(first)
    assert "cannot be purged" in first.output, "no warning about the refused purge:\n%s" % first.output[-4000:]
    state = limits_lab.keys("premium")
    assert state[kek]["deleted"] is True and len(state[kek]["versions"]) == 1, state[kek]

    keys.append(dict(keys[0], name=second_key))
    inventory = write_inventory(tmp_path / "second.yml", limits_lab, {"hsm1": (token, keys)}, kek, extra)
    second = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=limits_lab.azure_env)
    assert second.rc == 0, str(second)
    rows = report_rows(second.output)
    assert rows[second_key]["result"] == "transferred" and rows[first_key]["result"] == "in place", rows
    state = limits_lab.keys("premium")
    assert state[kek]["deleted"] is True and len(state[kek]["versions"]) == 1, "the KEK was not recovered: %s" % state[kek]
    assert len(state[first_key]["versions"]) == 1 and len(state[second_key]["versions"]) == 1
