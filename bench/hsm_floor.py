#!/usr/bin/env python
"""The parallel HSM floor: the HSM part of a transfer (keygen and two-step wrap) with plain python-pkcs11, no Ansible
and no vault, spread over the cores: one process per core, each taking every n-th token (one login per token).

    hsm_floor.py SPEC.json   -> JSON on stdout: wall seconds, keys, per-process seconds
SPEC: {"module": "...", "pin": "...", "kek_pem": "... (RSA public key, PEM)", "processes": 2,
       "tokens": [{"token_label": "...", "softhsm2_conf": "...", "keys": [{"label", "key_type", "key_size", "curve"}]}]}
Token i goes to process i % processes; the tokens of one process share one softhsm2.conf (one token directory each
process, so no process lists a token directory another one writes to).
"""

import json
import multiprocessing
import os
import sys
import time


def work(args):
    """One process: its tokens one after the other (one library load, one login per token)."""
    spec, tokens = args
    started = time.monotonic()
    if tokens:  # read at C_Initialize, in this process: its tokens share one token directory
        os.environ["SOFTHSM2_CONF"] = tokens[0]["softhsm2_conf"]
    import pkcs11
    lib = pkcs11.lib(spec["module"])
    count = 0
    for token_spec in tokens:
        count += run_token(lib, spec, token_spec)
    return {"keys": count, "seconds": round(time.monotonic() - started, 3)}


def run_token(lib, spec, token_spec):
    from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters
    from cryptography.hazmat.primitives import serialization

    kek_public = serialization.load_pem_public_key(spec["kek_pem"].encode())
    numbers = kek_public.public_numbers()
    token = lib.get_token(token_label=token_spec["token_label"])
    count = 0
    with token.open(rw=True, user_pin=spec["pin"]) as session:
        kek = session.create_object({
            Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: False,
            Attribute.PRIVATE: False, Attribute.LABEL: "floor-kek",
            Attribute.MODULUS: numbers.n.to_bytes((kek_public.key_size + 7) // 8, "big"),
            Attribute.PUBLIC_EXPONENT: numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"),
            Attribute.WRAP: True, Attribute.ENCRYPT: True})
        private_template = {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                            Attribute.EXTRACTABLE: True}
        for key in token_spec["keys"]:
            if key["key_type"] == "RSA":
                _pub, priv = session.generate_keypair(KeyType.RSA, key["key_size"], label=key["label"], id=os.urandom(16),
                                                      store=True, public_template={Attribute.TOKEN: True},
                                                      private_template=private_template)
            else:
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
                _pub, priv = params.generate_keypair(label=key["label"], id=os.urandom(16), store=True,
                                                     public_template={Attribute.TOKEN: True},
                                                     private_template=private_template)
            aes = session.generate_key(KeyType.AES, 256, store=False, template={
                Attribute.TOKEN: False, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True, Attribute.WRAP: True,
                Attribute.ENCRYPT: False, Attribute.DECRYPT: False, Attribute.UNWRAP: False})
            try:
                key_part = aes.wrap_key(priv, mechanism=Mechanism.AES_KEY_WRAP_PAD)
                rsa_part = kek.wrap_key(aes, mechanism=Mechanism.RSA_PKCS_OAEP,
                                        mechanism_param=(Mechanism.SHA_1, MGF.SHA1, None))
            finally:
                aes.destroy()
            if not rsa_part or not key_part:
                raise SystemExit("empty wrap for %s" % key["label"])
            count += 1
        kek.destroy()
    return count


def main():
    spec = json.load(open(sys.argv[1], encoding="utf-8"))
    procs = int(spec.get("processes") or os.cpu_count() or 1)
    shares = [(spec, spec["tokens"][i::procs]) for i in range(procs)]
    started = time.monotonic()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(procs) as pool:
        parts = pool.map(work, shares)
    wall = time.monotonic() - started
    json.dump({"wall": round(wall, 3), "keys": sum(p["keys"] for p in parts), "processes": procs, "parts": parts},
              sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
