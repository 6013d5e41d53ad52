# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory contract, case by case, on the plan as playbooks/transfer.yml runs it (the byok_plan action on the
host variables of an inventory with two HSM hosts and one vault): each mistake is one problem line that names the host
(or all hosts), the variable path the user wrote and how to fix it, and the run stops.

The cases are inventory_contract.py's; tests/e2e/test_inventory_contract.py runs a few of them through
ansible-playbook against a SoftHSM2 token and a lab vault, and proves there that a plan that fails touches nothing (no
token object, no KEK, no vault version, no manifest); the plan is one task before any other, so that holds for every
case here.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

import pytest

from ansible_collections.byok.keyvault.plugins.action.byok_plan import ActionModule
from inventory_contract import CASES, good_inventory

PIN = '5f1d2c3b4a596877'
TOKEN = {"byok_token_label": "tok-contract", "byok_user_pin": PIN, "byok_hsm_environment": {"SOFTHSM2_CONF": "/x/softhsm2.conf"}}
# Words a message uses when it tells the user what to do (as tests/e2e/conftest.py's FIX_HINT)
FIX_HINT = re.compile(r"\b(set|use|give|check|create|choose|pick|remove|rename|delete|correct|fix|pass|add|"
                      r"try|run|make sure|ensure|supply|provide|generate|install|change|update|rotate|renew|did you mean|"
                      r"one of|must be|must|should|instead|allowed|accepts|supported)\b", re.I)


def contract_inventory(manifests):
    """The contract's good inventory, with a vault URL and CA as a lab gives them."""
    return good_inventory(manifests, TOKEN, "https://127.0.0.1:40001", "https://127.0.0.1:40000/", "/x/ca.pem")


class _Templar(object):
    def template(self, value):
        return value


def plan(inv):
    """The byok_plan action of the transfer role on the hosts of `inv`, with host variables merged as Ansible does
    (all's vars, then the group's, then the host's)."""
    group = inv["all"]["children"]["byok_hsm_hosts"]
    hostvars = {}
    for name, own in group["hosts"].items():
        merged = copy.deepcopy(inv["all"]["vars"])
        merged.update(copy.deepcopy(group.get("vars", {})))
        merged.update(copy.deepcopy(own))
        merged.update(inventory_hostname=name, group_names=["byok_hsm_hosts"])
        hostvars[name] = merged
    action = ActionModule.__new__(ActionModule)
    action._templar = _Templar()
    args = {"hosts": sorted(hostvars), "role": "transfer", "entry_point": "main", "vaults_required": True}
    task_vars = dict(hostvars["hsm1"], hostvars=hostvars)
    return action.act(args, task_vars, {})


@pytest.mark.parametrize("case, mutate, expected", CASES, ids=[c[0] for c in CASES])
def test_mistake_is_one_problem_line_naming_host_variable_and_fix(case, mutate, expected, tmp_path, monkeypatch):
    for name in ("ANSIBLE_DEBUG", "ANSIBLE_KEEP_REMOTE_FILES"):
        monkeypatch.delenv(name, raising=False)
    inv = contract_inventory(tmp_path / "manifests")
    mutate(inv)
    result = plan(inv)
    assert result.get("failed") and "plan" not in result, "%s: the plan passed: %s" % (case, result.get("msg"))
    header, _sep, body = result["msg"].partition("\n")
    assert "nothing was done" in header, result["msg"]
    problems = body.splitlines()
    assert len(problems) == 1, "%s: expected one problem line, got %s" % (case, problems)
    line = problems[0]
    assert line.startswith(expected) or expected in line, "%s: %r does not say %r" % (case, line, expected)
    assert FIX_HINT.search(line.split(": ", 2)[-1]), "%s: %r does not say how to fix it" % (case, line)
    assert PIN not in result["msg"]


def test_the_good_inventory_of_these_cases_plans_a_transfer(tmp_path, monkeypatch):
    for name in ("ANSIBLE_DEBUG", "ANSIBLE_KEEP_REMOTE_FILES"):
        monkeypatch.delenv(name, raising=False)
    result = plan(contract_inventory(tmp_path / "manifests"))
    assert not result.get("failed"), result.get("msg")
    assert [k["name"] for k in result["plan"]["hosts"]["hsm1"]["keys"]] == ["contract-rsa"]
