# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab as a user-facing package: installed from its path into a fresh virtualenv (``pip install --no-deps`` plus
its dependencies from the package index), its console command works, and the example of docs/lab.md runs with the
installed pytest plugin from a directory outside the checkout, against the collection installed from a galaxy build."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import venv
from importlib.metadata import version

import pytest

from conftest import ROOT, VENV_BIN

EXAMPLE_RE = re.compile(r"<!-- example: (?P<name>[\w.]+) -->\n```python\n(?P<code>.*?)```", re.S)


def _run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=kwargs.pop("timeout", 600), check=False, **kwargs)
    assert proc.returncode == 0, "%s failed (%d):\n%s%s" % (" ".join(map(str, cmd)), proc.returncode, proc.stdout[-4000:],
                                                            proc.stderr[-4000:])
    return proc


@pytest.fixture(scope="module")
def user_env(tmp_path_factory, base_env):
    """A user's machine: a fresh venv outside the checkout with the lab package and what a playbook test needs."""
    home = tmp_path_factory.mktemp("user")
    env_dir = home / "venv"
    venv.EnvBuilder(with_pip=True).create(str(env_dir))
    python = env_dir / "bin" / "python"
    # the lab from its path (a copy: building in place would leave build/ in the checkout), without dependencies ...
    source = home / "lab-src"
    shutil.copytree(ROOT / "tests" / "lab", source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    env = {k: v for k, v in base_env.items() if k not in ("PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_CONFIG")}
    env["PATH"] = "%s:%s" % (env_dir / "bin", env["PATH"].replace(str(VENV_BIN) + ":", ""))
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(source)], env=env, cwd=str(home))
    # ... and its dependencies and a playbook test's from the index (the versions this project tests with)
    pins = ["%s==%s" % (name, version(name)) for name in ("cryptography", "ansible-core", "azure-identity", "azure-keyvault-keys",
                                                          "pytest")]
    _run([str(python), "-m", "pip", "install", "-q"] + pins, env=env, cwd=str(home))
    # the collection as a user gets it: a galaxy build, installed
    dist = home / "dist"
    _run([str(env_dir / "bin" / "ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(ROOT)], env=env,
         cwd=str(home))
    collections = home / "collections"
    _run([str(env_dir / "bin" / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(collections),
          str(next(dist.glob("byok-keyvault-*.tar.gz")))], env=env, cwd=str(home))
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    return home, env_dir, env


def test_console_command_outside_the_checkout(user_env):
    home, env_dir, env = user_env
    work = home / "cli"
    work.mkdir()
    where = _run([str(env_dir / "bin" / "python"), "-c", "import lab; print(lab.__file__)"], env=env, cwd=str(work)).stdout
    assert where.startswith(str(env_dir)), "lab imported from %s, not from the installed package" % where
    state = work / "state"
    cmd = str(env_dir / "bin" / "byok-keyvault-lab")
    _run([cmd, "init", "--state-dir", str(state)], env=env, cwd=str(work))
    values = json.loads(_run([cmd, "env", "--json", "--state-dir", str(state)], env=env, cwd=str(work)).stdout)
    assert values["LAB_CA"] == str(state / "ca.pem") and values["AZURE_CLIENT_ID"]
    usage = _run([cmd, "--help"], env=env, cwd=str(work)).stdout
    assert usage.startswith("usage: byok-keyvault-lab")


def test_documented_example_runs_with_the_installed_plugin(user_env):
    home, env_dir, env = user_env
    examples = {m.group("name"): m.group("code") for m in EXAMPLE_RE.finditer((ROOT / "docs" / "lab.md").read_text())}
    assert "test_kek_playbook.py" in examples, "docs/lab.md has no marked example"
    project = home / "my-playbooks"
    project.mkdir()
    (project / "test_kek_playbook.py").write_text(examples["test_kek_playbook.py"])
    proc = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_kek_playbook.py"],
                          env=env, cwd=str(project), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert not (project / "conftest.py").exists()  # the fixtures came from the installed plugin
