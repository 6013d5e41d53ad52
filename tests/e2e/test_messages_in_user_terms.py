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
    """{key name: the RESULT cell of its row} from the report table ("Keys, HSM hosts and vault versions")."""
    m = re.search(r"TASK \[(?:[^\]]*: )?Keys, HSM hosts and vault versions\].*?\n(?:ok|fatal): \[[^\]]+\] => (\{.*?\n\})",
                  output, re.S)
    assert m, "no report table in the output:\n%s" % output[-6000:]
    rows = {}
    for line in json.loads(m.group(1))["msg"][1:]:
        name = line.split(" ", 1)[0]
        rows[name] = line
    return rows


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


@pytest.mark.parametrize("case,named,not_named", [
    ("pin-var", "byok_user_pin", "PKCS11_USER_PIN"),
    ("label-var", "byok_token_label", "PKCS11_TOKEN_LABEL"),
    ("module-var", "byok_pkcs11_module", "PKCS11_MODULE"),
    ("pin-env", "PKCS11_USER_PIN", "byok_user_pin"),
    ("label-env", "PKCS11_TOKEN_LABEL", "byok_token_label"),
    ("module-env", "PKCS11_MODULE", "byok_pkcs11_module"),
])
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
