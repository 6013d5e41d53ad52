# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HSM copy after the transfer: playbooks/transfer.yml against REAL SoftHSM2 tokens and the REAL lab vault.

- Without byok_hsm_seal_after_transfer (the default), a transferred key stays extractable: anyone with the user PIN can
  make an AES key of their own (a value they know), wrap the target key under it with C_WrapKey and unwrap it in
  software - the private key in clear. Nothing of the run mentions a seal.
- With byok_hsm_seal_after_transfer: true, once the vault holds the key, C_WrapKey of it is refused
  (CKR_KEY_UNEXTRACTABLE), the report rows say hsm_sealed; a second run changes nothing (and does not log in to seal
  again); a later transfer of the sealed key to another vault key is refused with a message that says why, and the vault
  gets no version of it.
"""

from __future__ import annotations

import json
import subprocess

from .conftest import PYTHON, SOFTHSM_LIB, ec, new_fleet, rsa, run_playbook, unique, write_inventory

# Run in its own process (one PKCS#11 library per process): try to export the key as someone with the user PIN would.
EXPORT = r"""
import json, os, sys
import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
from cryptography.hazmat.primitives import serialization
lib, label, pin, key_label = sys.argv[1:5]
token = pkcs11.lib(lib).get_token(token_label=label)
with token.open(rw=True, user_pin=pin) as s:
    key = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
    known = os.urandom(32)
    mine = s.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.TOKEN: False,
                            Attribute.VALUE: known, Attribute.WRAP: True})
    out = {'extractable': bool(key[Attribute.EXTRACTABLE])}
    try:
        blob = mine.wrap_key(key, mechanism=Mechanism.AES_KEY_WRAP_PAD)
    except pkcs11.exceptions.PKCS11Error as exc:
        out['wrap'] = type(exc).__name__
    else:
        der = aes_key_unwrap_with_padding(known, blob)
        for end in range(len(der), len(der) - 8, -1):  # SoftHSM 2.6.1 zero-pads the PKCS#8 to a multiple of 8 bytes
            try:
                private = serialization.load_der_private_key(der[:end], None)
                break
            except ValueError:
                continue
        out['wrap'] = 'ok'
        out['clear_private_key'] = private.private_numbers().__class__.__name__
print(json.dumps(out))
"""


def try_export(work, token, key_label):
    env = dict(work.env, **token.env)
    proc = subprocess.run([PYTHON, "-c", EXPORT, SOFTHSM_LIB, token.label, token.pin, key_label], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def finish_task(run):
    """What the transfer's last HSM step (destroy and seal, after the import) printed for its hosts."""
    header = "and seal the keys every vault holds (one login)] "
    assert header in run.output, run
    return run.output.split(header, 1)[1].split("\n", 1)[1].lstrip()


def manifest_rows(fleet):
    paths = sorted(fleet.manifest_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
    assert paths, "no manifest written"
    return json.loads(paths[-1].read_text())["keys"]


def test_without_the_opt_in_the_transferred_key_can_be_exported_in_clear(fl_lab, fl_work):
    fleet = new_fleet(fl_lab, fl_work, {"hsm1": [rsa(unique("open-rsa"))]})
    run = run_playbook(fl_work, fleet.inventory, env=fl_lab.azure_env)
    assert run.rc == 0, run
    token, label = fleet.hosts["hsm1"], fleet.keys["hsm1"][0]["name"]
    assert try_export(fl_work, token, label) == {"extractable": True, "wrap": "ok", "clear_private_key": "RSAPrivateNumbers"}
    rows = manifest_rows(fleet)
    assert [r["result"] for r in rows] == ["transferred"]
    assert "hsm_sealed" not in rows[0] and "sealed" not in rows[0]["message"]
    assert finish_task(run).startswith("skipping: [hsm1]"), run  # nothing to destroy or seal: the HSM step does not run


def test_sealed_after_the_transfer_no_wrap_no_change_no_further_vault(fl_lab, fl_work):
    keys = {"hsm1": [rsa(unique("seal-rsa")), ec(unique("seal-ec"))]}
    fleet = new_fleet(fl_lab, fl_work, keys, extra_vars={"byok_hsm_seal_after_transfer": True})
    token = fleet.hosts["hsm1"]
    run = run_playbook(fl_work, fleet.inventory, env=fl_lab.azure_env)
    assert run.rc == 0, run
    rows = manifest_rows(fleet)
    assert [(r["result"], r["hsm_sealed"]) for r in rows] == [("transferred", True)] * 2, rows
    assert all("HSM key sealed (CKA_EXTRACTABLE false)" in r["message"] for r in rows), rows
    for key in keys["hsm1"]:
        assert try_export(fl_work, token, key["name"]) == {"extractable": False, "wrap": "KeyUnextractable"}
        assert len(fl_lab.versions(key["name"])) == 1

    # a second run changes nothing: the sealed keys are kept by hsm_keygen, and nothing is sealed again
    again = run_playbook(fl_work, fleet.inventory, env=fl_lab.azure_env)
    assert again.rc == 0, again
    assert all(r["changed"] == 0 for r in again.recap.values()), again
    assert finish_task(again).startswith("ok: [hsm1]"), again  # it runs (sealing is asked), finds both sealed, changes nothing
    rows = manifest_rows(fleet)
    assert [(r["result"], r["hsm_sealed"]) for r in rows] == [("in place", True)] * 2, rows
    assert token.census() == {k["name"]: {"Private Key": 1, "Public Key": 1} for k in keys["hsm1"]}

    # the sealed RSA key listed for one more vault key: refused, and the vault gets nothing
    rsa_key = keys["hsm1"][0]
    extra = rsa(unique("seal-more"), label=rsa_key["name"])
    keys["hsm1"].append(extra)
    write_inventory(fleet.inventory, fl_lab, fleet.hosts, keys, fleet.kek_name, fleet.manifest_dir,
                    extra_vars={"byok_hsm_seal_after_transfer": True})
    more = run_playbook(fl_work, fleet.inventory, env=fl_lab.azure_env)
    assert more.rc != 0, more
    rows = dict((r["name"], r) for r in manifest_rows(fleet))
    assert rows[extra["name"]]["result"] == "failed", rows
    assert "sealed after its transfer" in rows[extra["name"]]["message"], rows[extra["name"]]
    assert fl_lab.versions(extra["name"]) == []
    assert len(fl_lab.versions(rsa_key["name"])) == 1


def test_check_mode_with_the_opt_in_says_what_would_be_sealed_and_touches_nothing(fl_lab, fl_work):
    fleet = new_fleet(fl_lab, fl_work, {"hsm1": [ec(unique("seal-check"))]}, extra_vars={"byok_hsm_seal_after_transfer": True})
    before = fl_lab.dump()
    run = run_playbook(fl_work, fleet.inventory, extra_args=["--check"], env=fl_lab.azure_env)
    assert run.rc == 0, run
    assert "would transfer: HSM key would be sealed" in run.output, run
    assert fleet.hosts["hsm1"].objects() == [] and fl_lab.dump() == before
