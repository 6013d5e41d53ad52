# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A KNOWN private key never leaks.

An RSA-2048 key made with `cryptography` is put into a token with C_CreateObject (python-pkcs11 create_object,
CKA_TOKEN, CKA_SENSITIVE and CKA_EXTRACTABLE true, label L). Then the transfer playbook runs at -vvvv for label L
(hsm_keygen finds and keeps it, byok_wrap wraps it, keyvault_import imports it, the report writes the manifest), and
byok_wrap runs once more by hand so that a .byok file and its sidecar stay on disk. Every output - stdout/stderr,
the ansible log, the manifest, the .byok, the sidecar, everything in TMPDIR and ansible's tmp dirs - is searched for
d, p, q (and the CRT values) in hex, base64, base64url and decimal: zero hits. The vault key's fingerprint must be the
known key's public fingerprint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import textwrap

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa as crsa

from .conftest import PYTHON, SOFTHSM_LIB, module_result, rsa, run_module, run_playbook, unique

CREATE = textwrap.dedent(r'''
    import json, sys
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass
    a = json.loads(sys.argv[1])
    n = {k: int(v) for k, v in a["numbers"].items()}
    b = lambda v: v.to_bytes((v.bit_length() + 7) // 8, "big")
    token = pkcs11.lib(a["module"]).get_token(token_label=a["token"])
    with token.open(rw=True, user_pin=a["pin"]) as s:
        kid = bytes.fromhex(a["id"])
        s.create_object({
            Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: True,
            Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True, Attribute.LABEL: a["label"],
            Attribute.ID: kid, Attribute.SIGN: True, Attribute.DECRYPT: True, Attribute.UNWRAP: False,
            Attribute.MODULUS: b(n["n"]), Attribute.PUBLIC_EXPONENT: b(n["e"]), Attribute.PRIVATE_EXPONENT: b(n["d"]),
            Attribute.PRIME_1: b(n["p"]), Attribute.PRIME_2: b(n["q"]), Attribute.EXPONENT_1: b(n["dmp1"]),
            Attribute.EXPONENT_2: b(n["dmq1"]), Attribute.COEFFICIENT: b(n["iqmp"])})
        s.create_object({
            Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: True,
            Attribute.PRIVATE: False, Attribute.LABEL: a["label"], Attribute.ID: kid, Attribute.VERIFY: True,
            Attribute.MODULUS: b(n["n"]), Attribute.PUBLIC_EXPONENT: b(n["e"])})
''')


def _b(v: int, extra: int = 0) -> bytes:
    return v.to_bytes((v.bit_length() + 7) // 8 + extra, "big")


def encodings(name: str, value: int):
    """(label, bytes) needles for one secret integer: raw, hex, base64/base64url at every alignment, decimal."""
    out = []
    for extra in (0, 1):  # minimal, and with the leading zero of a DER INTEGER
        raw = _b(value, extra)
        out.append(("%s raw" % name, raw))
        out.append(("%s hex" % name, raw.hex().encode()))
        out.append(("%s HEX" % name, raw.hex().upper().encode()))
        for shift in range(3):  # base64 of the value at any offset inside a larger structure: the stable middle part
            for enc, label in ((base64.b64encode, "base64"), (base64.urlsafe_b64encode, "base64url")):
                text = enc(b"\x00" * shift + raw + b"\x00\x00\x00").rstrip(b"=")
                out.append(("%s %s/%d" % (name, label, shift), text[4:-8]))
    out.append(("%s decimal" % name, str(value).encode()))
    return out


def test_known_private_key_never_leaks(fl_lab, fl_make_token, fl_work, fl_fleet):
    private = crsa.generate_private_key(public_exponent=65537, key_size=2048)
    nums = private.private_numbers()
    numbers = {"n": nums.public_numbers.n, "e": nums.public_numbers.e, "d": nums.d, "p": nums.p, "q": nums.q,
               "dmp1": nums.dmp1, "dmq1": nums.dmq1, "iqmp": nums.iqmp}
    known_fp = hashlib.sha256(private.public_key().public_bytes(serialization.Encoding.DER,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    label = unique("known")
    fleet = fl_fleet({"hsm1": [rsa(label)]})
    token = fleet.hosts["hsm1"]
    script = fl_work.path / "create_known.py"
    script.write_text(CREATE)
    proc = subprocess.run([PYTHON, str(script), json.dumps({
        "module": SOFTHSM_LIB, "token": token.label, "pin": token.pin, "label": label, "id": "4b4e4f574e",
        "numbers": {k: str(v) for k, v in numbers.items()}})], env=dict(fl_work.env, **token.env), capture_output=True,
        text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert token.census() == {label: {"Private Key": 1, "Public Key": 1}}

    # the transfer at -vvvv: keygen keeps the known key, wrap, import, manifest
    log = fl_work.path / "ansible.log"
    run = run_playbook(fl_work, fleet.inventory, extra_args=["-vvvv"], env=dict(fl_lab.azure_env, ANSIBLE_LOG_PATH=str(log)))
    assert run.rc == 0, run
    assert token.census() == {label: {"Private Key": 1, "Public Key": 1}}, "hsm_keygen replaced or added a key"

    # the vault key is the known key
    versions = fl_lab.versions(label)
    assert len(versions) == 1, versions
    from azure.identity import ClientSecretCredential
    from azure.keyvault.keys import KeyClient
    cred = ClientSecretCredential(fl_lab.env["AZURE_TENANT"], fl_lab.env["AZURE_CLIENT_ID"], fl_lab.env["AZURE_SECRET"],
                                  authority=fl_lab.env["LAB_AUTHORITY"], disable_instance_discovery=True,
                                  connection_verify=fl_lab.env["LAB_CA"])
    vault_key = KeyClient(fl_lab.vault_url(), cred, connection_verify=fl_lab.env["LAB_CA"]).get_key(label)
    vault_public = crsa.RSAPublicNumbers(int.from_bytes(vault_key.key.e, "big"),
                                         int.from_bytes(vault_key.key.n, "big")).public_key()
    vault_fp = hashlib.sha256(vault_public.public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    assert vault_fp == known_fp, "the vault holds another key than the known one"

    # one more wrap by hand, so that a .byok and its sidecar stay on disk to be searched
    env = dict(fl_lab.azure_env, **token.env)
    kek_pem = str(fl_work.path / "kek.pem")
    fetched = module_result(run_module(fl_work, "byok_kek_fetch",
                                       dict(fl_lab.azure_args(), name=fleet.kek_name, key_size=2048, dest=kek_pem),
                                       env=env))
    assert not fetched.get("failed"), fetched
    byok = fl_work.path / "known.byok"
    wrap_args = dict(token.pkcs11_args(), label=label, dest=str(byok), kek_file=kek_pem, kek_kid=fetched["kid"])
    wrap = run_module(fl_work, "byok_wrap", wrap_args, env=env, verbosity=4)
    assert not module_result(wrap).get("failed"), wrap
    assert byok.exists() and byok.with_name(byok.name + ".json").exists()

    blobs = {"playbook stdout": run.stdout.encode(), "playbook stderr": run.stderr.encode(),
             "byok_wrap stdout": wrap.stdout.encode(), "byok_wrap stderr": wrap.stderr.encode()}
    for path in fl_work.path.rglob("*"):
        if path.is_file() and "/tokens/" not in str(path) and path != script:
            blobs[str(path)] = path.read_bytes()
    assert str(byok) in blobs and str(log) in blobs and any("manifests" in k for k in blobs), sorted(blobs)
    needles = [n for k in ("d", "p", "q", "dmp1", "dmq1", "iqmp") for n in encodings(k, numbers[k])]
    hits = sorted({"%s in %s" % (what, where) for where, blob in blobs.items() for what, needle in needles if needle in blob})
    assert not hits, "private key material of the known key found: %s" % hits
