# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory is a checked contract: each of these mistakes, in a real ansible-playbook run of playbooks/transfer.yml
against a REAL SoftHSM2 token and a REAL lab vault of its own, stops the run before anything is touched.

Each case asserts: a non-zero exit; exactly one problem line, naming the host (or all hosts), the variable path the
user wrote and how to fix it; and afterwards no object on the token, no key (no KEK, no version) in the vault, and no
audit manifest.
"""

from __future__ import annotations

import copy
import json
import re

import pytest

from conftest import TRANSFER_PLAYBOOK, FIX_HINT, lab_of_the_module, new_token
# the cases of the plan's unit test (tests/unit/plugins/action; tests is on sys.path)
from unit.plugins.action.inventory_contract import K, cases, fleet, good_inventory as contract_inventory, hsm1, key0, set_host

contract_lab = lab_of_the_module("contract")


@pytest.fixture(scope="module")
def token(tmp_path_factory, base_env):
    return new_token(tmp_path_factory.mktemp("contract-token"), base_env)


def good_inventory(lab, token, manifests):
    """The contract's good inventory for this lab and token."""
    return contract_inventory(
        manifests, {"byok_token_label": token.label, "byok_user_pin": token.pin, "byok_hsm_environment": token.env},
        lab.env["LAB_VAULT_PREMIUM"], lab.env["LAB_AUTHORITY"], lab.env["LAB_CA"],
        ansible_python_interpreter="{{ ansible_playbook_python }}")


# Every mistake of the contract is a unit test on the plan (tests/unit/plugins/action/test_byok_plan_inventory_cases.py);
# these cases of it run through ansible-playbook, for what only a real run shows: values as Ansible hands them over
# (an integer PIN, a YAML boolean, the host variables scanned for near misses), a problem of one key, of one host, of
# all hosts and across hosts, and that a plan that fails touches nothing.
# (id, mutation, the start of the one problem line: host and variable path)
CASES = cases("typo-key_sise", "typo-host-variable", "tag-boolean", "pin-octal-int", "vault-url-http", "same-vault-key-two-hosts")


def _problems(output):
    """The problem lines of the failed plan task (its msg, as the json result format shows it)."""
    m = re.search(r"^fatal: \[[^\]]+\]: FAILED! => (\{.*\})\s*$", output, re.M)
    assert m, "the run did not fail in a task:\n%s" % output[-6000:]
    msg = json.loads(m.group(1))["msg"]
    header, _sep, body = msg.partition("\n")
    assert "nothing was done" in header, msg
    return body.splitlines()


def _transfer(inv, contract_lab, run_playbook, tmp_path, **extra_env):
    """(vault state before, run) of playbooks/transfer.yml with inv written to tmp_path/inventory.yml."""
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(inv, indent=1))
    before = contract_lab.dump()
    return before, run_playbook(TRANSFER_PLAYBOOK, path, extra_env=dict(contract_lab.azure_env, **extra_env))


@pytest.mark.parametrize("case, mutate, expected", CASES, ids=[c[0] for c in CASES])
def test_mistake_stops_the_run_before_anything_is_touched(case, mutate, expected, contract_lab, token, run_playbook, tmp_path):
    manifests = tmp_path / "manifests"
    inv = good_inventory(contract_lab, token, manifests)
    mutate(inv)
    before, run = _transfer(inv, contract_lab, run_playbook, tmp_path)
    assert run.rc != 0, run
    problems = _problems(run.output)
    assert len(problems) == 1, "%s: expected one problem line, got %s" % (case, problems)
    line = problems[0]
    assert line.startswith(expected) or expected in line, "%s: %r does not say %r" % (case, line, expected)
    assert FIX_HINT.search(line.split(": ", 2)[-1]), "%s: %r does not say how to fix it" % (case, line)
    assert "Task failed: Finalization" not in run.output and "filter plugin" not in run.output, run
    assert token.pin not in run.output
    assert token.objects() == [], "%s: the token holds objects" % case
    assert contract_lab.dump() == before, "%s: the vault changed (a KEK or a version)" % case
    assert not manifests.exists(), "%s: a manifest was written" % case


def test_the_good_inventory_of_these_cases_passes_and_plans_a_transfer(contract_lab, token, run_playbook, tmp_path):
    """The baseline the mistakes are made in is itself valid: without a mistake, --check plans the key's transfer."""
    inv = good_inventory(contract_lab, token, tmp_path / "manifests")
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(copy.deepcopy(inv), indent=1))
    run = run_playbook(TRANSFER_PLAYBOOK, path, extra_env=contract_lab.azure_env, check=True)
    assert run.rc == 0, run.output[-8000:]
    assert token.objects() == []  # check mode creates nothing either


def test_ansible_debug_with_a_pin_is_refused_unless_opted_in(contract_lab, token, run_playbook, tmp_path):
    inv = good_inventory(contract_lab, token, tmp_path / "manifests")
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(inv, indent=1))
    run = run_playbook(TRANSFER_PLAYBOOK, path, extra_env=dict(contract_lab.azure_env, ANSIBLE_DEBUG="1"), check=True)
    assert run.rc != 0
    problems = _problems(run.output)
    assert all("ANSIBLE_DEBUG is on" in p and "byok_allow_secrets_in_debug_log" in p for p in problems), problems
    assert any(p.startswith(("hsm1: byok_user_pin: ", "all HSM hosts: byok_user_pin: ")) for p in problems), problems
    fleet(inv)["byok_allow_secrets_in_debug_log"] = True
    path.write_text(json.dumps(inv, indent=1))
    run = run_playbook(TRANSFER_PLAYBOOK, path, extra_env=dict(contract_lab.azure_env, ANSIBLE_DEBUG="1"), check=True)
    assert "ANSIBLE_DEBUG is on" not in run.output, run


# -- the HSM of every host is contacted before any KEK or vault write ------------------------------------------------
def _fatal_messages(output):
    """The msg of every failed task, as the json result format shows it."""
    return [json.loads(m.group(1)).get("msg", "") for m in re.finditer(r"^fatal: \[[^\]]+\]: FAILED! => (\{.*\})\s*$", output, re.M)]


@pytest.mark.parametrize("case, mutate, variable", [
    ("wrong-pin", set_host(byok_user_pin="0000-not-the-pin"), "byok_user_pin"),
    ("wrong-module-path", set_host(byok_pkcs11_module="/usr/lib/softhsm/libnot-there.so"), "byok_pkcs11_module"),
], ids=["wrong-pin", "wrong-module-path"])
def test_an_hsm_that_cannot_be_used_stops_its_host_before_any_kek(case, mutate, variable, contract_lab, token,
                                                                  run_playbook, tmp_path):
    manifests = tmp_path / "manifests"
    inv = good_inventory(contract_lab, token, manifests)
    mutate(inv)
    before, run = _transfer(inv, contract_lab, run_playbook, tmp_path)
    assert run.rc != 0, run
    lines = [m for m in _fatal_messages(run.output) if m.startswith("hsm1: ")]
    assert len(lines) == 1 and "\n" not in lines[0], run.output[-6000:]
    assert variable in lines[0] and FIX_HINT.search(lines[0]), lines
    assert "0000-not-the-pin" not in run.output and token.pin not in run.output
    assert contract_lab.dump() == before, "%s: the vault changed (a KEK was created before the HSM was contacted)" % case
    assert token.objects() == [], "%s: the token holds objects" % case
    # the run's report says what happened: every key of the host failed, in the inventory's words
    rows = [r for m in manifests.glob("*.json") for r in json.loads(m.read_text())["keys"]]
    assert rows and all(r["result"] == "failed" and variable in r["message"] for r in rows), rows


# -- mistakes the plan let through, in real runs ----------------------------------------------------------------------
def _run_mistake(inv, contract_lab, token, run_playbook, tmp_path, manifests):
    before, run = _transfer(inv, contract_lab, run_playbook, tmp_path)
    assert run.rc != 0, run
    problems = _problems(run.output)
    assert token.objects() == [] and contract_lab.dump() == before and not manifests.exists()
    return problems


def test_a_misspelled_byok_keys_stops_the_run(contract_lab, token, run_playbook, tmp_path):
    manifests = tmp_path / "manifests"
    inv = good_inventory(contract_lab, token, manifests)
    hsm1(inv)["byok-keys"] = hsm1(inv).pop("byok_keys")
    problems = _run_mistake(inv, contract_lab, token, run_playbook, tmp_path, manifests)
    assert problems == ["hsm1: byok-keys: unknown variable; did you mean byok_keys? (names are case-sensitive and use _, "
                        "not -)"], problems


@pytest.mark.parametrize("playbook", ["transfer.yml", "verify.yml"])
def test_a_misspelled_hsm_group_fails_the_run_and_does_nothing(playbook, contract_lab, token, run_playbook, tmp_path):
    """Group byok_hsm_host (no s): no play would run on an HSM host, and the run would end green with an empty manifest
    (a scheduled audit would stay green for ever); it fails at once, naming the group meant."""
    manifests = tmp_path / "manifests"
    inv = good_inventory(contract_lab, token, manifests)
    inv["all"]["children"]["byok_hsm_host"] = inv["all"]["children"].pop("byok_hsm_hosts")
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(inv, indent=1))
    before = contract_lab.dump()
    run = run_playbook(TRANSFER_PLAYBOOK.parent / playbook, path, extra_env=contract_lab.azure_env)
    assert run.rc != 0, run
    assert "the inventory has no HSM hosts: group byok_hsm_hosts is missing" in run.output, run.output[-3000:]
    assert "did you mean group byok_hsm_host?" in run.output
    assert token.objects() == [] and contract_lab.dump() == before and not manifests.exists()


def test_four_mistakes_of_one_inventory_are_reported_in_one_run(contract_lab, token, run_playbook, tmp_path):
    """Each of these used to wait for the one before it to be fixed: curve, key_type, key_size, key_ops."""
    manifests = tmp_path / "manifests"
    inv = good_inventory(contract_lab, token, manifests)
    key0(inv).update(key_type="rsa", key_size=1024, key_ops=["sign", "import"])
    fleet(inv)["byok_vaults"]["premium"]["url"] += ":443:443"
    problems = _run_mistake(inv, contract_lab, token, run_playbook, tmp_path, manifests)
    expected = ["all HSM hosts: byok_vaults.premium.url: url '%s' has an invalid port" % fleet(inv)["byok_vaults"]["premium"]["url"],
                K + "key_type: 'rsa' is not one of RSA, EC, oct; did you mean RSA?",
                K + "key_size: RSA key_size 1024 is not accepted",
                K + "key_ops[1]: 'import' is not allowed for a BYOK target key"]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == 4, problems


def test_a_quoted_no_is_false_for_the_whole_run(contract_lab, base_env, run_playbook, tmp_path):
    """byok_kek_delete_after_run: "no" (a string, as extra vars and AWX surveys give it) passes the plan as false, and
    the role acts on it the same way: the key is imported and reported transferred, and the KEK stays."""
    own = new_token(tmp_path / "token", base_env)
    inv = good_inventory(contract_lab, own, tmp_path / "manifests")
    key0(inv)["name"] = "contract-quoted-no"
    for host in inv["all"]["children"]["byok_hsm_hosts"]["hosts"].values():
        host.update(byok_token_label=own.label, byok_user_pin=own.pin, byok_hsm_environment=own.env)
    fleet(inv)["byok_kek_delete_after_run"] = "no"
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(inv, indent=1))
    run = run_playbook(TRANSFER_PLAYBOOK, path, extra_env=contract_lab.azure_env)
    assert run.rc == 0, run.output[-8000:]
    keys = contract_lab.dump()["premium"]["keys"]
    assert "contract-quoted-no" in keys and "byok-kek" in keys, sorted(keys)
