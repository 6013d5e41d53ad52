# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SIGKILL at each step of playbooks/transfer.yml, then a run to completion.

One shared setup (3 HSM hosts = 3 SoftHSM2 tokens, 6 keys RSA-2048 / EC P-256, one KEK), five killed runs and one
final run, in this order:

  stage  --limit  killed when the output shows ...                                   (the step it follows)
  kek    hsm1     TASK [... Generate the target keys in the HSM                       after KEK creation
  keygen hsm1     TASK [... Ask each vault what it holds                              after keygen
  wrap   hsm1     TASK [... Import into ...  (killed as the import task starts)      after wrap
  import hsm2     TASK [... Import into ... + the vault has stored the key,   during import (the answer to
                  its answer held back by a `slow` fault                                the PUT never arrives)
  after  hsm3     TASK [... Record the outcome of this host                           after import
  final  (all)    not killed; must succeed

The whole process group of ansible-playbook (workers and module processes) gets SIGKILL. Each test below checks one
promise after the final run: every key moved, one vault version each, the tokens hold exactly the expected objects,
the KEK exists once, no byok-* work directories are left, and nothing a killed run left behind holds the PIN.
"""

from __future__ import annotations

import base64
import io
import re
import time
import zipfile

import pytest

from .conftest import (Background, assert_each_key_once, assert_tokens_exact, ec, new_fleet, new_work, playbook_cmd,
                       rsa, run_playbook, unique)

T = "TASK [byok.keyvault.transfer : "
STAGES = [
    ("kek", "hsm1", T + "Generate the target keys in the HSM"),
    ("keygen", "hsm1", T + "Ask each vault what it holds"),
    ("wrap", "hsm1", T + "Import into "),
    ("import", "hsm2", T + "Import into "),
    ("after", "hsm3", T + "Record the outcome of this host"),
]


class Chain:
    def __init__(self):
        self.fleet = None
        self.work = None
        self.stages = {}          # name -> dict(reached, killed, versions, census, output)
        self.final = None
        self.tmp_before = None
        self.tmp_after = None


@pytest.fixture(scope="module")
def chain(fl_lab, fl_base_env, tmp_path_factory):
    c = Chain()
    c.work = new_work(tmp_path_factory.mktemp("sigkill"), fl_base_env)
    keys = {h: [rsa(unique("k%s-r" % h[-1])), ec(unique("k%s-e" % h[-1]))] for h in ("hsm1", "hsm2", "hsm3")}
    c.fleet = new_fleet(fl_lab, c.work, keys)
    c.tmp_before = c.work.byok_entries()

    for name, host, marker in STAGES:
        extra_env = dict(fl_lab.azure_env)
        if name == "import":
            fl_lab.faults(next=["slow"], method="PUT", slow_seconds=20)
        run = Background(c.work, playbook_cmd(c.fleet.inventory, extra_args=["--limit", host]), env=extra_env)
        reached = run.wait_for(marker, timeout=240)
        if reached and name == "import":
            # wait until the vault has stored one of hsm2's keys (its answer is held back 20 s by the slow fault)
            deadline = time.monotonic() + 30
            names = [k["name"] for k in keys[host]]
            while time.monotonic() < deadline and not any(fl_lab.versions(n) for n in names):
                time.sleep(0.1)
        alive = run.proc.poll() is None
        if alive:
            run.kill()
        else:
            run.wait()
        fl_lab.faults(off=True, slow_seconds=2)
        c.stages[name] = {
            "reached": reached, "killed": alive, "output": run.output,
            "versions": {n: len(fl_lab.versions(n)) for n in c.fleet.names},
            "census": {h: t.census() for h, t in c.fleet.hosts.items()},
            "kek_versions": len(fl_lab.versions(c.fleet.kek_name)),
        }

    c.final = run_playbook(c.work, c.fleet.inventory, env=fl_lab.azure_env)
    c.tmp_after = c.work.byok_entries()
    return c


def test_each_step_was_reached_and_killed(chain):
    problems = {n: {"reached": s["reached"], "killed": s["killed"], "tail": s["output"][-1500:]}
                for n, s in chain.stages.items() if not (s["reached"] and s["killed"])}
    assert not problems, "kill points not reached or run not killed: %s" % problems


def test_run_after_the_kills_succeeds(chain):
    assert chain.final.rc == 0, chain.final
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in chain.final.recap.values()), chain.final


def test_no_duplicate_version_at_any_point(chain):
    dupes = {n: {k: v for k, v in s["versions"].items() if v > 1} for n, s in chain.stages.items()}
    assert not any(dupes.values()), "duplicate vault versions after a killed run: %s" % dupes
    stored = chain.stages["import"]["versions"]
    hsm2 = [k["name"] for k in chain.fleet.keys["hsm2"]]
    assert any(stored[n] == 1 for n in hsm2), "the kill during import did not hit a stored-but-unanswered import: %s" % stored


def test_every_key_transferred_exactly_once(fl_lab, chain):
    assert_each_key_once(fl_lab, chain.fleet, "after the SIGKILLs and a final run")


def test_tokens_hold_exactly_the_expected_objects(chain):
    for name, stage in chain.stages.items():
        for host, census in stage["census"].items():
            extra = {label: per for label, per in census.items() if any(v > 1 for v in per.values())}
            assert not extra, "after the kill at %s, token of %s holds duplicates: %s" % (name, host, extra)
    assert_tokens_exact(chain.fleet, "after the SIGKILLs and a final run")


def test_kek_exists_once(fl_lab, chain):
    versions = fl_lab.versions(chain.fleet.kek_name)
    assert len(versions) == 1, "KEK %s has %d versions: %s" % (chain.fleet.kek_name, len(versions), versions)
    assert versions[0]["key_ops"] == ["import"]


def test_no_byok_work_dirs_left_after_the_rerun(chain):
    """Nothing the killed runs left in tempfile.gettempdir()/byok-* may outlive the next run (it holds wrapped keys)."""
    assert chain.final.rc == 0, chain.final
    left = sorted(set(chain.tmp_after) - set(chain.tmp_before))
    left_dirs = [d for d in left if (chain.work.tmpdir / d).is_dir()]
    contents = {d: sorted(p.name for p in (chain.work.tmpdir / d).iterdir()) for d in left_dirs}
    assert not left_dirs, "byok-* work directories left after the run that followed the kills: %s" % contents


def _ansiballz_members(path):
    """The files inside an AnsiballZ wrapper (its base64 ZIPDATA), for a search of the module arguments."""
    text = path.read_text(errors="replace")
    m = re.search(r'ZIPDATA = """(.*?)"""', text, re.S) or re.search(r"ZIPDATA = '''(.*?)'''", text, re.S)
    if not m:
        return {}
    data = base64.b64decode(m.group(1))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_no_pin_in_what_the_killed_runs_left(chain):
    """Leftovers of the killed runs (ansible's remote_tmp, TMPDIR) must not hold a token PIN, even zipped."""
    pins = [t.pin.encode() for t in chain.fleet.hosts.values()]
    hits = []
    for base in (chain.work.path / "ansible-remote-tmp", chain.work.path / "ansible-local-tmp", chain.work.tmpdir):
        for path in base.rglob("*"):
            if not path.is_file():
                continue
            blobs = {str(path): path.read_bytes()}
            if path.name.startswith("AnsiballZ_"):
                blobs.update({"%s!%s" % (path, n): b for n, b in _ansiballz_members(path).items()})
            hits += [where for where, blob in blobs.items() for pin in pins if pin in blob]
    assert not hits, "a token PIN is readable in files the killed runs left: %s" % hits
