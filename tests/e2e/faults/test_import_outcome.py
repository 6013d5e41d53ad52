# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An import whose answer is lost and whose confirmation cannot be obtained in time is "outcome unknown", never
"failed": the REAL lab vault processes the PUT and resets the connection, then answers the version listings with
503, connection resets and 429 until the confirmation deadline passes. The vault holds exactly one version; a
re-run confirms it and changes nothing."""

from __future__ import annotations

from .conftest import module_result, new_wrapped_key, run_module

CONFIRM_SECONDS = 6


def test_lost_answer_and_unanswered_confirmation_is_unknown_not_failed(fl_lab, fl_make_token, fl_work):
    label, byok, gen, env = new_wrapped_key(fl_lab, fl_make_token(), fl_work, "funk")
    args = dict(fl_lab.azure_args(), name=label, byok_file=byok, key_ops=["sign", "verify"],
                import_confirm_timeout=CONFIRM_SECONDS)
    fl_lab.faults(off=True)
    fl_lab.faults(next=["reset"], method="PUT")
    fl_lab.faults(next=["503", "reset", "429"] * 40, method="GET", path="/versions")
    imported = module_result(run_module(fl_work, "keyvault_import", args, env=env))
    state = fl_lab.faults_state()
    fl_lab.faults(off=True)
    injected_get = 120 - len([q for q in state["queued"] if q["method"] == "GET"])
    assert injected_get >= 3, "the confirmation met fewer than 3 faults (%s): the test proved nothing" % state
    assert not [q for q in state["queued"] if q["method"] == "PUT"], "the PUT reset was not injected: %s" % state

    msg = imported.get("msg", "")
    assert "outcome unknown" in msg and "re-run to confirm" in msg, imported
    assert "failed" not in msg.lower(), "an import of unknown outcome is worded as a failure: %r" % msg
    assert "\n" not in msg
    assert imported.get("error_code") == "OutcomeUnknown", imported
    versions = fl_lab.versions(label)
    assert len(versions) == 1, "the vault holds %d versions after one lost import: %s" % (len(versions), versions)

    again = module_result(run_module(fl_work, "keyvault_import", args, env=env))
    assert not again.get("failed") and not again.get("changed"), again
    assert again["fingerprint"] == gen["fingerprint"]
    assert len(fl_lab.versions(label)) == 1


def test_lost_answer_confirmed_after_faults_is_a_success(fl_lab, fl_make_token, fl_work):
    """The same faults on the confirmation, fewer than the deadline allows: the key is confirmed, one version."""
    label, byok, gen, env = new_wrapped_key(fl_lab, fl_make_token(), fl_work, "funk")
    args = dict(fl_lab.azure_args(), name=label, byok_file=byok, key_ops=["sign", "verify"], import_confirm_timeout=60)
    fl_lab.faults(off=True)
    fl_lab.faults(next=["reset"], method="PUT")
    fl_lab.faults(next=["503", "reset", "429", "429", "429", "503"], method="GET", path="/versions")
    imported = module_result(run_module(fl_work, "keyvault_import", args, env=env))
    state = fl_lab.faults_state()
    fl_lab.faults(off=True)
    assert not state["queued"], "not every fault was met: %s" % state
    assert not imported.get("failed") and imported.get("changed"), imported
    assert imported["fingerprint"] == gen["fingerprint"]
    assert len(fl_lab.versions(label)) == 1
