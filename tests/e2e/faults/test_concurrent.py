# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two ansible-playbook transfer runs of the same inventory at the same time: no duplicate vault versions and no
duplicate HSM keys (exactly one private and one public object per label). One run may fail with a clear message;
neither may crash, and together they must leave every key transferred exactly once."""

from __future__ import annotations

from .conftest import Background, assert_each_key_once, assert_tokens_exact, ec, playbook_cmd, rsa, unique


def test_two_runs_at_once_never_duplicate(fl_lab, fl_fleet, fl_work):
    fleet = fl_fleet({"hsm1": [rsa(unique("cc-r1")), ec(unique("cc-e1"))],
                      "hsm2": [ec(unique("cc-e2")), rsa(unique("cc-r2"))]})
    runs = [Background(fl_work, playbook_cmd(fleet.inventory), env=fl_lab.azure_env) for _dummy in range(2)]
    results = [r.wait(timeout=600) for r in runs]

    assert any(r.rc == 0 for r in results), "both concurrent runs failed:\n%s\n=====\n%s" % tuple(results)
    for r in results:
        if r.rc != 0:
            assert "Traceback" not in r.output and "MODULE FAILURE" not in r.output, "a concurrent run crashed:\n%s" % r
    assert_each_key_once(fl_lab, fleet, "after two concurrent runs")
    assert_tokens_exact(fleet, "after two concurrent runs")
    assert len(fl_lab.versions(fleet.kek_name)) == 1, "two concurrent runs made %d KEK versions" % len(
        fl_lab.versions(fleet.kek_name))

    assert fl_work.byok_dirs() == [], fl_work.byok_dirs()
