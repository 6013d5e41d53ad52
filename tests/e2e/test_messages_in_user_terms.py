# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Messages in the user's words, against REAL SoftHSM2 tokens and the REAL lab vault: a message names the variable the
user wrote - the inventory variable (byok_user_pin, byok_token_label, byok_pkcs11_module,
byok_hsm_environment.SOFTHSM2_CONF) in a transfer run, the module option when the module is used on its own - or, when
the value came from the environment (an AWX credential's PKCS11_*), that environment variable.

Two transfer runs cover the HSM-side mistakes at once, one HSM host per mistake (each host stops on its own, the report
table has one row per key):
- inventory variables: a wrong byok_user_pin, a byok_token_label no token has, a byok_pkcs11_module that does not exist,
  and a byok_hsm_environment without SOFTHSM2_CONF (SoftHSM then reads /etc/softhsm/softhsm2.conf);
- the environment of the run (as an AWX HSM credential injects it): a wrong PKCS11_USER_PIN, a PKCS11_TOKEN_LABEL no
  token has, a PKCS11_MODULE that does not exist, each for a host that leaves the inventory variable empty.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from conftest import (ANSIBLE_PLAYBOOK, SOFTHSM_LIB, TRANSFER_PLAYBOOK, PlaybookRun, _env, assert_one_line_failure,
                      assert_says_how_to_fix, new_token, parse_recap, unique)
from test_transfer import write_inventory

SOFTHSM_DEFAULT_CONF = "/etc/softhsm/softhsm2.conf"


def report_messages(output):
    """{key name: its RESULT and the reason printed under the table for it} from the report table."""
    from test_transfer import report_rows
    return dict((name, "%s: %s" % (r["result"], r["message"])) for name, r in report_rows(output).items())


def ec(name):
    return [{"name": name, "vault": "premium", "key_type": "EC", "curve": "P-256", "key_ops": ["sign", "verify"]}]


def host_vars(inventory_path):
    data = json.loads(inventory_path.read_text())
    return data, data["all"]["children"]["byok_hsm_hosts"]


@pytest.fixture(scope="module")
def mistakes(lab, tmp_path_factory, base_env):
    """Both runs, once for the module: {case: (key name, report row)}, and the outputs."""
    tmp = tmp_path_factory.mktemp("user-terms")
    token = new_token(tmp / "token", base_env)
    kek = unique("ut-kek")
    names = dict((case, unique("ut-" + case)) for case in (
        "pin-var", "label-var", "module-var", "no-conf", "pin-env", "label-env", "module-env"))

    def run(inventory, extra_env):
        env = _env(base_env, dict(lab.azure_env, **extra_env))
        started = time.monotonic()
        proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inventory), str(TRANSFER_PLAYBOOK)], env=env, cwd=str(tmp),
                              capture_output=True, text=True, timeout=300, check=False)
        out = proc.stdout + proc.stderr
        return PlaybookRun(rc=proc.returncode, output=out, recap=parse_recap(out), seconds=time.monotonic() - started)

    # 1. the inventory's variables
    hosts = dict((case, (token, ec(names[case]))) for case in ("pin-var", "label-var", "module-var", "no-conf"))
    inv1 = write_inventory(tmp / "vars.yml", lab, hosts, kek)
    data, group = host_vars(inv1)
    group["hosts"]["pin-var"]["byok_user_pin"] = "0000" + token.pin[4:][::-1]
    group["hosts"]["label-var"]["byok_token_label"] = "no-such-token"
    group["hosts"]["module-var"]["byok_pkcs11_module"] = str(tmp / "no-such-lib.so")
    group["hosts"]["no-conf"]["byok_hsm_environment"] = {}
    inv1.write_text(json.dumps(data))
    first = run(inv1, {})

    # 2. the environment (an AWX HSM credential): each host leaves one of the variables empty
    hosts = dict((case, (token, ec(names[case]))) for case in ("pin-env", "label-env", "module-env"))
    inv2 = write_inventory(tmp / "env.yml", lab, hosts, kek)
    data, group = host_vars(inv2)
    del group["vars"]["byok_pkcs11_module"]
    for case in ("pin-env", "label-env"):
        group["hosts"][case]["byok_pkcs11_module"] = SOFTHSM_LIB
    del group["hosts"]["pin-env"]["byok_user_pin"]
    del group["hosts"]["label-env"]["byok_token_label"]
    inv2.write_text(json.dumps(data))
    second = run(inv2, {"PKCS11_USER_PIN": "0000" + token.pin[4:][::-1], "PKCS11_TOKEN_LABEL": "no-such-token",
                        "PKCS11_MODULE": str(tmp / "no-such-lib.so")})

    for done in (first, second):
        assert done.rc != 0, str(done)
    rows = report_messages(first.output)
    rows.update(report_messages(second.output))
    return {"names": names, "rows": rows, "runs": (first, second), "token": token}


def row(mistakes, case):
    name = mistakes["names"][case]
    assert name in mistakes["rows"], "no report row for %s:\n%s" % (name, mistakes["runs"])
    line = mistakes["rows"][name]
    assert "failed" in line, line
    return line


# Each HSM setting the user can give two ways: (case prefix, inventory variable, environment variable)
SETTINGS = [("pin", "byok_user_pin", "PKCS11_USER_PIN"), ("label", "byok_token_label", "PKCS11_TOKEN_LABEL"),
            ("module", "byok_pkcs11_module", "PKCS11_MODULE")]


@pytest.mark.parametrize("case,named,not_named", [("%s-var" % what, var, env) for what, var, env in SETTINGS]
                         + [("%s-env" % what, env, var) for what, var, env in SETTINGS])
def test_row_names_the_variable_the_user_set(mistakes, case, named, not_named):
    line = row(mistakes, case)
    assert named in line, "the row of %s does not name %s: %r" % (case, named, line)
    assert not_named not in line, "the row of %s names %s, which the user did not set: %r" % (case, not_named, line)
    assert not re.search(r"(?<![\w.])(user_pin|token_label|pkcs11_module)\b", line), \
        "the row names a module option instead of the variable: %r" % line
    assert mistakes["token"].pin not in line


def test_forgotten_softhsm2_conf_names_the_file_read_and_the_variable(mistakes):
    line = row(mistakes, "no-conf")
    assert "byok_hsm_environment.SOFTHSM2_CONF" in line, line
    assert SOFTHSM_DEFAULT_CONF in line, "the row does not name the configuration SoftHSM read: %r" % line


# --------------------------------------------------------------------------------------------------------------------
# The modules on their own: the option, or the environment variable
# --------------------------------------------------------------------------------------------------------------------

def test_module_wrong_pin_from_the_environment_names_it(run_module, make_token):
    token = make_token()
    args = dict(token.pkcs11_args(), label=unique("ec"), key_type="EC", curve="P-256")
    del args["user_pin"]
    run = run_module("hsm_keygen", args, env=dict(token.env, PKCS11_USER_PIN="0000" + token.pin[4:][::-1]))
    msg = assert_one_line_failure(run, "PKCS11_USER_PIN")
    assert_says_how_to_fix(msg)
    assert not re.search(r"(?<![\w.])user_pin\b", msg), "the message names the option the user did not set: %r" % msg
    assert token.objects() == []


def test_module_wrong_pin_as_option_names_the_option(run_module, make_token):
    token = make_token()
    args = dict(token.pkcs11_args(pin="0000" + token.pin[4:][::-1]), label=unique("ec"), key_type="EC", curve="P-256")
    run = run_module("hsm_keygen", args, env=token.env)
    msg = assert_one_line_failure(run, "user_pin")
    assert "PKCS11_USER_PIN" not in msg, msg


def test_module_token_not_found_names_the_softhsm_configuration(run_module, make_token):
    token = make_token()
    args = dict(token.pkcs11_args(), label=unique("ec"), key_type="EC", curve="P-256")
    run = run_module("hsm_keygen", args, env={})
    msg = assert_one_line_failure(run, "token_label", token.label, "SOFTHSM2_CONF", SOFTHSM_DEFAULT_CONF)
    assert_says_how_to_fix(msg)
    run = run_module("hsm_keygen", dict(args, token_label="no-such-token"), env=token.env)
    msg = assert_one_line_failure(run, "no-such-token", "SOFTHSM2_CONF", str(token.conf))
    assert token.label in msg, "the message does not list the tokens that exist: %r" % msg


# --------------------------------------------------------------------------------------------------------------------
# Warnings: each key once, named as the user finds it
# --------------------------------------------------------------------------------------------------------------------

def padding_warnings(output):
    warnings = re.findall(r"\[WARNING\]: (.*?)(?=\n\S|\Z)", output, re.S)
    return [" ".join(w.split()) for w in warnings if "zero-pads" in w]


def test_zero_padding_warning_names_a_key_wrapped_for_two_vaults_once(lab, make_token, run_playbook, tmp_path):
    """One HSM key sent to two vaults is wrapped twice in one byok_wrap call; the warning names it once."""
    token = make_token()
    name, label = unique("ut-two"), unique("ut-shared")
    keys = [{"name": name, "label": label, "vault": vault, "key_type": "EC", "curve": "P-256"} for vault in ("premium", "mhsm")]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, unique("ut-kek"))
    data = json.loads(inventory.read_text())
    data["all"]["vars"]["byok_vaults"]["mhsm"] = {"url": lab.env["LAB_VAULT_MHSM"], "type": "managed_hsm",
                                                  "kek_name": unique("ut-kek"), "kek_size": 2048}
    inventory.write_text(json.dumps(data))
    run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert run.rc == 0, str(run)
    padding = padding_warnings(run.output)
    assert len(padding) == 1, padding
    assert padding[0].count(label) == 1, "the warning names the key more than once: %r" % padding[0]


def test_stage2_warning_names_the_byok_file_and_offline_inventory_without_vaults(lab, make_token, run_playbook, tmp_path):
    """Stage 2 writes wrapped/HOST/VAULT/NAME.byok, named after the vault key: its warning names that file, not only the
    HSM label. And docs/air-gapped.md's offline inventory: byok_vaults left out works; the connected inventory's
    byok_vaults with a URL that cannot be resolved offline is refused before anything is wrapped."""
    from test_fleet import STAGED, inventory as staged_inventory

    token = make_token()
    name, label = unique("ut-file"), unique("ut-hsm")
    keys = [{"name": name, "label": label, "vault": "premium", "key_type": "EC", "curve": "P-256"}]
    keks = {"premium": unique("ut-kek"), "mhsm": unique("ut-kek")}
    connected = staged_inventory(tmp_path / "connected.yml", lab, {"hsm1": (token, keys)}, keks)
    offline = staged_inventory(tmp_path / "offline.yml", lab, {"hsm1": (token, keys)}, keks, with_vaults=False)
    bundle = tmp_path / "bundle"
    fetch = run_playbook(STAGED[0], connected, extra_env=lab.azure_env, extra_args=["-e", "byok_bundle_dir=%s" % bundle])
    assert fetch.rc == 0, str(fetch)
    fingerprint = json.loads((bundle / "keks" / "premium.json").read_text())["fingerprint"]
    args = ["-e", "byok_bundle_dir=%s" % bundle, "-e", json.dumps({"byok_expected_kek_fingerprints": {"premium": fingerprint}})]

    # the connected inventory taken offline as it is: its vault URL comes from a variable the offline side lacks
    unresolved = json.loads(connected.read_text())
    unresolved["all"]["vars"]["byok_vaults"]["premium"]["url"] = "{{ lookup('ansible.builtin.env', 'BYOK_NO_SUCH_VAULT') }}"
    (tmp_path / "unresolved.yml").write_text(json.dumps(unresolved))
    refused = run_playbook(STAGED[1], tmp_path / "unresolved.yml", extra_args=args)
    assert refused.rc != 0 and "byok_vaults.premium" in refused.output, str(refused)
    assert not (bundle / "wrapped").exists() or not any((bundle / "wrapped").rglob("*.byok")), str(refused)

    wrap = run_playbook(STAGED[1], offline, extra_args=args)
    assert wrap.rc == 0, str(wrap)
    byok = bundle / "wrapped" / "hsm1" / "premium" / ("%s.byok" % name)
    assert byok.is_file()
    padding = padding_warnings(wrap.output)
    assert padding, "SoftHSM 2.6.1 zero-pads every EC key; no warning:\n%s" % wrap.output[-6000:]
    assert any("%s.byok" % name in w for w in padding), "the warning does not name the .byok file: %s" % padding


def test_check_mode_shows_a_planned_rotation_as_a_rotation(lab, make_token, run_playbook, tmp_path):
    """A key in place, then a new HSM label with force: true (docs/inventory.md, Rotation), in check mode: the new HSM
    key does not exist yet, so there is no fingerprint to compare - the row says "would rotate", not that the
    fingerprints differ."""
    from test_transfer import report_rows

    token = make_token()
    name, kek = unique("ut-rot"), unique("ut-kek")
    keys = [{"name": name, "vault": "premium", "key_type": "EC", "curve": "P-256"}]
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    first = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env)
    assert first.rc == 0, str(first)

    keys[0].update(label=unique("ut-rot-2027"), force=True)
    inventory = write_inventory(tmp_path / "inventory.yml", lab, {"hsm1": (token, keys)}, kek)
    check = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env, check=True)
    assert check.rc == 0, str(check)
    row = report_rows(check.output)[name]
    assert row["result"].startswith("would rotate"), " ".join("%s=%s" % kv for kv in row.items())
    assert "new version of %s" % name in row["message"], row
    assert row["mark"] != "DIFFERS", "no HSM fingerprint yet, nothing was compared: %s" % row
    assert len(lab.keys()[name]["versions"]) == 1
