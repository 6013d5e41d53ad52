# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No PIN on disk by default: playbooks/transfer.yml run from a folder whose ansible.cfg says nothing (ANSIBLE_CONFIG
points at an empty file, no ANSIBLE_PIPELINING in the environment), against a REAL SoftHSM2 token and the REAL lab vault.

- Killed with SIGKILL inside hsm_keygen (the PKCS#11 call log of the test shim shows C_GenerateKeyPair begun and not
  ended, an RSA-4096 key): no file under ansible's remote tmp, TMPDIR or local tmp holds the PIN, not even zipped in an
  AnsiballZ payload, because the play runs its modules with pipelining whatever ansible.cfg says.
- With ANSIBLE_KEEP_REMOTE_FILES=1 (which turns pipelining off in ansible-core): the plan refuses to pass the PIN as a
  module argument, before any HSM login, and nothing on disk holds it.
"""

from __future__ import annotations

import pytest

from .conftest import Background, ensure_shim, new_fleet, playbook_cmd, rsa, run_playbook, unique
from .test_sigkill import call_log, pin_hits, target_calls, wait_until


@pytest.fixture
def bare_work(fl_work):
    """The test's Work with an empty ansible.cfg: ansible-core's defaults (pipelining off)."""
    empty = fl_work.path / "empty-ansible.cfg"
    empty.write_text("")
    fl_work.env["ANSIBLE_CONFIG"] = str(empty)
    fl_work.env.pop("ANSIBLE_PIPELINING", None)  # the base environment drops every ANSIBLE_* of the caller; be explicit
    fl_work.env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    return fl_work


def test_a_run_killed_inside_hsm_keygen_leaves_no_pin_on_disk(fl_lab, bare_work):
    fleet = new_fleet(fl_lab, bare_work, {"hsm1": [rsa(unique("bare-big"), key_size=4096)]})
    token = fleet.hosts["hsm1"]
    shim_log = bare_work.path / "pkcs11-calls.log"
    env = dict(fl_lab.azure_env, BYOK_SHIM_CALL_LOG=str(shim_log))
    run = Background(bare_work, playbook_cmd(fleet.inventory, extra_args=["-e", "byok_pkcs11_module=%s" % ensure_shim()]),
                     env=env)
    reached = wait_until(run, lambda: bool(target_calls(call_log(shim_log), "C_GenerateKeyPair", "begin")))
    alive = run.proc.poll() is None
    if alive:
        run.kill()
    else:
        run.wait()
    assert reached and alive, "the run was not killed inside hsm_keygen:\n%s" % run.output[-4000:]
    assert not target_calls(call_log(shim_log), "C_GenerateKeyPair", "end"), "the kill landed after the key generation"
    hits = pin_hits(bare_work, [token.pin.encode()])
    assert not hits, "the PIN is readable in files the killed run left: %s" % hits


def test_keep_remote_files_is_refused_before_the_pin_is_passed(fl_lab, bare_work):
    fleet = new_fleet(fl_lab, bare_work, {"hsm1": [rsa(unique("bare-keep"))]})
    token = fleet.hosts["hsm1"]
    before = fl_lab.dump()
    run = run_playbook(bare_work, fleet.inventory, env=dict(fl_lab.azure_env, ANSIBLE_KEEP_REMOTE_FILES="1"))
    assert run.rc != 0, run
    assert "hsm1: byok_user_pin: ANSIBLE_KEEP_REMOTE_FILES is on" in run.output, run
    assert "byok_allow_secrets_in_debug_log: true" in run.output, run
    assert token.objects() == [], "the token holds objects"
    assert fl_lab.dump() == before, "the vault changed"
    hits = pin_hits(bare_work, [token.pin.encode()])
    assert not hits, "the PIN is readable in files the run left: %s" % hits
