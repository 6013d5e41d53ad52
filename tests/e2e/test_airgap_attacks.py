# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on the air-gapped (staged) flow, each with REAL playbook runs against the lab vault and SoftHSM2 tokens:

- a KEK swapped in the bundle is never wrapped under (stage 2 needs the fingerprints carried out of band), and a .byok
  planted between two runs of stage 2 is never kept and sealed as stage 2's own;
- a .byok replaced by a wrap of the attacker's own key under the (public) KEK is never imported (stage 3 needs the
  bundle digest stage 2 printed), nor is a key whose .byok is missing reported "in place";
- the folders the collection writes are its own: a `keks` symlink and a world-writable bundle planted by another
  local user, a vault short name with '..', a manifest folder of another user or behind a symlink are refused in the
  plan, before any KEK, HSM key or vault key is made.

The tests with another local user need root (to add a throwaway user) and are skipped with the reason otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat

from conftest import TRANSFER_PLAYBOOK, unique
from test_fleet import STAGED, bundle_digests, inventory
from test_lock_hostile_user import as_user, other_user, shared_tmp  # noqa: F401 pylint: disable=unused-import


def ec_key(vault="premium"):
    return {"name": unique("ag-ec"), "vault": vault, "key_type": "EC", "curve": "P-256"}


def stage_args(bundle, **values):
    args = ["-e", "byok_bundle_dir=%s" % bundle]
    for name, value in values.items():
        args += ["-e", json.dumps({name: value})]
    return args


def kek_fingerprints(bundle, vaults):
    return dict((v, json.loads((bundle / "keks" / ("%s.json" % v)).read_text())["fingerprint"]) for v in vaults)


def offline_env(lab):
    return dict((k, v) for k, v in lab.azure_env.items() if not k.startswith("AZURE_"))


def setup(lab, make_token, tmp_path, keys):
    token = make_token()
    keks = {"premium": unique("ag-kek"), "mhsm": unique("ag-kek")}
    connected = inventory(tmp_path / "connected.yml", lab, {"hsm1": (token, keys)}, keks)
    offline = inventory(tmp_path / "offline.yml", lab, {"hsm1": (token, keys)}, keks, with_vaults=False)
    return token, keks, connected, offline


def stages_1_2(lab, run_playbook, connected, offline, bundle, vaults=("premium",)):
    fetch = run_playbook(STAGED[0], connected, extra_env=lab.azure_env, extra_args=stage_args(bundle))
    assert fetch.rc == 0, str(fetch)
    fingerprints = kek_fingerprints(bundle, vaults)
    wrap = run_playbook(STAGED[1], offline, extra_env=offline_env(lab),
                        extra_args=stage_args(bundle, byok_expected_kek_fingerprints=fingerprints))
    assert wrap.rc == 0, str(wrap)
    return bundle_digests(wrap)


def attacker_kek(directory):
    """The attacker's RSA key pair: (private key, PEM of the public key, fingerprint)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, pem, hashlib.sha256(der).hexdigest()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forge_byok(kek_pem, kid):
    """A .byok of a P-256 key the attacker knows, wrapped as the BYOK specification says under the (public) KEK:
    (.byok bytes, fingerprint of the attacker's key)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

    key = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    aes = os.urandom(32)
    kek = serialization.load_pem_public_key(kek_pem)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    ciphertext = kek.encrypt(aes, oaep) + aes_key_wrap_with_padding(aes, pkcs8)
    blob = {"schema_version": "1.0.0", "header": {"kid": kid, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
            "ciphertext": b64url(ciphertext), "generator": "someone else"}
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return json.dumps(blob).encode("utf-8"), hashlib.sha256(spki).hexdigest()


def test_stage2_never_wraps_under_a_kek_not_verified_out_of_band(lab, make_token, run_playbook, tmp_path):
    key = ec_key()
    token, _keks, connected, offline = setup(lab, make_token, tmp_path, [key])
    bundle = tmp_path / "bundle"
    fetch = run_playbook(STAGED[0], connected, extra_env=lab.azure_env, extra_args=stage_args(bundle))
    assert fetch.rc == 0, str(fetch)
    genuine = kek_fingerprints(bundle, ["premium"])

    # the attacker swaps the KEK (and its json) in the bundle for their own key
    _private, pem, fingerprint = attacker_kek(tmp_path)
    (bundle / "keks" / "premium.pem").write_bytes(pem)
    meta = json.loads((bundle / "keks" / "premium.json").read_text())
    (bundle / "keks" / "premium.json").write_text(json.dumps(dict(meta, fingerprint=fingerprint)))

    # without the fingerprints (the variable is optional in the old flow) stage 2 must refuse before any HSM login
    refused = run_playbook(STAGED[1], offline, extra_env=offline_env(lab), extra_args=stage_args(bundle))
    assert refused.rc != 0, "stage 2 wrapped under a KEK nobody verified:\n%s" % refused
    assert "byok_expected_kek_fingerprints.premium is not given" in refused.output, str(refused)
    assert token.objects() == [], "an HSM key was made before the KEK was verified: %s" % token.objects()
    assert not (bundle / "wrapped").exists(), "something was wrapped under the attacker's KEK"

    # with the genuine fingerprint, the swapped KEK is refused too
    refused = run_playbook(STAGED[1], offline, extra_env=offline_env(lab),
                           extra_args=stage_args(bundle, byok_expected_kek_fingerprints=genuine))
    assert refused.rc != 0 and "verified out of band" in refused.output, str(refused)
    assert not (bundle / "wrapped").exists()

    # the opt-in to an unauthenticated air gap works, and says so loudly
    lab_only = run_playbook(STAGED[1], offline, extra_env=offline_env(lab),
                            extra_args=stage_args(bundle, byok_airgap_unauthenticated=True))
    assert lab_only.rc == 0, str(lab_only)
    assert "NOT authenticated" in lab_only.output and "NOT AUTHENTICATED" in lab_only.output, str(lab_only)


def test_stage3_never_imports_a_byok_the_hsm_side_did_not_seal(lab, make_token, run_playbook, tmp_path):
    key = ec_key()
    _token, _keks, connected, offline = setup(lab, make_token, tmp_path, [key])
    bundle = tmp_path / "bundle"
    digests = stages_1_2(lab, run_playbook, connected, offline, bundle)

    # the attacker replaces the .byok and its sidecar by a wrap of their own key under the genuine (public) KEK, and
    # rewrites the seal to match: only the digest carried out of band can tell
    folder = bundle / "wrapped" / "hsm1" / "premium"
    byok = folder / ("%s.byok" % key["name"])
    kid = json.loads((bundle / "keks" / "premium.json").read_text())["kid"]
    forged, fingerprint = forge_byok((bundle / "keks" / "premium.pem").read_bytes(), kid)
    byok.write_bytes(forged)
    sidecar = folder / ("%s.byok.json" % key["name"])
    sidecar.write_text(json.dumps(dict(json.loads(sidecar.read_text()), fingerprint=fingerprint)))
    seal_path = bundle / "wrapped" / "hsm1" / "seal.json"
    if seal_path.exists():
        seal = json.loads(seal_path.read_text())
        for record in seal["keys"]:
            record.update(identity=fingerprint, byok_sha256=hashlib.sha256(forged).hexdigest())
        seal_path.write_text(json.dumps(seal, sort_keys=True, separators=(",", ":")) + "\n")

    # a digest that is given is checked even when byok_airgap_unauthenticated is left on (a lab's group_vars)
    loose = {"byok_expected_bundle_digests": digests, "byok_airgap_unauthenticated": True}
    for extra in ({}, {"byok_expected_bundle_digests": digests}, loose):
        run = run_playbook(STAGED[2], connected, extra_env=lab.azure_env, extra_args=stage_args(bundle, **extra))
        assert run.rc != 0, "stage 3 imported a .byok the HSM side never made:\n%s" % run
        assert key["name"] not in lab.keys("premium"), "the vault holds the attacker's key: %s" % lab.keys("premium")[key["name"]]
        assert "nothing was imported" in run.output, str(run)
        assert ("is not given" in run.output) if not extra else ("does not have the digest" in run.output), str(run)
        assert ("NOT authenticated" in run.output) == (extra is loose), str(run)
    assert list(digests) == ["hsm1"], "stage 2 printed no bundle digest"


def test_stage3_reports_a_missing_byok_as_not_done(lab, make_token, run_playbook, tmp_path):
    keys = [ec_key(), ec_key()]
    _token, _keks, connected, offline = setup(lab, make_token, tmp_path, keys)
    bundle = tmp_path / "bundle"
    digests = stages_1_2(lab, run_playbook, connected, offline, bundle)
    (bundle / "wrapped" / "hsm1" / "premium" / ("%s.byok" % keys[1]["name"])).unlink()

    run = run_playbook(STAGED[2], connected, extra_env=lab.azure_env,
                       extra_args=stage_args(bundle, byok_expected_bundle_digests=digests))
    assert run.rc != 0, "a key whose .byok is missing did not fail the run:\n%s" % run
    manifest = json.loads(sorted((tmp_path / "manifests").glob("*.json"))[-1].read_text())
    rows = dict((r["name"], r) for r in manifest["keys"])
    assert rows[keys[0]["name"]]["result"] == "transferred" and rows[keys[0]["name"]]["match"], rows
    missing = rows[keys[1]["name"]]
    assert missing["result"] == "failed" and "not done" in missing["message"], missing
    assert keys[1]["name"] not in lab.keys("premium")


def test_a_vault_short_name_is_an_identifier(lab, make_token, run_playbook, tmp_path):
    key = dict(ec_key(), vault="../../outside/prem")
    token, keks, connected, _offline = setup(lab, make_token, tmp_path, [key])
    data = json.loads(connected.read_text())
    vaults = data["all"]["vars"]["byok_vaults"]
    vaults["../../outside/prem"] = vaults.pop("premium")
    connected.write_text(json.dumps(data))
    bundle = tmp_path / "usb" / "bundle"
    outside = tmp_path / "usb" / "outside"  # bundle/keks/../../outside
    outside.mkdir(parents=True)

    run = run_playbook(STAGED[0], connected, extra_env=lab.azure_env, extra_args=stage_args(bundle))
    assert run.rc != 0, "stage 1 took a vault short name with '..':\n%s" % run
    assert "byok_vaults.../../outside/prem: '../../outside/prem' is not a vault short name" in run.output, str(run)
    assert list(outside.iterdir()) == [], "stage 1 wrote outside the bundle: %s" % list(outside.iterdir())
    assert keks["premium"] not in lab.keys("premium"), "a KEK was made before the plan refused"


def test_a_keks_symlink_planted_by_another_user_is_refused(lab, make_token, run_playbook, tmp_path,
                                                           other_user, shared_tmp):  # noqa: F811
    key = ec_key()
    _token, keks, connected, _offline = setup(lab, make_token, tmp_path, [key])
    bundle = shared_tmp / "bundle"
    bundle.mkdir()
    os.chmod(str(bundle), 0o777)  # a bundle folder others may write into (a shared medium, a careless mkdir)
    theirs = shared_tmp / "theirs"
    as_user(other_user, "mkdir", "-m", "0755", str(theirs))
    as_user(other_user, "ln", "-s", str(theirs), str(bundle / "keks"))

    run = run_playbook(STAGED[0], connected, extra_env=lab.azure_env, extra_args=stage_args(bundle))
    assert run.rc != 0, "stage 1 wrote through another user's symlink:\n%s" % run
    assert "byok_bundle_dir: %s is mode 0777" % bundle in run.output, str(run)
    assert stat.S_IMODE(theirs.stat().st_mode) == 0o755, "root changed the mode of another user's directory"
    assert list(theirs.iterdir()) == [], "root wrote into another user's directory: %s" % list(theirs.iterdir())
    assert keks["premium"] not in lab.keys("premium"), "a KEK was made before the bundle was checked"

    # a bundle of this user, only it may write, with a symlink in it (planted earlier): refused as well
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    (mine / "keks").symlink_to(theirs, target_is_directory=True)
    run = run_playbook(STAGED[0], connected, extra_env=lab.azure_env, extra_args=stage_args(mine))
    assert run.rc != 0 and "%s/keks is a symbolic link" % mine in run.output, str(run)
    assert stat.S_IMODE(theirs.stat().st_mode) == 0o755 and list(theirs.iterdir()) == []


def _transfer_inventory(lab, make_token, tmp_path, manifest_dir):
    key = ec_key()
    token, keks, connected, _offline = setup(lab, make_token, tmp_path, [key])
    data = json.loads(connected.read_text())
    data["all"]["vars"]["byok_manifest_dir"] = str(manifest_dir)
    connected.write_text(json.dumps(data))
    return key, token, keks, connected


def test_a_manifest_folder_of_another_user_is_refused_before_keys_move(lab, make_token, run_playbook, tmp_path,
                                                                       other_user, shared_tmp):  # noqa: F811
    theirs = shared_tmp / "manifests"
    as_user(other_user, "mkdir", "-m", "0755", str(theirs))
    key, token, keks, connected = _transfer_inventory(lab, make_token, tmp_path, theirs)

    run = run_playbook(TRANSFER_PLAYBOOK, connected, extra_env=lab.azure_env)
    assert run.rc != 0, "the run wrote its audit records into another user's folder:\n%s" % run
    assert "byok_manifest_dir: %s is owned by uid" % theirs in run.output, str(run)
    assert list(theirs.iterdir()) == []
    assert key["name"] not in lab.keys("premium") and keks["premium"] not in lab.keys("premium"), "keys moved first"
    assert token.objects() == [], "an HSM key was made before the manifest folder was checked"


def test_a_symlinked_manifest_parent_is_refused_before_keys_move(lab, make_token, run_playbook, tmp_path,
                                                                 other_user, shared_tmp):  # noqa: F811
    home = shared_tmp / "home-of-someone"
    as_user(other_user, "mkdir", "-m", "0755", str(home))
    (tmp_path / "audit").symlink_to(home, target_is_directory=True)
    key, token, keks, connected = _transfer_inventory(lab, make_token, tmp_path, tmp_path / "audit" / "manifests")

    run = run_playbook(TRANSFER_PLAYBOOK, connected, extra_env=lab.azure_env)
    assert run.rc != 0, "the run followed a symlink into another user's folder:\n%s" % run
    assert "(its component %s/audit) is a symbolic link" % tmp_path in run.output, str(run)
    assert list(home.iterdir()) == [], "root created %s in another user's folder" % list(home.iterdir())
    assert key["name"] not in lab.keys("premium") and token.objects() == [], "keys moved first"


def test_stage2_never_vouches_for_a_byok_it_finds_in_the_bundle(lab, make_token, run_playbook, tmp_path):
    key = ec_key()
    _token, _keks, connected, offline = setup(lab, make_token, tmp_path, [key])
    bundle = tmp_path / "bundle"
    stages_1_2(lab, run_playbook, connected, offline, bundle)

    # between two runs of stage 2, someone plants a wrap of their own key, with a sidecar that claims the HSM key
    byok = bundle / "wrapped" / "hsm1" / "premium" / ("%s.byok" % key["name"])
    kid = json.loads((bundle / "keks" / "premium.json").read_text())["kid"]
    forged, _fingerprint = forge_byok((bundle / "keks" / "premium.pem").read_bytes(), kid)
    byok.write_bytes(forged)

    again = run_playbook(STAGED[1], offline, extra_env=offline_env(lab),
                         extra_args=stage_args(bundle, byok_expected_kek_fingerprints=kek_fingerprints(bundle, ["premium"])))
    assert again.rc == 0, str(again)
    assert byok.read_bytes() != forged, "stage 2 kept (and would vouch for) a .byok it did not make"
    seal = json.loads((bundle / "wrapped" / "hsm1" / "seal.json").read_text())
    assert [r["byok_sha256"] for r in seal["keys"]] == [hashlib.sha256(byok.read_bytes()).hexdigest()]


def test_stage3_imports_nothing_under_a_kek_kid_the_vault_does_not_confirm(lab, make_token, run_playbook, tmp_path):
    """Only the fingerprint of the KEK's public key is carried out of band to stage 2, not its kid: a kid swapped in
    keks/VAULT.json before stage 2 is sealed as it is. Stage 3 asks the vault for that kid and imports nothing under a
    version that is not the KEK stage 2 verified (here an ordinary EC key of the vault), saying why for the key."""
    key = ec_key()
    _token, _keks, connected, offline = setup(lab, make_token, tmp_path, [key])
    bundle = tmp_path / "bundle"
    fetch = run_playbook(STAGED[0], connected, extra_env=lab.azure_env, extra_args=stage_args(bundle))
    assert fetch.rc == 0, str(fetch)
    other = unique("ag-not-a-kek")
    decoy = lab.key_client().create_ec_key(other, curve="P-256")
    meta = json.loads((bundle / "keks" / "premium.json").read_text())
    (bundle / "keks" / "premium.json").write_text(json.dumps(dict(meta, kid=decoy.id)))
    wrap = run_playbook(STAGED[1], offline, extra_env=offline_env(lab),
                        extra_args=stage_args(bundle, byok_expected_kek_fingerprints=kek_fingerprints(bundle, ["premium"])))
    assert wrap.rc == 0, str(wrap)  # offline, the kid cannot be checked: the seal vouches for what stage 2 was given
    imported = run_playbook(STAGED[2], connected, extra_env=lab.azure_env,
                            extra_args=stage_args(bundle, byok_expected_bundle_digests=bundle_digests(wrap)))
    assert imported.rc != 0, str(imported)
    assert "is not one the vault confirms as the KEK whose fingerprint stage 2 verified out of band" in imported.output, str(imported)
    assert "that version is not a KEK" in imported.output, str(imported)
    assert key["name"] not in lab.keys("premium"), "a key was imported under a KEK the vault does not confirm"
