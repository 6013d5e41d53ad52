# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every key type/size/curve cell Azure accepts, through playbooks/transfer.yml, into both lab vault flavours.

One transfer run (three HSM hosts, three REAL SoftHSM2 tokens, one of them behind the CKM_RSA_AES_KEY_WRAP test
shim) moves 17 keys into the lab's Key Vault Premium and Managed HSM vaults; a second run changes nothing. Each key
is compared on both sides: the audit manifest the report role writes, the HSM key read with pkcs11-tool, and the
vault key re-computed here from the SDK's JWK (oct keys: KCV from an A*CBC zero-IV encryption by the vault).

The cells Azure refuses fail before any HSM work: nothing on the tokens, nothing in the vault.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import (ANSIBLE_PLAYBOOK, PYTHON, SHIM_LIB, SOFTHSM_LIB, TRANSFER_PLAYBOOK, PlaybookRun, Token, _env, ensure_shim,
                      new_token, assert_one_line_failure, parse_recap, testing, unique)

# Cells Azure accepts, per vault flavour (README "Key types")
RSA_SIZES = (2048, 3072, 4096)
EC_CURVES = ("P-256", "P-384", "P-521", "P-256K")
OCT_SIZES = (128, 192, 256)
CURVE_CLASSES = {"P-256": "SECP256R1", "P-384": "SECP384R1", "P-521": "SECP521R1", "P-256K": "SECP256K1"}
KTY = {"RSA": "RSA-HSM", "EC": "EC-HSM", "oct": "oct-HSM"}


# --------------------------------------------------------------------------------------------------------------------
# Helpers shared with test_vendor_roles.py
# --------------------------------------------------------------------------------------------------------------------

def playbook(base_env, cwd: Path, playbook_path, inventory, extra_env=None, extra_args=(), timeout=300) -> PlaybookRun:
    """conftest's run_playbook, usable from module-scoped fixtures."""
    cmd = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook_path)] + list(extra_args)
    started = time.monotonic()
    proc = subprocess.run(cmd, env=_env(base_env, extra_env), cwd=str(cwd), capture_output=True, text=True,
                          timeout=timeout, check=False)
    return PlaybookRun(rc=proc.returncode, output=proc.stdout + proc.stderr, recap=parse_recap(proc.stdout),
                       seconds=time.monotonic() - started)


RESULT_RE = re.compile(r"^(?P<state>ok|changed|fatal|failed|skipping): \[(?P<host>[^\]]+)\](?:: FAILED!)?"
                       r"(?: => \(item=.*?\)| \(item=.*?\))?(?: => (?P<first>\{.*))?\s*$")
TASK_RE = re.compile(r"^TASK \[(?P<name>[^\]]*)\]")


def task_results(output: str) -> List[dict]:
    """[{task, state, host, result}] of a default-callback run with callback_result_format=json.

    A result is either one line (``fatal: [h]: FAILED! => {...}``) or a JSON object over several lines that ends
    with a ``}`` in column 0.
    """
    out = []
    task = ""
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        m = TASK_RE.match(line)
        if m:
            task = m.group("name")
            continue
        m = RESULT_RE.match(line)
        if not m:
            continue
        body = m.group("first")
        result = {}
        if body:
            try:
                result = json.loads(body)
            except ValueError:
                chunk = [body]
                while i < len(lines) and chunk[-1] != "}":
                    chunk.append(lines[i])
                    i += 1
                try:
                    result = json.loads("\n".join(chunk))
                except ValueError:
                    result = {"_raw": "\n".join(chunk)}
        out.append({"task": task, "state": m.group("state"), "host": m.group("host"), "result": result})
    return out


def failure_of(output: str, host: str) -> dict:
    """The first fatal result of a host: {task, result}."""
    for r in task_results(output):
        if r["host"] == host and r["state"] in ("fatal", "failed"):
            return r
    raise AssertionError("no failure of host %s in the output:\n%s" % (host, output[-8000:]))


_TOKEN_READER = r"""
import hashlib, json, sys
import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CURVES = {bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(), bytes.fromhex("06052b81040022"): ec.SECP384R1(),
          bytes.fromhex("06052b81040023"): ec.SECP521R1(), bytes.fromhex("06052b8104000a"): ec.SECP256K1()}
lib, token_label, pin = sys.argv[1:4]
out = {}
with pkcs11.lib(lib).get_token(token_label=token_label).open(user_pin=pin) as session:
    for obj in list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})):
        if obj.key_type == KeyType.RSA:
            public = rsa.RSAPublicNumbers(int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big"),
                                          int.from_bytes(obj[Attribute.MODULUS], "big")).public_key()
        else:
            point = bytes(obj[Attribute.EC_POINT])
            point = point[3:] if point[1] == 0x81 else point[2:]  # DER OCTET STRING around the uncompressed point
            public = ec.EllipticCurvePublicKey.from_encoded_point(CURVES[bytes(obj[Attribute.EC_PARAMS])], point)
        spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        out[obj.label] = {"kind": "spki-sha256", "value": hashlib.sha256(spki).hexdigest()}
    for obj in list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})):
        out[obj.label] = {"kind": "kcv", "value": hashlib.sha256(obj.encrypt(b"\x00" * 16, mechanism=Mechanism.AES_ECB)[:16]).hexdigest()}
print(json.dumps(out))
"""


def token_fingerprints(token: Token, library: str = SOFTHSM_LIB) -> Dict[str, str]:
    """{label: SPKI SHA-256 (RSA/EC) or KCV (AES, AES-ECB of a zero block computed by the token)} of a token.

    Computed here with python-pkcs11 straight from the key objects' attributes, independently of the collection's
    code, and in a subprocess so that loading SoftHSM never touches the OpenSSL state of the test process (see
    lab-environment.md). pkcs11-tool 0.23 cannot export P-384 public keys ("cannot create EVP_PKEY").
    """
    env = dict(token.base_env)
    env.update(token.env)
    proc = subprocess.run([PYTHON, "-c", _TOKEN_READER, library, token.label, token.pin], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, "reading token %s failed: %s%s" % (token.label, proc.stdout, proc.stderr)
    return {label: entry["value"] for label, entry in json.loads(proc.stdout).items()}


class VaultView:
    """The lab vaults as the real SDK sees them, one credential for all calls; fingerprints re-computed here."""

    def __init__(self, lab):
        from azure.identity import ClientSecretCredential

        self.lab = lab
        self.credential = ClientSecretCredential(lab.env["AZURE_TENANT"], lab.env["AZURE_CLIENT_ID"], lab.env["AZURE_SECRET"],
                                                 authority=lab.env["LAB_AUTHORITY"], disable_instance_discovery=True,
                                                 connection_verify=lab.env["LAB_CA"])
        self._clients = {}

    def client(self, vault: str):
        from azure.keyvault.keys import KeyClient

        if vault not in self._clients:
            self._clients[vault] = KeyClient(self.lab.env["LAB_VAULT_%s" % vault.upper()], self.credential,
                                             connection_verify=self.lab.env["LAB_CA"])
        return self._clients[vault]

    def key(self, vault: str, name: str):
        return self.client(vault).get_key(name)

    @staticmethod
    def public_key(key):
        """A cryptography public key from the JWK of a KeyVaultKey (RSA or EC)."""
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        jwk = key.key
        kty = str(getattr(jwk.kty, "value", jwk.kty))
        if kty.startswith("RSA"):
            return rsa.RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()
        crv = str(getattr(jwk.crv, "value", jwk.crv))
        return ec.EllipticCurvePublicNumbers(int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"),
                                             getattr(ec, CURVE_CLASSES[crv])()).public_key()

    @classmethod
    def sha256(cls, key) -> str:
        from cryptography.hazmat.primitives import serialization

        spki = cls.public_key(key).public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(spki).hexdigest()

    def pem(self, key) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.public_key(key).public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def vault_kcv(view: VaultView, key, bits: int) -> str:
    from azure.keyvault.keys.crypto import CryptographyClient, EncryptionAlgorithm

    alg = {128: EncryptionAlgorithm.a128_cbc, 192: EncryptionAlgorithm.a192_cbc, 256: EncryptionAlgorithm.a256_cbc}[bits]
    crypto = CryptographyClient(key, view.credential, connection_verify=view.lab.env["LAB_CA"])
    result = crypto.encrypt(alg, b"\x00" * 16, iv=b"\x00" * 16)
    return hashlib.sha256(result.ciphertext[:16]).hexdigest()


def manifest_rows(directory: Path) -> Dict[str, dict]:
    """{key name: row} of the single audit manifest (JSON) the report role wrote into a directory."""
    files = sorted(directory.glob("byok-transfer-*.json"))
    assert len(files) == 1, "expected one JSON manifest in %s, found %s" % (directory, [f.name for f in files])
    data = json.loads(files[0].read_text())
    assert data.get("schema") == "byok.keyvault/manifest/2", data.get("schema")
    rows = {}
    for row in data["keys"]:
        assert row["name"] not in rows, "manifest lists %s twice" % row["name"]
        rows[row["name"]] = row
    return rows


# --------------------------------------------------------------------------------------------------------------------
# The matrix: one transfer of every accepted cell, then a second run
# --------------------------------------------------------------------------------------------------------------------

def _cell(vault: str, key_type: str, size=None, curve=None) -> dict:
    tag = "%s-%s-%s" % (vault, key_type.lower(), (curve or str(size)).lower().replace("-", ""))
    key = {"name": unique("mx-%s" % tag), "vault": vault, "key_type": key_type}
    if curve:
        key["curve"] = curve
    else:
        key["key_size"] = size
    return key


def matrix_layout():
    """hsm1 (SoftHSM, two_step), hsm2 (SoftHSM behind the shim, combined), hsm3 (SoftHSM, two_step).

    Every accepted cell once per vault; the two RSA-4096 keys sit on different hosts so they are generated in parallel.
    """
    p, m = "premium", "mhsm"
    return {
        "hsm1": [_cell(p, "RSA", 2048), _cell(p, "RSA", 3072), _cell(p, "RSA", 4096), _cell(p, "EC", curve="P-256"),
                 _cell(m, "oct", 128)],
        "hsm2": [_cell(p, "EC", curve="P-384"), _cell(p, "EC", curve="P-521"), _cell(p, "EC", curve="P-256K"),
                 _cell(m, "RSA", 2048), _cell(m, "RSA", 3072), _cell(m, "oct", 192)],
        "hsm3": [_cell(m, "RSA", 4096), _cell(m, "EC", curve="P-256"), _cell(m, "EC", curve="P-384"),
                 _cell(m, "EC", curve="P-521"), _cell(m, "EC", curve="P-256K"), _cell(m, "oct", 256)],
    }


SHIM_HOSTS = ("hsm2",)


def write_inventory(path: Path, lab, hosts: Dict[str, tuple], keks: Dict[str, str], shim_hosts=()) -> Path:
    """A transfer inventory: ``hosts`` maps a host to (token, byok_keys); vaults premium and mhsm of the lab."""
    hsm_hosts = {}
    for name, (token, keys) in hosts.items():
        host = testing.token_vars(token, keys)
        if name in shim_hosts:
            host["byok_pkcs11_module"] = str(SHIM_LIB)
            host["byok_hsm_environment"] = dict(token.env, BYOK_SHIM_TARGET=SOFTHSM_LIB)
        hsm_hosts[name] = host
    vaults = {}
    for vault in ("premium", "mhsm"):
        if vault in keks:
            vaults.update(testing.lab_vaults(lab.env, keks[vault], kek_size=2048, names=(vault,)))
    return testing.write_inventory(path, hsm_hosts, vaults, testing.lab_azure(lab.env), path.parent / "manifests")


@pytest.fixture(scope="module")
def matrix(lab, base_env, tmp_path_factory):
    """Two transfer.yml runs of every accepted cell (first and second run), with what they need for the checks."""
    ensure_shim()
    work = tmp_path_factory.mktemp("key-matrix")
    layout = matrix_layout()
    hosts = {h: (new_token(work / ("token-%s" % h), base_env), keys) for h, keys in layout.items()}
    keks = {"premium": unique("mx-kek"), "mhsm": unique("mx-kek")}
    inventory = write_inventory(work / "inventory.yml", lab, hosts, keks, shim_hosts=SHIM_HOSTS)
    runs = []
    for n in (1, 2):
        manifests = work / ("manifests-%d" % n)
        runs.append((playbook(base_env, work, TRANSFER_PLAYBOOK, inventory, extra_env=lab.azure_env,
                              extra_args=["-e", "byok_manifest_dir=%s" % manifests]), manifests))
    return {"hosts": hosts, "keks": keks, "runs": runs, "work": work, "view": VaultView(lab), "lab": lab}


def _all_keys(matrix):
    for host, (token, keys) in matrix["hosts"].items():
        for key in keys:
            yield host, token, key


def test_matrix_covers_every_accepted_cell(matrix):
    """The layout itself: Premium gets RSA x3 + EC x4, Managed HSM the same plus oct x3, RSA-4096 only once per vault."""
    cells = {(k["vault"], k["key_type"], k.get("key_size") or k.get("curve")) for _h, _t, k in _all_keys(matrix)}
    expected = set()
    for vault in ("premium", "mhsm"):
        expected |= {(vault, "RSA", s) for s in RSA_SIZES} | {(vault, "EC", c) for c in EC_CURVES}
    expected |= {("mhsm", "oct", s) for s in OCT_SIZES}
    assert cells == expected
    assert sum(1 for _h, _t, k in _all_keys(matrix) if k.get("key_size") == 4096) == 2


def test_first_run_transfers_every_cell(matrix):
    run, manifests = matrix["runs"][0]
    assert run.rc == 0, str(run)
    for host in matrix["hosts"]:
        assert run.recap.get(host, {}).get("failed", 1) == 0 and run.recap[host]["changed"] > 0, \
            "first run of %s: %s\n%s" % (host, run.recap.get(host), run)

    rows = manifest_rows(manifests)
    view = matrix["view"]
    on_tokens = {host: token_fingerprints(token) for host, (token, _keys) in matrix["hosts"].items()}
    problems = []
    for host, token, key in _all_keys(matrix):
        name, vault = key["name"], key["vault"]
        row = rows.get(name)
        if row is None:
            problems.append("%s: not in the manifest" % name)
            continue
        expected_method = "combined" if host in SHIM_HOSTS else "two_step"
        # what the collection says
        if row["result"] != "transferred" or not row["match"] or row["host"] != host or row["vault"] != vault:
            shown = {k: row.get(k) for k in ("host", "vault", "result", "match", "message")}
            problems.append("%s: manifest row %s" % (name, shown))
        if row["hsm_fingerprint"] != row["vault_fingerprint"] or not row["hsm_fingerprint"]:
            problems.append("%s: manifest fingerprints %s / %s" % (name, row["hsm_fingerprint"], row["vault_fingerprint"]))
        if row.get("wrap_method") != expected_method:
            problems.append("%s: wrap_method %r, expected %s" % (name, row.get("wrap_method"), expected_method))
        if row.get("kek_kid", "") is None or "/keys/%s/" % matrix["keks"][vault] not in (row.get("kek_kid") or ""):
            problems.append("%s: kek_kid %r is not the %s KEK" % (name, row.get("kek_kid"), vault))
        # what the token and the vault say, computed here
        vkey = view.key(vault, name)
        if str(getattr(vkey.key_type, "value", vkey.key_type)) != KTY[key["key_type"]]:
            problems.append("%s: vault kty %s" % (name, vkey.key_type))
        if row.get("kid") != vkey.id:
            problems.append("%s: manifest kid %s, vault current %s" % (name, row.get("kid"), vkey.id))
        if key["key_type"] == "oct":
            hsm_kcv = on_tokens[host].get(name)
            vault_kcv_value = vault_kcv(view, vkey, key["key_size"])
            if not (hsm_kcv == vault_kcv_value == row["hsm_fingerprint"]):
                problems.append("%s: KCV token %s, vault %s, manifest %s" % (name, hsm_kcv, vault_kcv_value,
                                                                             row["hsm_fingerprint"]))
        else:
            hsm_fp = on_tokens[host].get(name)
            vault_fp = view.sha256(vkey)
            if not (hsm_fp == vault_fp == row["hsm_fingerprint"]):
                problems.append("%s: SPKI sha256 token %s, vault %s, manifest %s"
                                % (name, hsm_fp, vault_fp, row["hsm_fingerprint"]))
            public = view.public_key(vkey)
            if key["key_type"] == "RSA" and public.key_size != key["key_size"]:
                problems.append("%s: vault RSA size %d" % (name, public.key_size))
            if key["key_type"] == "EC" and public.curve.name != getattr(ec, CURVE_CLASSES[key["curve"]]).name:
                problems.append("%s: vault curve %s" % (name, public.curve.name))
    assert not problems, "\n".join(problems)

    # The lab's own record: one BYOK version per key, imported under this run's KEK of its vault
    dump = matrix["lab"].dump()
    for _host, _token, key in _all_keys(matrix):
        versions = dump[key["vault"]]["keys"][key["name"]]["versions"]
        assert len(versions) == 1 and versions[0]["origin"] == "byok", (key["name"], versions)
        assert "/keys/%s/" % matrix["keks"][key["vault"]] in versions[0]["kek_kid"], (key["name"], versions[0])


def test_second_run_changes_nothing(matrix):
    run, manifests = matrix["runs"][1]
    assert run.rc == 0, str(run)
    for host, counts in run.recap.items():
        assert counts["changed"] == 0 and counts["failed"] == 0, "second run changed %s: %s\n%s" % (host, counts, run)
    assert set(run.recap) >= set(matrix["hosts"]) | {"localhost"}, run.recap
    rows = manifest_rows(manifests)
    for _host, _token, key in _all_keys(matrix):
        row = rows[key["name"]]
        assert row["result"] == "in place" and row["match"], row
    dump = matrix["lab"].dump()
    for _host, _token, key in _all_keys(matrix):
        versions = dump[key["vault"]]["keys"][key["name"]]["versions"]
        assert len(versions) == 1, "%s has %d versions after two runs" % (key["name"], len(versions))
    for vault, kek in matrix["keks"].items():
        assert len(dump[vault]["keys"][kek]["versions"]) == 1, dump[vault]["keys"][kek]
    # one object pair per asymmetric key and one secret key per oct key: nothing generated twice
    for host, (token, keys) in matrix["hosts"].items():
        objects = token.objects()
        expected = sorted([("Private Key", k["name"]) for k in keys if k["key_type"] != "oct"]
                          + [("Public Key", k["name"]) for k in keys if k["key_type"] != "oct"]
                          + [("Secret Key", k["name"]) for k in keys if k["key_type"] == "oct"])
        assert sorted((o["class"], o.get("label")) for o in objects) == expected, (host, objects)


def test_combined_wrap_only_with_the_shim(matrix, run_module, tmp_path):
    """The shim host wrapped with CKM_RSA_AES_KEY_WRAP (checked above: the vault accepted it, fingerprints equal);
    the same token without the shim wraps the same key with the two-step method."""
    run, manifests = matrix["runs"][0]
    rows = manifest_rows(manifests)
    token, keys = matrix["hosts"]["hsm2"]
    assert {rows[k["name"]]["wrap_method"] for k in keys} == {"combined"}, [rows[k["name"]] for k in keys]
    assert {rows[k["name"]]["key_type"] for k in keys} == {"RSA", "EC", "oct"}
    for other in ("hsm1", "hsm3"):
        assert {rows[k["name"]]["wrap_method"] for k in matrix["hosts"][other][1]} == {"two_step"}

    view = matrix["view"]
    kek = view.key("premium", matrix["keks"]["premium"])
    kek_file = tmp_path / "kek.pem"
    kek_file.write_text(view.pem(kek))
    key = [k for k in keys if k["vault"] == "premium"][0]
    plain = run_module("byok_wrap", dict(token.pkcs11_args(), label=key["name"], dest=str(tmp_path / "plain.byok"),
                                         kek_file=str(kek_file), kek_kid=kek.id, wrap_method="auto"), env=token.env)
    assert not plain.failed and plain.result.get("wrap_method") == "two_step", str(plain)
    assert plain.result.get("fingerprint") == rows[key["name"]]["hsm_fingerprint"], str(plain)


# --------------------------------------------------------------------------------------------------------------------
# Cells Azure refuses: early, clear, nothing anywhere
# --------------------------------------------------------------------------------------------------------------------

REFUSED = {
    # host: (vault, byok_keys item without name, words the message must contain)
    "rsa1024": ("premium", {"key_type": "RSA", "key_size": 1024}, ("1024", "2048, 3072, 4096")),
    "rsa8192": ("mhsm", {"key_type": "RSA", "key_size": 8192}, ("8192", "2048, 3072, 4096")),
    "p192": ("premium", {"key_type": "EC", "curve": "P-192"}, ("P-192", "P-256, P-384, P-521, P-256K")),
    "oct512": ("mhsm", {"key_type": "oct", "key_size": 512}, ("512", "128, 192, 256")),
    "octpremium": ("premium", {"key_type": "oct", "key_size": 256}, ("Managed HSM", "Premium")),
}


def test_refused_cells_fail_before_any_hsm_work(fresh_lab, base_env, tmp_path):
    hosts = {}
    for host, (vault, spec, _words) in REFUSED.items():
        token = new_token(tmp_path / ("token-%s" % host), base_env)
        hosts[host] = (token, [dict(spec, name=unique("no-%s" % host), vault=vault)])
    keks = {"premium": unique("no-kek"), "mhsm": unique("no-kek")}
    inventory = write_inventory(tmp_path / "inventory.yml", fresh_lab, hosts, keks)
    run = playbook(base_env, tmp_path, TRANSFER_PLAYBOOK, inventory, extra_env=fresh_lab.azure_env)
    assert run.rc != 0, "refused keys must fail the run:\n%s" % run
    results = task_results(run.output)
    # the whole inventory is checked once, before anything is touched: one failed planning task names every refused
    # key, one line each, and the run ends there (no HSM task, no vault call, no manifest claiming work)
    plan_failures = [r for r in results if "Check the inventory" in r["task"]
                     and "nothing was done" in str(r["result"].get("msg", ""))]
    assert len(plan_failures) == 1, "expected one failed planning task:\n%s" % run
    lines = plan_failures[0]["result"]["msg"].splitlines()[1:]
    assert not list((tmp_path / "manifests").glob("byok-transfer-*")), "a manifest was written for a run that did nothing"
    problems = []
    for host, (_vault, _spec, words) in REFUSED.items():
        name = hosts[host][1][0]["name"]
        mine = [line for line in lines if line.startswith("%s: byok_keys[0] (%s)." % (host, name))]
        if len(mine) != 1:
            problems.append("%s: expected one problem line, got %s" % (host, mine))
            continue
        if any(r["host"] == host and ("Generate the target keys" in r["task"] or "Wrap" in r["task"]) for r in results):
            problems.append("%s: the HSM tasks ran for a refused key" % host)
        for word in words:
            if word.lower() not in mine[0].lower():
                problems.append("%s: message does not name %r: %r" % (host, word, mine[0]))
        objects = hosts[host][0].objects()
        if objects:
            problems.append("%s: token holds objects after the refusal: %s" % (host, objects))
    assert not problems, "\n".join(problems) + "\n" + str(run)
    for vault, state in fresh_lab.dump().items():
        assert state["keys"] == {}, "a refused transfer created keys in vault %s: %s" % (vault, sorted(state["keys"]))


def test_hsm_keygen_refuses_rsa1024(make_token, run_module):
    token = make_token()
    run = run_module("hsm_keygen", dict(token.pkcs11_args(), label=unique("rsa1024"), key_type="RSA", key_size=1024),
                     env=token.env)
    assert_one_line_failure(run, "1024", "2048", "3072", "4096")
    assert token.objects() == [], "hsm_keygen left objects after refusing RSA-1024: %s" % token.objects()


def test_keyvault_import_refuses_oct_into_premium(lab, run_module, tmp_path):
    name = unique("oct-premium")
    byok = tmp_path / "oct.byok"
    # a well-formed .byok: the module must refuse on the key type before it sends anything
    byok.write_text(json.dumps({"schema_version": "1.0.0", "header": {
        "kid": "%s/keys/some-kek/0123456789abcdef0123456789abcdef" % lab.env["LAB_VAULT_PREMIUM"], "alg": "dir",
        "enc": "CKM_RSA_AES_KEY_WRAP"}, "ciphertext": "AAAA", "generator": "test"}))
    run = run_module("keyvault_import", dict(lab.azure_args("premium"), name=name, byok_file=str(byok), key_type="oct",
                                             key_size=256), env=lab.azure_env)
    assert_one_line_failure(run, "Managed HSM")
    assert name not in lab.keys("premium")
