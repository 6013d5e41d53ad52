# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A long run shows its progress: the callback byok.keyvault.progress (enabled in playbooks/ansible.cfg) prints, during
each long step, keys done of all, the rate and an estimate, at least once per 10 seconds of the step (REAL SoftHSM2
tokens, the REAL lab vault with Azure's service limits on, a REAL 200-key ansible-playbook run).

The progress folder the modules count in holds counts only, and is gone after the run.
"""

from __future__ import annotations

import re

from conftest import TRANSFER_PLAYBOOK, unique
from lab import testing
from test_reports import manifest
from test_transfer import write_inventory

LINE = re.compile(r"^\[progress\] (?P<step>[a-zA-Z ]+): (?P<done>\d+)/(?P<total>\d+) keys(?P<rest>.*)\(elapsed (?P<elapsed>[\dhms]+)\)$",
                  re.M)


def seconds(text):
    total = 0
    for value, unit in re.findall(r"(\d+)([hms])", text):
        total += int(value) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def test_a_200_key_run_shows_its_progress_at_least_every_10_seconds(lab, make_token, run_playbook, tmp_path):
    before = lab.settings()["limits"]
    # Azure's limits in windows of 1 s, and the modules pacing in windows of 1 s: 200 imports take a few dozen seconds
    lab.settings({"limits": {"enabled": True, "time_scale": 0.1}})
    try:
        hosts = {}
        for h in ("hsm1", "hsm2"):
            keys = [{"name": unique("pg-%s-%03d" % (h, i)), "vault": "premium", "key_type": "EC", "curve": "P-256",
                     "key_ops": ["sign"]} for i in range(100)]
            hosts[h] = (make_token(), keys)
        inventory = write_inventory(tmp_path / "inventory.yml", lab, hosts, unique("pg-kek"),
                                    extra_vars={"byok_azure": testing.lab_azure(lab.env, pacing_window=1)})
        folder = tmp_path / "tmp"
        folder.mkdir()
        run = run_playbook(TRANSFER_PLAYBOOK, inventory, extra_env=dict(lab.azure_env, BYOK_PROGRESS_INTERVAL="2",
                                                                        TMPDIR=str(folder)))
    finally:
        lab.settings({"limits": {"enabled": before["enabled"], "time_scale": before["time_scale"]}})
    assert run.rc == 0, str(run)
    assert len([r for r in manifest(tmp_path)["keys"] if r["result"] == "transferred"]) == 200

    lines = [m.groupdict() for m in LINE.finditer(run.output)]
    steps = {}
    for line in lines:
        steps.setdefault(line["step"], []).append(line)
    assert "import" in steps, "no progress line during the import:\n%s" % run.output[-6000:]
    for step, found in steps.items():
        done = [int(x["done"]) for x in found]
        assert done == sorted(done), "%s: keys done went down: %s" % (step, done)
        assert all(0 <= int(x["done"]) <= int(x["total"]) for x in found), found
        elapsed = [seconds(x["elapsed"]) for x in found]
        # one line per 10 seconds of the step at least (the callback prints every 2 s here)
        assert elapsed[0] <= 10 and all(b - a <= 10 for a, b in zip(elapsed, elapsed[1:])), "%s: %s" % (step, elapsed)
    imports = steps["import"]
    assert all(int(x["total"]) == 200 for x in imports), imports
    assert any("keys/s" in x["rest"] and "left" in x["rest"] for x in imports), imports
    # the counts' folder is gone, and no file the run left holds anything but counts
    assert not list(folder.glob("byok-progress-*")), list(folder.iterdir())
