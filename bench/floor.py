#!/usr/bin/env python
"""The floor: the same BYOK transfer as the collection, in ONE plain Python process, no Ansible.

Independent of the collection (only python-pkcs11, cryptography and the Azure SDK):

  1. get or create the vault's KEK (RSA-HSM, key_ops exactly ["import"]) and read its public key;
  2. per HSM token (one library load, one login per token): find or generate each target key
     (token object, private, sensitive, extractable) and compute its SPKI SHA-256 fingerprint;
  3. per key: ask the vault for the current version; when it already is the HSM key, keep it;
     otherwise wrap inside the HSM in two steps (ephemeral AES-256 + CKM_AES_KEY_WRAP_PAD, then
     CKM_RSA_PKCS_OAEP/SHA-1 of the AES key under the KEK), build the .byok JSON, import it
     (no SDK retry: a resent PUT would create a second version) and check that the vault's public
     key has the HSM fingerprint.

One process uses both PKCS#11 (SoftHSM links libcrypto) and TLS, so OpenSSL's error queue is
cleared right after C_Initialize (see docs/lab-environment notes) and after each token's work.

    floor.py SPEC.json            -> JSON summary on stdout (counts, phase seconds)

SPEC: {"module": "/usr/lib/softhsm/libsofthsm2.so", "softhsm2_conf": "...", "pin": "...",
       "vault_url": "...", "kek_name": "...", "kek_size": 3072, "ca": "...", "authority": "...",
       "tenant": "...", "client_id": "...", "secret_env": "AZURE_SECRET",
       "hosts": [{"token_label": "...", "keys": [{"name", "label", "key_type", "key_size", "curve", "key_ops"}]}]}
"""

import base64
import ctypes
import ctypes.util
import hashlib
import json
import os
import sys
import time

T_START = time.monotonic()

SPEC = json.load(open(sys.argv[1], encoding="utf-8"))
# SoftHSM reads SOFTHSM2_CONF at C_Initialize: set it before the library is loaded
os.environ["SOFTHSM2_CONF"] = SPEC["softhsm2_conf"]

import pkcs11  # noqa: E402
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass  # noqa: E402
from pkcs11.util.ec import encode_named_curve_parameters  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from azure.core.exceptions import ResourceNotFoundError  # noqa: E402
from azure.identity import ClientSecretCredential  # noqa: E402
from azure.keyvault.keys import JsonWebKey, KeyClient  # noqa: E402

T_IMPORTED = time.monotonic()

CURVES = {"P-256": ("secp256r1", ec.SECP256R1()), "P-384": ("secp384r1", ec.SECP384R1())}
PHASES = {"keygen": 0.0, "hsm_read": 0.0, "wrap": 0.0, "vault_get": 0.0, "vault_import": 0.0, "kek": 0.0, "login": 0.0}


def clear_openssl_errors():
    name = ctypes.util.find_library("crypto")
    if name:
        ctypes.CDLL(name).ERR_clear_error()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def fingerprint(public_key):
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def unwrap_octet_string(point):
    """CKA_EC_POINT is a DER OCTET STRING holding the uncompressed point (some tokens give it raw)."""
    point = bytes(point)
    if point[0] == 0x04 and len(point) > 2:
        length, offset = point[1], 2
        if length & 0x80:
            n = length & 0x7F
            length, offset = int.from_bytes(point[2:2 + n], "big"), 2 + n
        if offset + length == len(point):
            return point[offset:]
    return point


def hsm_public_key(spec, public_obj):
    if spec["key_type"] == "RSA":
        n = int.from_bytes(bytes(public_obj[Attribute.MODULUS]), "big")
        e = int.from_bytes(bytes(public_obj[Attribute.PUBLIC_EXPONENT]), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    return ec.EllipticCurvePublicKey.from_encoded_point(
        CURVES[spec["curve"]][1], unwrap_octet_string(public_obj[Attribute.EC_POINT]))


def vault_public_key(key):
    jwk = key.key
    if jwk.n:
        return rsa.RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()
    crv = str(getattr(jwk.crv, "value", jwk.crv))
    return ec.EllipticCurvePublicNumbers(int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"),
                                         CURVES[crv][1]).public_key()


def find_or_generate(session, spec):
    """(private object, public object, generated?) for the target key labelled spec['label']."""
    t = time.monotonic()
    found = {o.object_class: o for o in session.get_objects({Attribute.LABEL: spec["label"]})}
    PHASES["hsm_read"] += time.monotonic() - t
    if ObjectClass.PRIVATE_KEY in found and ObjectClass.PUBLIC_KEY in found:
        return found[ObjectClass.PRIVATE_KEY], found[ObjectClass.PUBLIC_KEY], False
    t = time.monotonic()
    private_template = {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: True}
    key_id = os.urandom(16)
    if spec["key_type"] == "RSA":
        pub, priv = session.generate_keypair(KeyType.RSA, spec["key_size"], label=spec["label"], id=key_id, store=True,
                                             public_template={Attribute.TOKEN: True}, private_template=private_template)
    else:
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(CURVES[spec["curve"]][0])}, local=True)
        pub, priv = params.generate_keypair(label=spec["label"], id=key_id, store=True,
                                            public_template={Attribute.TOKEN: True}, private_template=private_template)
    PHASES["keygen"] += time.monotonic() - t
    return priv, pub, True


def import_kek(session, kek_public):
    numbers = kek_public.public_numbers()
    return session.create_object({
        Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: False,
        Attribute.PRIVATE: False, Attribute.LABEL: "floor-kek",
        Attribute.MODULUS: numbers.n.to_bytes((kek_public.key_size + 7) // 8, "big"),
        Attribute.PUBLIC_EXPONENT: numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"),
        Attribute.WRAP: True, Attribute.ENCRYPT: True})


def wrap(session, kek_obj, private_obj):
    """Two-step CKM_RSA_AES_KEY_WRAP inside the HSM: RSA-OAEP(SHA-1)(AES key) || AES-KWP(private key)."""
    aes = session.generate_key(KeyType.AES, 256, store=False, template={
        Attribute.TOKEN: False, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True, Attribute.WRAP: True,
        Attribute.ENCRYPT: False, Attribute.DECRYPT: False, Attribute.UNWRAP: False})
    try:
        key_part = aes.wrap_key(private_obj, mechanism=Mechanism.AES_KEY_WRAP_PAD)
        rsa_part = kek_obj.wrap_key(aes, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=(Mechanism.SHA_1, MGF.SHA1, None))
    finally:
        aes.destroy()
    return rsa_part + key_part


def byok_json(kek_kid, ciphertext):
    return json.dumps({"schema_version": "1.0.0", "header": {"kid": kek_kid, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
                       "ciphertext": b64url(ciphertext), "generator": "byok.keyvault bench floor"}).encode()


def main():
    wrap_only_dir = SPEC.get("wrap_only_dir")
    lib = pkcs11.lib(SPEC["module"])
    clear_openssl_errors()

    credential = ClientSecretCredential(SPEC["tenant"], SPEC["client_id"], os.environ[SPEC.get("secret_env", "AZURE_SECRET")],
                                        authority=SPEC["authority"], disable_instance_discovery=True,
                                        connection_verify=SPEC["ca"])
    client = KeyClient(SPEC["vault_url"], credential, connection_verify=SPEC["ca"])

    t = time.monotonic()
    try:
        kek = client.get_key(SPEC["kek_name"])
    except ResourceNotFoundError:
        kek = client.create_rsa_key(SPEC["kek_name"], size=SPEC.get("kek_size", 3072), hardware_protected=True,
                                    key_operations=["import"])
    kek_ops = sorted(str(getattr(o, "value", o)) for o in kek.key_operations)
    if kek_ops != ["import"]:
        raise SystemExit("KEK %s has key_ops %s" % (SPEC["kek_name"], kek_ops))
    kek_public = vault_public_key(kek)
    PHASES["kek"] += time.monotonic() - t

    counts = {"keys": 0, "generated": 0, "imported": 0, "kept": 0, "mismatch": 0}
    for host in SPEC["hosts"]:
        t = time.monotonic()
        token = lib.get_token(token_label=host["token_label"])
        session = token.open(rw=True, user_pin=SPEC["pin"])
        PHASES["login"] += time.monotonic() - t
        try:
            kek_obj = None
            for spec in host["keys"]:
                counts["keys"] += 1
                priv, pub, generated = find_or_generate(session, spec)
                counts["generated"] += int(generated)
                hsm_fp = fingerprint(hsm_public_key(spec, pub))
                clear_openssl_errors()
                if wrap_only_dir:  # for the az CLI comparison: write the .byok, import nothing
                    if kek_obj is None:
                        kek_obj = import_kek(session, kek_public)
                    with open(os.path.join(wrap_only_dir, spec["name"] + ".byok"), "wb") as handle:
                        handle.write(byok_json(kek.id, wrap(session, kek_obj, priv)))
                    continue

                t = time.monotonic()
                try:
                    current = client.get_key(spec["name"])
                except ResourceNotFoundError:
                    current = None
                PHASES["vault_get"] += time.monotonic() - t
                if current is not None:
                    if fingerprint(vault_public_key(current)) == hsm_fp:
                        counts["kept"] += 1
                        continue
                    raise SystemExit("vault key %s is another key than the HSM's" % spec["name"])

                t = time.monotonic()
                if kek_obj is None:
                    kek_obj = import_kek(session, kek_public)
                ciphertext = wrap(session, kek_obj, priv)
                blob = byok_json(kek.id, ciphertext)
                clear_openssl_errors()
                PHASES["wrap"] += time.monotonic() - t

                t = time.monotonic()
                fields = {"kty": spec["key_type"] + "-HSM", "key_ops": spec["key_ops"], "t": blob}
                if spec["key_type"] == "EC":
                    fields["crv"] = spec["curve"]
                key = client.import_key(spec["name"], JsonWebKey(**fields), hardware_protected=True, retry_total=0)
                PHASES["vault_import"] += time.monotonic() - t
                if fingerprint(vault_public_key(key)) != hsm_fp:
                    counts["mismatch"] += 1
                else:
                    counts["imported"] += 1
            if kek_obj is not None:
                kek_obj.destroy()
        finally:
            session.close()
            clear_openssl_errors()

    end = time.monotonic()
    out = dict(counts, seconds_total=round(end - T_START, 3), seconds_python_imports=round(T_IMPORTED - T_START, 3),
               phases={k: round(v, 3) for k, v in PHASES.items()})
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 1 if counts["mismatch"] else 0


if __name__ == "__main__":
    sys.exit(main())
