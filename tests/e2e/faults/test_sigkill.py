# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SIGKILL at each step of playbooks/transfer.yml, INSIDE the HSM modules too, then a run to completion.

One shared setup (5 HSM hosts = 5 SoftHSM2 tokens, each with an RSA-2048 and an EC P-256 key, hsm2 also with an
RSA-4096 key, first in its list; one KEK), five killed runs, one host each, and one final run of all hosts - the
re-run after every kill - in this order:

  stage   --limit  killed when ...                                                       so the kill lands
  kek     hsm1     the lab's log shows the KEK created (POST .../create 200)              after KEK creation, before
                                                                                           any key exists on the token
  keygen  hsm2     the PKCS#11 call log shows C_GenerateKeyPair begun (the RSA-4096 key)  inside hsm_keygen, while the
                   and not ended, no object of it on the token yet                        token generates the key
  wrap    hsm3     the call log shows C_WrapKey begun and not ended (the shim holds each   inside byok_wrap, in the
                   wrap BYOK_SHIM_WRAP_DELAY_MS)                                          middle of a wrap
  import  hsm4     the vault has stored one of hsm4's keys, its answer held back by a     during import: the answer
                   `slow` fault, the keyvault_import process still running                to the PUT never arrives
  after   hsm5     the lab's log shows hsm5's imports answered and no keyvault_import     after import, before the
                   process is left, while ansible-playbook still runs                     report
  final   (all)    not killed; must succeed

The keygen and wrap runs reach SoftHSM through the test PKCS#11 shim (tests/pkcs11_shim), which passes every call
through and writes the call log (BYOK_SHIM_CALL_LOG). No marker depends on the name of a task of the role (they are
being renamed): markers are lab log lines, the vault's state, module processes (AnsiballZ_<module>.py) and the call
log. The whole process group of ansible-playbook (workers and module processes) gets SIGKILL.

Each test below checks one promise: every kill landed where intended (after its step started, before it ended); after
the final run every key moved, one vault version each, each token holds exactly ONE private and ONE public object per
label, the KEK exists once, no byok-* work directories are left, and nothing a killed run left behind holds the PIN.
"""

from __future__ import annotations

import base64
import io
import re
import time
import zipfile
from pathlib import Path

import pytest

from .conftest import (Background, _descendants, _alive, assert_each_key_once, assert_tokens_exact, ec, ensure_shim, new_fleet,
                       new_work, playbook_cmd, rsa, run_playbook, unique)

# Task names of the role: none is needed by the markers above. Were one needed, it would go here (and only here):
# the role's tasks are being renamed.
ROLE_TASK_PATTERNS: dict = {}

STAGES = [("kek", "hsm1"), ("keygen", "hsm2"), ("wrap", "hsm3"), ("import", "hsm4"), ("after", "hsm5")]
SHIM_STAGES = ("keygen", "wrap")
WRAP_DELAY_MS = 4000
BANNER_RE = re.compile(r"^(?:TASK|PLAY) \[(?P<name>[^\]]*)\]", re.M)


def _cmdline(pid: int) -> bytes:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _ppid(pid: int) -> int:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def module_pids(root: int, module: str):
    """Live module processes below root that run byok.keyvault's <module>.

    Without pipelining ansible runs AnsiballZ_<module>.py; with pipelining the module comes on stdin of a python
    started by ansible's `/bin/sh -c '<python> && sleep 0'`, whose command line names no module: such a process counts
    for any module (the stages that use this have one module running at a time).
    """
    wanted = ("AnsiballZ_%s.py" % module).encode()
    out = []
    for pid in _descendants(root):
        cmdline = _cmdline(pid)
        parent = _cmdline(_ppid(pid))
        piped = parent.startswith(b"/bin/sh\0-c\0") and b"&& sleep 0" in parent and b"AnsiballZ_" not in parent
        if (wanted in cmdline or (piped and b"python" in cmdline)) and _alive(pid):
            out.append(pid)
    return out


def target_calls(log: str, call: str, phase: str):
    """The shim's call-log lines `<call> <phase> ... token=1`: calls on token objects (target keys), not on the session
    objects of the test wraps that prove the wrap mechanisms."""
    return [line for line in log.splitlines() if line.split()[1:3] == [call, phase] and line.endswith(" token=1")]


def shim_pids(log: str, call: str):
    """pids of the processes that logged `<call> begin` on a token object in the shim's call log."""
    return sorted({int(line.split()[0]) for line in target_calls(log, call, "begin")})


def lab_log(lab) -> str:
    path = lab.state_dir / "server.log"
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def call_log(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def object_files(token) -> list:
    """The object files of a token store (one per token object; token.object is the token itself)."""
    return sorted(p.name for p in (token.directory / "tokens").rglob("*.object") if p.name != "token.object")


def wait_until(run: Background, predicate, timeout: float = 240, interval: float = 0.02) -> bool:
    """True when predicate() held while ansible-playbook still ran; False when it ended first or on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            return False
        if predicate():
            return run.proc.poll() is None
        time.sleep(interval)
    return False


class Chain:
    def __init__(self):
        self.fleet = None
        self.work = None
        self.stages = {}          # name -> dict(reached, killed, order, versions, census, output, ...)
        self.final = None
        self.tmp_before = None
        self.tmp_after = None


@pytest.fixture(scope="module")
def chain(fl_lab, fl_base_env, tmp_path_factory):
    c = Chain()
    c.work = new_work(tmp_path_factory.mktemp("sigkill"), fl_base_env)
    keys = {h: [rsa(unique("k%s-r" % h[-1])), ec(unique("k%s-e" % h[-1]))] for _s, h in STAGES}
    keys["hsm2"].insert(0, rsa(unique("k2-big"), key_size=4096))  # first in hsm2's list: generated first
    c.fleet = new_fleet(fl_lab, c.work, keys)
    c.tmp_before = c.work.byok_entries()
    shim = ensure_shim()
    kek_created = re.compile(r" POST /keys/%s/create 200 " % re.escape(c.fleet.kek_name))

    for name, host in STAGES:
        token = c.fleet.hosts[host]
        host_keys = [k["name"] for k in keys[host]]
        extra_env = dict(fl_lab.azure_env)
        extra_args = ["--limit", host]
        shim_log = c.work.path / ("pkcs11-calls-%s.log" % name)
        if name in SHIM_STAGES:
            extra_args += ["-e", "byok_pkcs11_module=%s" % shim]
            extra_env["BYOK_SHIM_CALL_LOG"] = str(shim_log)
        if name == "wrap":
            extra_env["BYOK_SHIM_WRAP_DELAY_MS"] = str(WRAP_DELAY_MS)
        if name == "import":
            fl_lab.faults(next=["slow"], method="PUT", slow_seconds=20)
        log_offset = len(lab_log(fl_lab))
        objects_before = object_files(token)
        order = {}
        run = Background(c.work, playbook_cmd(c.fleet.inventory, extra_args=extra_args), env=extra_env)

        if name == "kek":
            reached = wait_until(run, lambda: bool(kek_created.search(lab_log(fl_lab)[log_offset:])))
            order["kek created"] = reached
            order["no key on the token yet"] = object_files(token) == objects_before == []
        elif name == "keygen":
            reached = wait_until(run, lambda: bool(target_calls(call_log(shim_log), "C_GenerateKeyPair", "begin")))
            order["C_GenerateKeyPair begun"] = reached
            pids = shim_pids(call_log(shim_log), "C_GenerateKeyPair")
            order["the RSA-4096 key not stored yet"] = object_files(token) == objects_before
            order["hsm_keygen running it"] = bool(pids) and all(_alive(p) for p in pids)
        elif name == "wrap":
            reached = wait_until(run, lambda: bool(target_calls(call_log(shim_log), "C_WrapKey", "begin")))
            order["C_WrapKey begun"] = reached
            pids = shim_pids(call_log(shim_log), "C_WrapKey")
            order["byok_wrap running it"] = bool(pids) and all(_alive(p) for p in pids)
        elif name == "import":
            # the vault has stored one of the host's keys (its answer is held back 20 s by the slow fault)
            reached = wait_until(run, lambda: any(fl_lab.versions(n) for n in host_keys), interval=0.1)
            order["a key stored by the vault"] = reached
            order["keyvault_import waiting for the answer"] = bool(module_pids(run.proc.pid, "keyvault_import"))
        else:  # after
            answered = [re.compile(r" PUT /keys/%s/? 200 " % re.escape(n)) for n in host_keys]
            reached = wait_until(run, lambda: all(a.search(lab_log(fl_lab)[log_offset:]) for a in answered)
                                 and not module_pids(run.proc.pid, "keyvault_import"))
            order["imports answered and keyvault_import ended"] = reached
        alive = run.proc.poll() is None
        banners = BANNER_RE.findall(run.output)
        if alive:
            run.kill()
        else:
            run.wait()
        fl_lab.faults(off=True, slow_seconds=2)
        # what the killed run left tells whether the step had ended: checked after the kill, when nothing moves any more
        calls = call_log(shim_log)
        if name == "keygen":
            order["C_GenerateKeyPair had not ended"] = not target_calls(calls, "C_GenerateKeyPair", "end")
        if name == "wrap":
            order["C_WrapKey had not ended"] = not target_calls(calls, "C_WrapKey", "end")
            order["nothing of the host imported"] = not any(fl_lab.versions(n) for n in host_keys)
        c.stages[name] = {
            "reached": reached, "killed": alive, "order": order, "output": run.output, "last_banner": banners[-1:],
            "calls": calls,
            "versions": {n: len(fl_lab.versions(n)) for n in c.fleet.names},
            "census": {h: t.census() for h, t in c.fleet.hosts.items()},
            "kek_versions": len(fl_lab.versions(c.fleet.kek_name)),
        }

    c.final = run_playbook(c.work, c.fleet.inventory, env=fl_lab.azure_env)
    c.tmp_after = c.work.byok_entries()
    return c


def test_each_step_was_reached_and_killed(chain):
    problems = {n: {"reached": s["reached"], "killed": s["killed"], "last banner": s["last_banner"],
                    "tail": s["output"][-1500:]}
                for n, s in chain.stages.items() if not (s["reached"] and s["killed"])}
    assert not problems, "kill points not reached or run not killed: %s" % problems


def test_each_kill_landed_inside_its_step(chain):
    """The markers came in the intended order: each kill after its step started and before it ended."""
    problems = {n: {"order": s["order"], "last banner": s["last_banner"], "calls": s["calls"][-600:]}
                for n, s in chain.stages.items() if not all(s["order"].values())}
    assert not problems, "kills that did not land inside their step: %s" % problems


def test_run_after_the_kills_succeeds(chain):
    assert chain.final.rc == 0, chain.final
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in chain.final.recap.values()), chain.final


def test_no_duplicate_version_at_any_point(chain):
    dupes = {n: {k: v for k, v in s["versions"].items() if v > 1} for n, s in chain.stages.items()}
    assert not any(dupes.values()), "duplicate vault versions after a killed run: %s" % dupes
    stored = chain.stages["import"]["versions"]
    host = dict(STAGES)["import"]
    names = [k["name"] for k in chain.fleet.keys[host]]
    assert any(stored[n] == 1 for n in names), "the kill during import did not hit a stored-but-unanswered import: %s" % stored


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


def pin_hits(work, pins):
    """Every file (or AnsiballZ member) under ansible's remote/local tmp and TMPDIR of a run's work dir that holds one
    of pins (bytes)."""
    hits = []
    for base in (work.path / "ansible-remote-tmp", work.path / "ansible-local-tmp", work.tmpdir):
        for path in base.rglob("*"):
            if not path.is_file():
                continue
            blobs = {str(path): path.read_bytes()}
            if path.name.startswith("AnsiballZ_"):
                blobs.update({"%s!%s" % (path, n): b for n, b in _ansiballz_members(path).items()})
            hits += [where for where, blob in blobs.items() for pin in pins if pin in blob]
    return hits


def test_no_pin_in_what_the_killed_runs_left(chain):
    """Leftovers of the killed runs (ansible's remote_tmp, TMPDIR) must not hold a token PIN, even zipped."""
    hits = pin_hits(chain.work, [t.pin.encode() for t in chain.fleet.hosts.values()])
    assert not hits, "a token PIN is readable in files the killed runs left: %s" % hits
