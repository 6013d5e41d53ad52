# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The softhsm role initialises a token without a PIN on any command line: the test samples /proc/*/cmdline (what
`ps` shows every local user) while a REAL ansible-playbook run of the role works, then logs in to the token with
both PINs over PKCS#11."""

from __future__ import annotations

import json
import os
import secrets
import subprocess

from conftest import ANSIBLE_PLAYBOOK, PYTHON, SOFTHSM_LIB, _env, unique

_LOGIN = r"""
import json, os, sys
import pkcs11
args = json.loads(sys.stdin.read())
token = pkcs11.lib(args['lib']).get_token(token_label=args['label'])
with token.open(user_pin=args['user_pin']):
    pass
with token.open(rw=True, so_pin=args['so_pin']):
    pass
print('ok')
"""


def command_lines() -> dict:
    """{pid: command line} of every process now (as `ps` shows them to any user)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as handle:
                    out[entry] = handle.read().replace(b"\0", b" ")
            except OSError:
                pass
    return out


def test_role_keeps_pins_off_command_lines_and_the_token_works(base_env, tmp_path):
    user_pin, so_pin = "U" + secrets.token_hex(10), "S" + secrets.token_hex(10)
    label = unique("role")
    softhsm_dir = tmp_path / "hsm"
    playbook = tmp_path / "softhsm.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: byok.keyvault.softhsm\n"
        "      vars:\n"
        "        softhsm_install: false\n"
        "        softhsm_dir: %s\n"
        "        softhsm_token_label: %s\n"
        "        softhsm_user_pin: %s\n"
        "        softhsm_so_pin: %s\n" % (json.dumps(str(softhsm_dir)), label, user_pin, so_pin))
    cmd = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % PYTHON, str(playbook)]
    proc = subprocess.Popen(cmd, env=_env(base_env, None), cwd=str(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    seen, samples, leaks = set(), 0, []
    while proc.poll() is None:
        for pid, line in command_lines().items():
            seen.add(line)
            if user_pin.encode() in line or so_pin.encode() in line:
                leaks.append((pid, line.replace(user_pin.encode(), b"<user pin>").replace(so_pin.encode(), b"<so pin>")[:300]))
        samples += 1
    output = proc.stdout.read().decode("utf-8", "replace")
    assert proc.returncode == 0, output
    assert samples > 10, "too few samples of the process list (%d) to say anything" % samples
    assert any(b"AnsiballZ" in line or b"ansible" in line for line in seen), "the sampler never saw the run"
    assert not leaks, "a PIN was on a command line while the role ran: %s" % leaks
    assert user_pin not in output and so_pin not in output

    env = dict(base_env, SOFTHSM2_CONF=str(softhsm_dir / "softhsm2.conf"))
    login = subprocess.run([PYTHON, "-c", _LOGIN], input=json.dumps({"lib": SOFTHSM_LIB, "label": label, "user_pin": user_pin,
                                                                     "so_pin": so_pin}),
                           env=env, capture_output=True, text=True, timeout=60, check=False)
    assert login.returncode == 0 and login.stdout.strip() == "ok", login.stdout + login.stderr

    # a second run finds the token and initialises nothing
    again = subprocess.run(cmd, env=_env(base_env, None), cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
                           check=False)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout + again.stderr
