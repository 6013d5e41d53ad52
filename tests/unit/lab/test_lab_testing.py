# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab.testing: the one inventory writer of the suites and the bench, and the Lab handle's admin calls."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from lab import testing

ENV = {"LAB_VAULT_PREMIUM": "https://127.0.0.1:1", "LAB_VAULT_MHSM": "https://127.0.0.1:2", "LAB_AUTHORITY": "https://127.0.0.1:0",
       "LAB_CA": "/lab/ca.pem"}


def token(label):
    return testing.Token(label, "pin-" + label, "so", Path("/t"), Path("/t/%s.conf" % label), {})


def test_inventory_places_hosts_vaults_and_options(tmp_path):
    hosts = {"hsm1": testing.token_vars(token("a"), [{"name": "k1"}]), "hsm2": testing.token_vars(token("b"), [], pin=False)}
    path = testing.write_inventory(tmp_path / "inv.yml", hosts, testing.lab_vaults(ENV, "kek", 3072, names=("premium", "mhsm")),
                                   testing.lab_azure(ENV, pacing_window=1.0), tmp_path / "m", hsm_vars={"byok_hsm_vendor": "luna"},
                                   extra_vars={"byok_kek_delete_after_run": False})
    doc = json.loads(path.read_text())
    assert doc == testing.inventory(hosts, testing.lab_vaults(ENV, "kek", 3072, names=("premium", "mhsm")),
                                    testing.lab_azure(ENV, pacing_window=1.0), tmp_path / "m", {"byok_hsm_vendor": "luna"},
                                    {"byok_kek_delete_after_run": False})
    all_vars = doc["all"]["vars"]
    assert all_vars["byok_vaults"] == {
        "premium": {"url": ENV["LAB_VAULT_PREMIUM"], "type": "premium", "kek_name": "kek", "kek_size": 3072},
        "mhsm": {"url": ENV["LAB_VAULT_MHSM"], "type": "managed_hsm", "kek_name": "kek", "kek_size": 3072}}
    assert all_vars["byok_azure"] == {"auth_source": "env", "cloud_environment": ENV["LAB_AUTHORITY"], "ca_bundle": ENV["LAB_CA"],
                                      "pacing_window": 1.0}
    assert all_vars["byok_manifest_dir"] == str(tmp_path / "m") and all_vars["byok_kek_delete_after_run"] is False
    group = doc["all"]["children"]["byok_hsm_hosts"]
    assert group["vars"] == {"byok_hsm_vendor": "luna", "byok_pkcs11_module": testing.SOFTHSM_LIB}
    assert group["hosts"]["hsm1"] == {"byok_token_label": "a", "byok_user_pin": "pin-a", "byok_hsm_environment": {"SOFTHSM2_CONF": "/t/a.conf"},
                                      "byok_keys": [{"name": "k1"}]}
    assert "byok_user_pin" not in group["hosts"]["hsm2"]
    assert doc["all"]["children"]["controllers"] == {"hosts": {"localhost": {}}}
    # without vaults (and Azure options) the inventory has none
    bare = testing.inventory(hosts, None, None, tmp_path)
    assert "byok_vaults" not in bare["all"]["vars"] and "byok_azure" not in bare["all"]["vars"]


def test_vaulted_pins_are_vault_blocks(tmp_path):
    vaulted = "$ANSIBLE_VAULT;1.1;AES256\n3131\n3232"
    hosts = {"hsm1": testing.token_vars(token("a"), [], pin=False)}
    text = testing.write_inventory(tmp_path / "inv.yml", hosts, {}, {}, tmp_path, vaulted_pins={"hsm1": vaulted}).read_text()

    class Loader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
        pass

    Loader.add_constructor("!vault", lambda loader, node: ("vault", loader.construct_scalar(node)))
    doc = yaml.load(text, Loader)  # nosec - SafeLoader with one more tag
    assert doc["all"]["children"]["byok_hsm_hosts"]["hosts"]["hsm1"]["byok_user_pin"] == ("vault", vaulted + "\n")
    assert "pin-a" not in text


def test_admin_calls_of_a_lab_in_this_process(lab_factory):
    lab = lab_factory("admin-calls")
    assert lab.faults(next=["reset"], method="PUT")["queued"] == [{"kind": "reset", "method": "PUT", "path": None}]
    assert lab.faults(off=True)["queued"] == []
    assert lab.settings({"vaults": {"premium": {"purge_protection": True}}})["vaults"]["premium"]["purge_protection"] is True
    assert set(lab.dump()) == {"premium", "mhsm", "premium2", "premium3"} and lab.keys("premium") == {}
    assert "faults configured" in (lab.state_dir / "server.log").read_text()
    lab.stop()
    lab.stop()  # again: nothing
