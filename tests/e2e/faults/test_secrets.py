# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets never reach anything a run writes.

A fleet transfer at -vvvv, the token PINs given as ansible-vault encrypted variables (encrypt_string, vault password
file), the Azure credentials as AZURE_CLIENT_ID / AZURE_SECRET / AZURE_TENANT: once failing (one vault's URL has a
wrong port), once succeeding. Then everything written is scanned - stdout, stderr, the ANSIBLE_LOG_PATH log, the audit
manifests, TMPDIR (any .byok left), ansible's remote/local tmp, the inventory dir, the lab's folder except its own
identities.json and key state (its server.log included) - for each PIN, the client secret and any bearer token (a JWT
as the lab issues them, "eyJ...header.eyJ...payload"): zero hits.

And a transfer under ANSIBLE_DEBUG=1, with the inventory's byok_allow_secrets_in_debug_log: true (the opt-in that
lets the transfer role start when a secret would reach the debug log), plus byok_wrap and keyvault_import runs that
write a .byok and its sidecar: ansible-core's own debug output does carry the PIN (it prints every module's arguments,
no_log or not - the behaviour docs/security.md warns about), and no file the collection writes (manifests, .byok,
sidecars, lock files, work directories) does.
"""

from __future__ import annotations

import re
import secrets
import socket
import subprocess
from pathlib import Path

import pytest

from .conftest import (ANSIBLE_VAULT, ec, module_result, new_fleet, new_work, rsa, run_module, run_playbook, unique,
                       write_inventory)

JWT_RE = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _vaulted(work, password_file: Path, value: str) -> str:
    proc = subprocess.run([ANSIBLE_VAULT, "encrypt_string", "--vault-password-file", str(password_file), value],
                          env=work.env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].strip() == "!vault |", proc.stdout
    return "\n".join(line.strip() for line in lines[1:])


def _issued_token(lab) -> str:
    """A bearer token the lab issues for these credentials (the same header every token of the lab carries)."""
    from azure.identity import ClientSecretCredential
    port = lab.vault_url("premium").rsplit(":", 1)[1]
    cred = ClientSecretCredential(lab.env["AZURE_TENANT"], lab.env["AZURE_CLIENT_ID"], lab.env["AZURE_SECRET"],
                                  authority=lab.env["LAB_AUTHORITY"], disable_instance_discovery=True,
                                  connection_verify=lab.env["LAB_CA"])
    return cred.get_token("https://0.0.1:%s/.default" % port).token


class Runs:
    pass


@pytest.fixture(scope="module")
def secret_runs(fl_lab, fl_base_env, tmp_path_factory):
    r = Runs()
    r.work = work = new_work(tmp_path_factory.mktemp("secrets"), fl_base_env)
    password_file = work.path / "vault-password"
    password_file.write_text(secrets.token_urlsafe(24) + "\n")
    password_file.chmod(0o600)
    r.pins = {"hsm1": "PIN-%s" % secrets.token_hex(6), "hsm2": "PIN-%s" % secrets.token_hex(6)}
    keys = {"hsm1": [rsa(unique("sec-r1")), ec(unique("sec-e1"))],
            "hsm2": [ec(unique("sec-e2"), vault="premium2")]}
    kek = unique("fkek")
    good = {"premium": {"url": fl_lab.vault_url("premium"), "type": "premium", "kek_name": kek, "kek_size": 2048},
            "premium2": {"url": fl_lab.vault_url("premium2"), "type": "premium", "kek_name": kek, "kek_size": 2048}}
    bad = {"premium": dict(good["premium"]),
           "premium2": dict(good["premium2"], url="https://127.0.0.1:%d" % _free_port())}
    vaulted = {h: _vaulted(work, password_file, pin) for h, pin in r.pins.items()}
    r.fleet = new_fleet(fl_lab, work, keys, kek_name=kek, pins=r.pins, pin_values=vaulted, vaults=good)
    # the same hosts and tokens, one vault URL wrong
    bad_inventory = write_inventory(work.path / "inventory-bad.yml", fl_lab, r.fleet.hosts, keys, kek, r.fleet.manifest_dir,
                                    vaults=bad, pin_values=vaulted)
    inventory_text = r.fleet.inventory.read_text()
    assert "!vault" in inventory_text and not any(pin in inventory_text for pin in r.pins.values())

    args = ["-vvvv", "--vault-password-file", str(password_file)]
    log = work.path / "ansible.log"
    env = dict(fl_lab.azure_env, ANSIBLE_LOG_PATH=str(log))
    r.failing = run_playbook(work, bad_inventory, extra_args=args, env=env)
    r.tmp_after_failing = work.byok_dirs()
    r.succeeding = run_playbook(work, r.fleet.inventory, extra_args=args, env=env)
    r.tmp_after_succeeding = work.byok_dirs()
    r.token = _issued_token(fl_lab)

    # everything written: the runs' output, and every file under the test dir and the lab dir (but the lab's secrets)
    r.blobs = {"failing run stdout": r.failing.stdout.encode(), "failing run stderr": r.failing.stderr.encode(),
               "succeeding run stdout": r.succeeding.stdout.encode(), "succeeding run stderr": r.succeeding.stderr.encode()}
    skip_lab = {fl_lab.state_dir / "identities.json", fl_lab.state_dir / "vaults"}
    for base in (work.path, fl_lab.state_dir):
        for path in base.rglob("*"):
            if not path.is_file() or path == password_file or any(s == path or s in path.parents for s in skip_lab):
                continue
            if "softhsm-" in str(path.relative_to(base)).split("/", maxsplit=1)[0] and "/tokens/" in str(path):
                continue  # the token store itself (the HSM), not something a run wrote
            r.blobs[str(path)] = path.read_bytes()
    r.log = log
    return r


def test_the_failing_run_fails_clearly_and_the_other_succeeds(secret_runs):
    r = secret_runs
    assert r.failing.rc != 0, r.failing
    assert "Traceback" not in r.failing.stdout and "MODULE FAILURE" not in r.failing.stdout, r.failing
    assert re.search(r"unreachable|refused|could not connect", r.failing.stdout, re.I), r.failing
    assert r.succeeding.rc == 0, r.succeeding
    assert r.log.exists() and r.log.stat().st_size > 0, "ANSIBLE_LOG_PATH was not written"
    assert list(r.fleet.manifest_dir.glob("*.json")), "no audit manifest written"


def test_no_pin_anywhere(secret_runs):
    hits = sorted({where for where, blob in secret_runs.blobs.items() for pin in secret_runs.pins.values()
                   if pin.encode() in blob})
    assert not hits, "a token PIN is written in: %s" % hits


def test_no_client_secret_anywhere(fl_lab, secret_runs):
    secret = fl_lab.env["AZURE_SECRET"].encode()
    hits = sorted(where for where, blob in secret_runs.blobs.items() if secret in blob)
    assert not hits, "the Azure client secret is written in: %s" % hits


def test_no_bearer_token_anywhere(secret_runs):
    header = secret_runs.token.split(".")[0].encode()
    hits = sorted(where for where, blob in secret_runs.blobs.items()
                  if JWT_RE.search(blob) or header + b"." in blob or secret_runs.token.encode() in blob)
    assert not hits, "a bearer token (JWT) is written in: %s" % hits


def test_work_dirs_removed_after_failure_and_success(secret_runs):
    assert secret_runs.tmp_after_failing == [], secret_runs.tmp_after_failing
    assert secret_runs.tmp_after_succeeding == [], secret_runs.tmp_after_succeeding


# ----------------------------------------------------------------------------------------------------------------------
# ANSIBLE_DEBUG=1: what ansible-core prints, and what the collection writes
# ----------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def debug_runs(fl_lab, fl_base_env, tmp_path_factory):
    r = Runs()
    r.work = work = new_work(tmp_path_factory.mktemp("secrets-debug"), fl_base_env)
    r.pins = {"hsm1": "PIN-%s" % secrets.token_hex(6)}
    keys = {"hsm1": [ec(unique("dbg-e1"))]}
    kek = unique("fkek")
    r.fleet = new_fleet(fl_lab, work, keys, kek_name=kek, pins=r.pins,
                        extra_vars={"byok_allow_secrets_in_debug_log": True})
    debug_env = dict(fl_lab.azure_env, ANSIBLE_DEBUG="1")
    r.transfer = run_playbook(work, r.fleet.inventory, env=debug_env)

    # the file-writing modules as well: a KEK file, a .byok with its sidecar, an import from it
    token = r.fleet.hosts["hsm1"]
    env = dict(debug_env, **token.env)
    label = unique("dbg-k")
    r.module_runs = []
    for module, args in (
            ("hsm_keygen", dict(token.pkcs11_args(), label=label, key_type="EC", curve="P-256")),
            ("byok_kek_fetch", dict(fl_lab.azure_args(), name=kek, key_size=2048, dest=str(work.path / "out" / "kek.pem"))),
    ):
        (work.path / "out").mkdir(exist_ok=True)
        r.module_runs.append(run_module(work, module, args, env=env))
    kek_kid = module_result(r.module_runs[-1])["kid"]
    byok = str(work.path / "out" / ("%s.byok" % label))
    r.module_runs.append(run_module(work, "byok_wrap", dict(token.pkcs11_args(), label=label, dest=byok,
                                                            kek_file=str(work.path / "out" / "kek.pem"), kek_kid=kek_kid), env=env))
    r.module_runs.append(run_module(work, "keyvault_import", dict(fl_lab.azure_args(), name=label, byok_file=byok,
                                                                  key_type="EC", curve="P-256"), env=env))
    r.results = [module_result(run) for run in r.module_runs]
    r.byok = Path(byok)

    # what the collection writes: manifests, .byok and sidecars, the lock folder and work dirs in TMPDIR
    r.written = {}
    candidates = list(r.fleet.manifest_dir.rglob("*")) + list((work.path / "out").rglob("*")) + list(work.tmpdir.rglob("byok-*"))
    for path in candidates:
        if path.is_dir():
            candidates.extend(p for p in path.rglob("*") if p not in candidates)
            continue
        if path.is_file() and not path.is_symlink():
            r.written[str(path)] = path.read_bytes()
    return r


def test_debug_runs_work(debug_runs):
    r = debug_runs
    assert r.transfer.rc == 0, r.transfer
    for run, result in zip(r.module_runs, r.results):
        assert not result.get("failed"), run
    assert str(r.byok) in r.written and str(r.byok) + ".json" in r.written, sorted(r.written)  # the .byok and its sidecar
    assert list(r.fleet.manifest_dir.glob("*.json")), "no audit manifest written"
    kinds = {Path(p).suffix for p in r.written}
    assert {".json", ".txt", ".byok", ".pem"} <= kinds, sorted(r.written)


def test_ansible_debug_itself_prints_the_pin(debug_runs):
    """Documented ansible-core behaviour (docs/security.md): ANSIBLE_DEBUG=1 prints module arguments, no_log or not."""
    pin = debug_runs.pins["hsm1"]
    printed = debug_runs.transfer.stdout + debug_runs.transfer.stderr
    assert "_execute_module" in printed, "ANSIBLE_DEBUG output was not produced"
    assert pin in printed, "ansible-core no longer prints module arguments under ANSIBLE_DEBUG; update docs/security.md"
    assert any(pin in run.stdout + run.stderr for run in debug_runs.module_runs)


def test_no_secret_in_any_file_the_collection_writes_under_debug(fl_lab, debug_runs):
    secrets_ = [p.encode() for p in debug_runs.pins.values()] + [fl_lab.env["AZURE_SECRET"].encode()]
    hits = sorted(where for where, blob in debug_runs.written.items() for secret in secrets_ if secret in blob)
    assert not hits, "a secret is written by the collection in: %s" % hits
    jwt = sorted(where for where, blob in debug_runs.written.items() if JWT_RE.search(blob))
    assert not jwt, "a bearer token is written by the collection in: %s" % jwt


# ----------------------------------------------------------------------------------------------------------------------
# One secret per mistake: a wrong PIN, a wrong client secret, the `secret` option, a 403. Each case runs a one-task
# playbook (the secret is in the playbook file, never on a command line) at default verbosity and at -vvv, each in its
# own work dir, and scans stdout, stderr and every file the run wrote (its work dir with TMPDIR and ansible's tmp dirs,
# its ANSIBLE_LOG_PATH, the lab's folder but its identities and key state) for the secret and for any bearer token.
# ----------------------------------------------------------------------------------------------------------------------

SCAN_VERBOSITY = {"default": [], "vvv": ["-vvv"]}


class Scan:
    """What one case's runs wrote ({where: bytes}) and the runs themselves ({verbosity: Run})."""

    def __init__(self):
        self.blobs = {}
        self.runs = {}


def _scan_case(lab, base_env, tmp_path, tasks, env=None) -> Scan:
    """Run a playbook of tasks(verbosity) on localhost at each verbosity and collect everything the runs wrote."""
    import json

    from .conftest import PYTHON

    scan = Scan()
    for level, args in SCAN_VERBOSITY.items():
        work = new_work(tmp_path / level, base_env)
        playbook = work.path / "playbook.yml"
        playbook.write_text(json.dumps([{"name": "secret scan", "hosts": "localhost", "gather_facts": False,
                                         "tasks": tasks(level)}], indent=1))  # JSON is YAML
        inventory = work.path / "inventory.ini"
        inventory.write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % PYTHON)
        log = work.path / "ansible.log"
        run = run_playbook(work, inventory, playbook=playbook, extra_args=args, env=dict(env or {}, ANSIBLE_LOG_PATH=str(log)))
        scan.runs[level] = run
        scan.blobs["%s run stdout" % level] = run.stdout.encode()
        scan.blobs["%s run stderr" % level] = run.stderr.encode()
        assert log.exists() and log.stat().st_size > 0, "ANSIBLE_LOG_PATH was not written"
        for path in work.path.rglob("*"):
            if path.is_file() and path != playbook and "/tokens/" not in str(path):
                scan.blobs[str(path)] = path.read_bytes()
    skip_lab = {lab.state_dir / "identities.json", lab.state_dir / "vaults"}
    for path in lab.state_dir.rglob("*"):
        if path.is_file() and not any(s == path or s in path.parents for s in skip_lab):
            scan.blobs[str(path)] = path.read_bytes()
    return scan


def _assert_nowhere(scan: Scan, secret: str, what: str) -> None:
    assert len(secret) >= 12, "%s is too short to be searched for without chance matches" % what
    hits = sorted(where for where, blob in scan.blobs.items() if secret.encode() in blob)
    assert not hits, "%s is written in: %s" % (what, hits)
    jwt = sorted(where for where, blob in scan.blobs.items() if JWT_RE.search(blob))
    assert not jwt, "a bearer token (JWT) is written in: %s" % jwt


def _failed_with(scan: Scan, *words: str) -> None:
    """Each run failed cleanly (the scan covers the failure it is meant to), saying each of words."""
    for level, run in scan.runs.items():
        assert run.rc != 0, "the %s run did not fail:\n%s" % (level, run)
        assert "Traceback" not in run.stdout and "MODULE FAILURE" not in run.stdout, run
        for word in words:
            assert word.lower() in run.stdout.lower(), "the %s run does not say %r:\n%s" % (level, word, run)


def test_secret_scan_wrong_pin(fl_lab, fl_base_env, fl_make_token, tmp_path):
    token = fl_make_token(pin="PIN-%s" % secrets.token_hex(8))
    wrong = "PIN-%s" % secrets.token_hex(8)

    def tasks(level):
        args = dict(token.pkcs11_args(), user_pin=wrong, label=unique("scan"), key_type="EC", curve="P-256")
        return [{"byok.keyvault.hsm_keygen": args, "environment": token.env}]

    scan = _scan_case(fl_lab, fl_base_env, tmp_path, tasks)
    _failed_with(scan, "user_pin", "CKR_PIN_INCORRECT")
    _assert_nowhere(scan, wrong, "the wrong PIN")
    _assert_nowhere(scan, token.pin, "the token's PIN")


def test_secret_scan_wrong_client_secret(fl_lab, fl_base_env, tmp_path):
    wrong = "Lab8Q~" + secrets.token_urlsafe(30)

    def tasks(level):
        return [{"byok.keyvault.byok_kek_fetch": dict(fl_lab.azure_args(), name=unique("fkek"), key_size=2048)}]

    scan = _scan_case(fl_lab, fl_base_env, tmp_path, tasks, env=dict(fl_lab.azure_env, AZURE_SECRET=wrong))
    _failed_with(scan, "secret")
    _assert_nowhere(scan, wrong, "the wrong client secret")
    _assert_nowhere(scan, fl_lab.env["AZURE_SECRET"], "the client secret")


def test_secret_scan_secret_option(fl_lab, fl_base_env, tmp_path):
    """The client secret as the module's `secret` option (not AZURE_SECRET): the runs create a KEK and show it nowhere."""
    names = {level: unique("fkek") for level in SCAN_VERBOSITY}

    def tasks(level):
        args = dict(fl_lab.azure_args(), auth_source="auto", name=names[level], key_size=2048,
                    client_id=fl_lab.env["AZURE_CLIENT_ID"], tenant=fl_lab.env["AZURE_TENANT"], secret=fl_lab.env["AZURE_SECRET"])
        return [{"byok.keyvault.byok_kek_fetch": args}]

    scan = _scan_case(fl_lab, fl_base_env, tmp_path, tasks)  # no AZURE_* in the environment: the option is the credential
    for level, run in scan.runs.items():
        assert run.rc == 0 and run.recap["localhost"]["changed"] == 1, "the %s run with the secret option:\n%s" % (level, run)
    assert all(fl_lab.versions(name) for name in names.values()), "the KEKs were not created"
    _assert_nowhere(scan, fl_lab.env["AZURE_SECRET"], "the client secret given as the secret option")


def test_secret_scan_forbidden(fl_lab, fl_base_env, tmp_path):
    """A 403: the lab's reader identity (keys get and list only) asked to create a KEK."""
    name = unique("fkek")
    reader = {"AZURE_CLIENT_ID": fl_lab.env["LAB_READER_CLIENT_ID"], "AZURE_SECRET": fl_lab.env["LAB_READER_SECRET"],
              "AZURE_TENANT": fl_lab.env["AZURE_TENANT"]}

    def tasks(level):
        return [{"byok.keyvault.byok_kek_fetch": dict(fl_lab.azure_args(), name=name, key_size=2048)}]

    scan = _scan_case(fl_lab, fl_base_env, tmp_path, tasks, env=reader)
    _failed_with(scan, "403")
    assert not fl_lab.versions(name)
    _assert_nowhere(scan, reader["AZURE_SECRET"], "the reader's client secret")
    _assert_nowhere(scan, fl_lab.env["AZURE_SECRET"], "the operator's client secret")
