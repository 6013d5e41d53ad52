# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The commands of the docs, run as they are written, so that the docs cannot drift from the collection.

- docs/quickstart.md: every console block, in order, in one bash shell in this checkout, with a lab of its own
  (BYOK_LAB_DIR in a temporary directory): `make demo`, then the commands that run the playbook by hand.
- docs/awx.md, "The same job without AWX: ansible-runner": every console block, in order, in one bash shell in a
  fresh copy of the repository (the files git knows, nothing built), against the same lab: the collection is built
  and installed into the job, the job runs with ansible-runner and its rc is 0.

A console block is a ```console fence; its commands are the lines starting with "$ " (with their continuation lines
and here-documents), the other lines are output the command must print. A block right after a line
`<!-- docs-test: skip - why -->` is not run (it installs packages or needs a real HSM); the reason is required.
The awx.awx task examples of docs/awx.md are checked without running them: each passes its options one by one (a
whole-dictionary template warns "Using a template for task args is unsafe" on ansible-core 2.19), and the options
are those of the files in awx/.

One lab for the whole module, about 40 s on the project's machines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, VENV_BIN, _SCRUB, Lab, _free_base_port

DOCS = ROOT / "docs"
RUNNER_SECTION = "## The same job without AWX: ansible-runner"
SKIP_RE = re.compile(r"^\s*<!--\s*docs-test:\s*skip\b\s*[-:]?\s*(?P<why>.*?)\s*-->\s*$")
FENCE_RE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
HEREDOC_RE = re.compile(r"<<-?\s*['\"]?(?P<word>\w+)['\"]?")
STEP = "@@docs-test step %d@@"


# --------------------------------------------------------------------------------------------------------------------
# Reading the docs
# --------------------------------------------------------------------------------------------------------------------

def section(text: str, heading: str) -> str:
    """The text from a '## ' heading to the next heading of the same level."""
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1:]
    m = re.search(r"^## ", rest, re.M)
    return heading + "\n" + (rest[:m.start()] if m else rest)


def fenced_blocks(text: str):
    """[(first line number, language, [lines, dedented], skip reason or None)] of every fenced block."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m or not m.group("lang"):
            i += 1
            continue
        indent = len(m.group("indent"))
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP_RE.match(previous)
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        blocks.append((i - len(body), m.group("lang"), body, skip.group("why") if skip else None))
        i += 1
    return blocks


def commands(body):
    """[(command text, [expected output lines])] of a console block."""
    out = []
    lines = list(body)
    while lines:
        line = lines.pop(0)
        if not line.startswith("$ "):
            assert out, "a console block starts with output, not a command: %r" % line
            if line.strip():
                out[-1][1].append(line.strip())
            continue
        cmd = [line[2:]]
        while cmd[-1].endswith("\\") and lines:
            cmd.append(lines.pop(0))
        heredoc = HEREDOC_RE.search(cmd[0])
        if heredoc:
            while lines:
                cmd.append(lines.pop(0))
                if cmd[-1].strip() == heredoc.group("word"):
                    break
            else:
                raise AssertionError("here-document %s is not closed: %r" % (heredoc.group("word"), cmd))
        out.append(("\n".join(cmd), []))
    return out


def console_steps(text: str):
    """(steps to run, skipped blocks): steps are (command, expected output); skipped are (line, reason)."""
    steps, skipped = [], []
    for line, lang, body, skip in fenced_blocks(text):
        if lang not in ("console", "shell-session"):
            continue
        if skip is not None:
            assert skip, "the docs-test skip marker before the block at line %d gives no reason" % line
            skipped.append((line, skip))
            continue
        steps.extend(commands(body))
    return steps, skipped


def script(steps) -> str:
    """One bash script: the steps in order, each announced on stdout, stopping at the first that fails."""
    parts = ["set -eo pipefail", "exec 2>&1"]
    for n, (cmd, _expected) in enumerate(steps):
        parts.append("printf '\\n%s\\n'" % (STEP % n))
        parts.append(cmd)
    parts.append("printf '\\n%s\\n'" % (STEP % len(steps)))
    return "\n".join(parts) + "\n"


def run_steps(steps, cwd: Path, env, timeout=240):
    """Run the steps in one bash; fail naming the command that failed or did not print its documented output."""
    proc = subprocess.run(["bash", "-c", script(steps)], cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    output = proc.stdout
    pieces = re.split(r"^@@docs-test step (\d+)@@$", output, flags=re.M)
    printed = dict((int(pieces[k]), pieces[k + 1]) for k in range(1, len(pieces) - 1, 2))
    done = max(printed) if printed else -1
    if proc.returncode != 0 or done != len(steps):
        failed = steps[done][0] if 0 <= done < len(steps) else "(before the first command)"
        raise AssertionError("the documented command failed (rc %d):\n$ %s\n%s" % (
            proc.returncode, failed, printed.get(done, output)[-6000:]))
    for n, (cmd, expected) in enumerate(steps):
        got = [line.strip() for line in printed.get(n, "").splitlines()]
        for line in expected:
            assert line in got, "$ %s\ndid not print the documented %r; it printed:\n%s" % (cmd, line, printed.get(n, "")[-4000:])
    return printed


def clean_env(**extra):
    """The caller's environment without what the docs' commands set themselves (the venv on PATH, ANSIBLE_*, AZURE_*)."""
    env = {k: v for k, v in os.environ.items() if not _SCRUB.match(k) and k != "VIRTUAL_ENV"}
    env["PATH"] = ":".join(p for p in env.get("PATH", "/usr/bin:/bin").split(":") if p and Path(p) != VENV_BIN)
    env.update(ANSIBLE_NOCOLOR="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------------------------------
# Without the lab: what the docs' blocks are
# --------------------------------------------------------------------------------------------------------------------

def test_every_console_block_is_run_or_says_why_not():
    quick, quick_skipped = console_steps((DOCS / "quickstart.md").read_text())
    runner, runner_skipped = console_steps(section((DOCS / "awx.md").read_text(), RUNNER_SECTION))
    assert any(cmd == "make demo" for cmd, _why in quick), quick
    assert any(cmd.startswith("ansible-runner run ") for cmd, _why in runner), runner
    for _line, why in quick_skipped + runner_skipped:
        assert len(why) > 10, "a skip marker must say why the block is not run: %r" % why


def test_runner_recipe_names_the_playbook_as_the_project_holds_it():
    runner, _skipped = console_steps(section((DOCS / "awx.md").read_text(), RUNNER_SECTION))
    runs = [cmd for cmd, _why in runner if cmd.startswith("ansible-runner run ")]
    for cmd in runs:
        m = re.search(r"\s-p\s+(\S+)", cmd)
        assert m, cmd
        template = yaml.safe_load((ROOT / "awx" / "job_templates" / "transfer.yml").read_text())
        assert m.group(1) == template["playbook"], "the recipe runs %s; the project holds %s" % (m.group(1), template["playbook"])
        assert (ROOT / m.group(1)).is_file()
    recipe = "\n".join(cmd for cmd, _why in runner)
    assert "ANSIBLE_COLLECTIONS_PATH" in recipe, "the recipe does not make the collection visible to the job"


def awx_tasks():
    """{module: task} of the awx.awx tasks in docs/awx.md's YAML blocks."""
    found = {}
    for line, lang, body, _skip in fenced_blocks((DOCS / "awx.md").read_text()):
        if lang != "yaml" or not any("awx.awx." in b for b in body):
            continue
        for task in yaml.safe_load("\n".join(body)):
            for key, value in task.items():
                if key.startswith("awx.awx."):
                    found.setdefault(key, []).append((line, value))
    return found


def test_awx_task_examples_pass_their_options_one_by_one():
    """A whole-dictionary template as task args warns on ansible-core 2.19 ("Using a template for task args is unsafe")."""
    found = awx_tasks()
    assert {"awx.awx.credential_type", "awx.awx.job_template", "awx.awx.credential"} <= set(found), sorted(found)
    for module, uses in found.items():
        for line, args in uses:
            assert isinstance(args, dict), "docs/awx.md line %d: %s gets one template as its args: %r" % (line, module, args)
    ctype = yaml.safe_load((ROOT / "awx" / "credential_types" / "hsm_pkcs11.yml").read_text())
    assert set(found["awx.awx.credential_type"][0][1]) == set(ctype), "the credential type task and the file differ"
    template = yaml.safe_load((ROOT / "awx" / "job_templates" / "transfer.yml").read_text())
    assert set(found["awx.awx.job_template"][0][1]) == set(template) | {"survey_spec"}, \
        "the job template task and awx/job_templates/transfer.yml differ: %s" % (
            set(found["awx.awx.job_template"][0][1]) ^ (set(template) | {"survey_spec"}))


# --------------------------------------------------------------------------------------------------------------------
# Against the lab
# --------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def docs_lab(tmp_path_factory, base_env):
    """A lab directory of its own (BYOK_LAB_DIR) that the quick start's `make demo` fills; stopped at the end."""
    lab_dir = tmp_path_factory.mktemp("docs-lab")
    lab = Lab(lab_dir / "vault", base_env)
    try:
        yield {"dir": lab_dir, "lab": lab}
    finally:
        lab.stop()


def fresh_copy(destination: Path) -> Path:
    """The files a clone of this repository has (tracked and not ignored), without .venv, build/ or lab state."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=str(ROOT), capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def test_quickstart_and_runner_recipe_run_as_written(docs_lab, tmp_path):
    if not (VENV_BIN / "ansible-runner").exists():
        pytest.skip("ansible-runner is not installed in .venv (requirements-dev.txt)")
    lab_dir = docs_lab["dir"]

    # docs/quickstart.md, in this checkout (make demo needs the bootstrapped .venv), with a lab of its own
    quick, _skipped = console_steps((DOCS / "quickstart.md").read_text())
    run_steps(quick, ROOT, clean_env(BYOK_LAB_DIR=str(lab_dir), LAB_PORT=str(_free_base_port())))
    lab_env = json.loads(docs_lab["lab"].cli("env", "--json").stdout)

    # docs/awx.md's ansible-runner recipe, in a fresh copy, with only ansible-core and ansible-runner on PATH, the
    # Azure credentials in the environment and an inventory.yml (the lab's) in the copy's root
    clone = fresh_copy(tmp_path / "clone")
    shutil.copy2(ROOT / "playbooks" / "inventory" / "lab.yml", clone / "inventory.yml")
    env = clean_env(PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "/usr/bin:/bin")), BYOK_LAB_DIR=str(lab_dir))
    env.update(lab_env)
    runner, _skipped = console_steps(section((DOCS / "awx.md").read_text(), RUNNER_SECTION))
    printed = run_steps(runner, clone, env)
    job_output = "".join(printed.values())
    assert "nothing to transfer" in job_output or "transferred" in job_output, job_output[-4000:]
    installed = clone / "job" / "collections" / "ansible_collections" / "byok" / "keyvault"
    assert (installed / "MANIFEST.json").is_file(), "the collection was not installed into the job"
