# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX job slices: one inventory split into disjoint host subsets that run at the same time, each as its own
`ansible-playbook --limit <slice>` with its own TMPDIR (so no shared lock directory), against one lab vault server.

The slices share nothing but the vaults, so each may find no KEK and create one: a KEK name then holds up to one
version per slice, and every key is wrapped under the version its own slice fetched (a versioned kid), which the vault
still unwraps after a newer version exists.  The test states that bound and asserts it, and that every key lands exactly
once.  A second round of the same slices changes nothing, and a `serial: 2` run of the same inventory works."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import ANSIBLE_PLAYBOOK, ROOT, TRANSFER_PLAYBOOK, parse_recap, unique
from test_transfer import write_inventory

SLICES = 3
HOSTS_PER_SLICE = 2
VAULTS = ("premium", "premium2")


def slice_env(base_env, lab, tmp_path, index):
    """What an execution node gives one slice: its own TMPDIR (the lock directory lives there) and Ansible temp dirs."""
    node = tmp_path / ("node-%d" % index)
    (node / "tmp").mkdir(parents=True, exist_ok=True)
    env = dict(base_env)
    env.update(lab.azure_env)
    env.update({"TMPDIR": str(node / "tmp"), "ANSIBLE_LOCAL_TEMP": str(node / "ansible-local"),
                "ANSIBLE_REMOTE_TEMP": str(node / "ansible-remote"), "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
                "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
    return env


def run_slices(base_env, lab, tmp_path, inventory, slices, playbook=TRANSFER_PLAYBOOK):
    """The slices at the same time; [(rc, output, recap)] in slice order."""
    procs = []
    for index, hosts in enumerate(slices):
        # the report role reports on the HSM hosts this run planned, so a slice does not report the others as failed
        cmd = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook), "--limit", ",".join(list(hosts) + ["localhost"])]
        procs.append(subprocess.Popen(cmd, env=slice_env(base_env, lab, tmp_path, index), cwd=str(ROOT), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    results = []
    for proc in procs:
        out, _dummy = proc.communicate(timeout=240)
        results.append((proc.returncode, out, parse_recap(out)))
    return results


def versions(lab, vault, name):
    keys = {k.lower(): v for k, v in lab.keys(vault).items()}
    return len(keys[name.lower()]["versions"]) if name.lower() in keys else 0


def fleet(lab, make_token, tmp_path, kek_name):
    """SLICES x HOSTS_PER_SLICE HSM hosts with an EC key for each vault of VAULTS: (inventory path, hosts, [(vault, name)])."""
    hosts, keys = {}, []
    for h in range(SLICES * HOSTS_PER_SLICE):
        items = []
        for vault in VAULTS:
            name = unique("slice%d-%s" % (h, vault))
            items.append({"name": name, "vault": vault, "key_type": "EC", "curve": "P-256", "key_ops": ["sign", "verify"]})
            keys.append((vault, name))
        hosts["hsm%d" % (h + 1)] = (make_token(), items)
    inventory = write_inventory(tmp_path / "inventory.yml", lab, hosts, kek_name)
    inv = json.loads(inventory.read_text())
    inv["all"]["vars"]["byok_vaults"]["premium2"] = {"url": lab.env["LAB_VAULT_PREMIUM2"], "type": "premium",
                                                     "kek_name": kek_name, "kek_size": 2048}
    inv["all"]["vars"]["byok_vaults"]["premium"]["kek_size"] = 2048
    inventory.write_text(json.dumps(inv, indent=1))
    return inventory, hosts, keys


def test_concurrent_slices_share_the_vault_and_a_kek(lab, make_token, base_env, tmp_path):
    kek_name = unique("slice-kek")
    inventory, hosts, keys = fleet(lab, make_token, tmp_path, kek_name)
    names = sorted(hosts)
    slices = [names[i * HOSTS_PER_SLICE:(i + 1) * HOSTS_PER_SLICE] for i in range(SLICES)]

    started = time.monotonic()
    first = run_slices(base_env, lab, tmp_path, inventory, slices)
    first_seconds = time.monotonic() - started
    for index, (rc, out, recap) in enumerate(first):
        assert rc == 0, "slice %d (%s) failed:\n%s" % (index, slices[index], out[-8000:])
        # a run that lost a race for the KEK says so in a failed task: there is none
        assert all(r.get("failed", 0) == 0 for r in recap.values()), "slice %d: %s\n%s" % (index, recap, out[-6000:])
        assert all(recap[h]["changed"] > 0 for h in slices[index]), "slice %d moved nothing: %s" % (index, recap)
    landed = {name: versions(lab, vault, name) for vault, name in keys}
    assert all(v == 1 for v in landed.values()), "a key was imported more or less than once: %s" % landed
    for vault, name in keys:  # the vault holds the HSM's key
        host = [h for h, (_t, items) in hosts.items() if any(i["name"] == name for i in items)][0]
        assert lab.vault_key_sha256(name, vault) == hosts[host][0].public_key_sha256(name), name
    # The bound: each slice creates at most one KEK version per vault (when it found none), so 1 to SLICES versions
    kek_versions = {vault: versions(lab, vault, kek_name) for vault in VAULTS}
    print("KEK versions after %d concurrent slices (%.1f s): %s" % (SLICES, first_seconds, kek_versions))
    assert all(1 <= v <= SLICES for v in kek_versions.values()), kek_versions

    second = run_slices(base_env, lab, tmp_path, inventory, slices)
    for index, (rc, out, recap) in enumerate(second):
        assert rc == 0, "slice %d (%s) failed on the second round:\n%s" % (index, slices[index], out[-8000:])
        assert all(r["changed"] == 0 for h, r in recap.items() if h != "localhost"), "slice %d changed: %s" % (index, recap)
    assert {name: versions(lab, vault, name) for vault, name in keys} == landed
    assert {vault: versions(lab, vault, kek_name) for vault in VAULTS} == kek_versions, "a no-op round made a KEK"


def test_serial_batches(lab, make_token, base_env, tmp_path):
    """A playbook that runs the transfer role with `serial: 2` over the same kind of inventory: every key moves once,
    the KEK is created once per vault (batches run one after the other), a second run changes nothing."""
    kek_name = unique("serial-kek")
    inventory, hosts, keys = fleet(lab, make_token, tmp_path, kek_name)
    serial = tmp_path / "serial.yml"
    serial.write_text(
        "- name: Transfer in batches\n  hosts: byok_hsm_hosts\n  serial: 2\n  gather_facts: false\n"
        "  roles:\n    - role: byok.keyvault.transfer\n")
    env = slice_env(base_env, lab, tmp_path, 0)
    for round_ in ("first", "second"):
        proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inventory), str(serial)], env=env, cwd=str(ROOT),
                              capture_output=True, text=True, timeout=240, check=False)
        recap = parse_recap(proc.stdout)
        assert proc.returncode == 0, "%s run: %s%s" % (round_, proc.stdout[-8000:], proc.stderr[-2000:])
        assert set(hosts) <= set(recap) and all(recap[h]["failed"] == 0 for h in hosts), recap
        if round_ == "second":
            assert all(recap[h]["changed"] == 0 for h in hosts), recap
        assert {name: versions(lab, vault, name) for vault, name in keys} == {name: 1 for _v, name in keys}
        assert {vault: versions(lab, vault, kek_name) for vault in VAULTS} == {vault: 1 for vault in VAULTS}
