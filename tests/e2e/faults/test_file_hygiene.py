# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File hygiene: .byok files (and their sidecars) are 0600, bundle directories 0700, no bundle file writable by others (air-gapped playbooks
staged_1/2/3 with -e byok_bundle_dir=...), no half-written temp files, and the transfer role's byok-* work
directories are removed when a run fails in the middle of the move (import refused by the vault)."""

from __future__ import annotations

import json
import re
import stat

from .conftest import PLAYBOOKS, assert_each_key_once, ec, rsa, run_playbook, unique


def _mode(path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_staged_bundle_modes(fl_lab, fl_fleet, fl_work):
    fleet = fl_fleet({"hsm1": [rsa(unique("hyg-r")), ec(unique("hyg-e"))], "hsm2": [ec(unique("hyg-e2"))]})
    bundle = fl_work.path / "usb" / "bundle"  # does not exist yet: the playbooks create it
    args = ["-e", "byok_bundle_dir=%s" % bundle]
    for stage in ("staged_1_fetch.yml", "staged_2_wrap.yml", "staged_3_import.yml"):
        run = run_playbook(fl_work, fleet.inventory, PLAYBOOKS / stage, extra_args=args, env=fl_lab.azure_env)
        assert run.rc == 0, "%s failed:\n%s" % (stage, run)
        if stage == "staged_1_fetch.yml":  # what the operator carries out of band: KEK fingerprints in, digests out
            fingerprints = dict((p.stem, json.loads(p.read_text())["fingerprint"]) for p in (bundle / "keks").glob("*.json"))
            args += ["-e", json.dumps({"byok_expected_kek_fingerprints": fingerprints})]
        elif stage == "staged_2_wrap.yml":
            digests = dict(re.findall(r"bundle digest of (\S+): ([0-9a-f-]{39})", run.output))
            assert sorted(digests) == ["hsm1", "hsm2"], run
            args += ["-e", json.dumps({"byok_expected_bundle_digests": digests})]
    assert_each_key_once(fl_lab, fleet, "after the staged transfer")

    byok = sorted(bundle.rglob("*.byok"))
    assert len(byok) == 3, byok
    wrong = {}
    for path in [bundle] + sorted(bundle.rglob("*")):
        mode = _mode(path)
        if path.is_dir():
            ok = mode == 0o700
        elif path.name.endswith((".byok", ".byok.json")) or path.name == "seal.json":
            ok = mode == 0o600          # wrapped key, its sidecar, the seal of a host
        else:
            ok = not mode & 0o022       # KEK PEM / KEK json: public, but nobody else may alter them
        if not ok:
            wrong[str(path.relative_to(bundle.parent))] = oct(mode)
    assert not wrong, "bundle entries with a wrong mode (dirs 0700, .byok and sidecars 0600, nothing writable by " \
                      "others): %s" % wrong
    leftovers = [str(p) for p in bundle.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert not leftovers, "half-written temp files in the bundle: %s" % leftovers
    assert fl_work.byok_dirs() == []


def test_work_dirs_removed_when_the_import_fails(fl_lab, fl_fleet, fl_work):
    name = unique("hyg-fail")
    fleet = fl_fleet({"hsm1": [ec(name)]})
    # every import request is answered 500 (without being processed) until the module gives up
    fl_lab.faults(next=["500"] * 8, method="PUT")
    run = run_playbook(fl_work, fleet.inventory, env=fl_lab.azure_env)
    fl_lab.faults(off=True)
    assert run.rc != 0, "the import was refused 8 times, yet the run succeeded:\n%s" % run
    assert fl_lab.versions(name) == []
    assert fl_work.byok_dirs() == [], "byok-* work directories left after a failed run: %s" % fl_work.byok_dirs()
    assert not list(fl_work.tmpdir.rglob("*.byok")), "a .byok file outlived the failed run"
