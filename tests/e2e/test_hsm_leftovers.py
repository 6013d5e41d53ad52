# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What other tools or an interrupted run leave on a REAL SoftHSM2 token, and what hsm_keygen makes of it.

- A public key object without its private key (a run killed inside C_GenerateKeyPair): the next hsm_keygen must
  leave exactly one pair for the label, not a new pair beside the orphan.
- An AES key made without CKA_ENCRYPT (vendor tools make such keys): it has no KCV, which hsm_keygen reports as
  unknown instead of crashing.

The objects are made with python-pkcs11 in a child process (SoftHSM reads SOFTHSM2_CONF once per process).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import PYTHON, SOFTHSM_LIB, unique

_CHILD = r"""
import json, sys
import pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass
args = json.loads(sys.argv[1])
lib = pkcs11.lib(args['lib'])
token = lib.get_token(token_label=args['token'])
with token.open(rw=True, user_pin=args['pin']) as session:
    if args['what'] == 'lone_public':
        pub, priv = session.generate_keypair(KeyType.RSA, 2048, label=args['label'], id=bytes.fromhex(args['id']), store=True,
                                             public_template={Attribute.TOKEN: True},
                                             private_template={Attribute.TOKEN: True, Attribute.SENSITIVE: True,
                                                               Attribute.EXTRACTABLE: True})
        priv.destroy()
    elif args['what'] == 'aes_no_encrypt':
        session.generate_key(KeyType.AES, 256, label=args['label'], id=bytes.fromhex(args['id']), store=True,
                             template={Attribute.TOKEN: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True,
                                       Attribute.ENCRYPT: False, Attribute.DECRYPT: False})
    counts = {}
    for o in session.get_objects({Attribute.LABEL: args['label']}):
        counts[o.object_class.name] = counts.get(o.object_class.name, 0) + 1
    print(json.dumps(counts))
"""


def on_token(token, what: str, label: str, key_id: str = "0badc0de") -> dict:
    """Make `what` on the token with python-pkcs11 in a child process; returns {object class: count} for the label."""
    env = dict(token.base_env)
    env.update(token.env)
    proc = subprocess.run([PYTHON, "-c", _CHILD, json.dumps({"lib": SOFTHSM_LIB, "token": token.label, "pin": token.pin,
                                                             "what": what, "label": label, "id": key_id})],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def classes(token, label: str) -> list:
    return sorted(o["class"] for o in token.objects() if o.get("label") == label)


@pytest.mark.parametrize("with_id", [False, True], ids=["label-only", "label-and-id"])
def test_lone_public_object_is_replaced_by_exactly_one_pair(run_module, make_token, with_id):
    token = make_token()
    label = unique("orphan")
    assert on_token(token, "lone_public", label) == {"PUBLIC_KEY": 1}
    assert classes(token, label) == ["Public Key"]

    args = dict(token.pkcs11_args(), label=label, key_type="RSA", key_size=2048)
    if with_id:
        args["id"] = "0badc0de"
    run = run_module("hsm_keygen", args, env=token.env)
    assert not run.failed and run.changed, str(run)
    assert classes(token, label) == ["Private Key", "Public Key"], token.objects()
    fingerprint = run.result["fingerprint"]
    assert fingerprint == token.public_key_sha256(label)

    again = run_module("hsm_keygen", args, env=token.env)
    assert not again.failed and not again.changed, str(again)
    assert again.result["fingerprint"] == fingerprint
    assert classes(token, label) == ["Private Key", "Public Key"]


def test_lone_public_object_is_only_reported_in_check_mode(run_module, make_token):
    token = make_token()
    label = unique("orphan")
    on_token(token, "lone_public", label)
    run = run_module("hsm_keygen", dict(token.pkcs11_args(), label=label, key_type="RSA", key_size=2048), env=token.env,
                     check=True)
    assert not run.failed and run.changed, str(run)
    assert classes(token, label) == ["Public Key"]


def test_aes_key_without_encrypt_has_no_kcv_and_no_crash(run_module, make_token):
    token = make_token()
    label = unique("aes-noenc")
    assert on_token(token, "aes_no_encrypt", label) == {"SECRET_KEY": 1}
    run = run_module("hsm_keygen", dict(token.pkcs11_args(), label=label, key_type="oct", key_size=256), env=token.env)
    assert not run.failed, str(run)
    assert "MODULE FAILURE" not in run.output and "AttributeError" not in run.output, run.output
    assert not run.changed and run.result["action"] == "keep", str(run)
    assert run.result["fingerprint"] is None, "a key that may not encrypt has no KCV: %s" % run
    assert classes(token, label) == ["Secret Key"]
