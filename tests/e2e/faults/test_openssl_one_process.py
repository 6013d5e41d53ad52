# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The OpenSSL error-queue pitfall: SoftHSM's C_Initialize leaves an error on OpenSSL's per-thread queue, and the next
HTTPS read on an already open connection fails AFTER the server got the request; a resent import PUT is a second key
version. Here ONE Python process (one thread) opens a vault connection with the collection's keyvault.Vault, then
loads SoftHSM through pkcs11_token.HsmToken (open, generate, wrap), then imports the .byok over the same connection:
exactly one version must result, and nothing may fail."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

from .conftest import PYTHON, SOFTHSM_LIB, unique

SCRIPT = textwrap.dedent(r'''
    import json, os, sys
    from ansible_collections.byok.keyvault.plugins.module_utils import byok_file
    from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
    from ansible_collections.byok.keyvault.plugins.module_utils.vault_client import Vault, key_fingerprint
    from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_token import HsmToken

    a = json.loads(sys.argv[1])
    vault = Vault({"vault_url": a["vault_url"], "vault_type": "premium", "auth_source": "env", "client_id": None,
                   "secret": None, "tenant": None, "profile": None, "cloud_environment": a["authority"],
                   "ca_bundle": a["ca"]})
    # 1. TLS first: the connection to the vault is open (keep-alive) before the PKCS#11 library is loaded
    kek = vault.get(a["kek"]) or vault.create_kek(a["kek"], 2048)
    before = [p.version for p in vault.versions(a["name"])]
    kek_public = ki.public_key_from_jwk({"kty": "RSA", "n": kek.key.n, "e": kek.key.e})
    # 2. PKCS#11 in the same process and thread: load SoftHSM, log in, generate, wrap
    token = HsmToken(a["module"], token_label=a["token_label"], vendor="softhsm").open(a["pin"])
    with token:
        key = token.generate({"key_type": "EC", "curve": "P-256", "key_size": 256}, a["name"])
        data = byok_file.build(kek.id, token.wrap(key, kek_public, token.wrap_path(key.key_type, "two_step")), token.generator("one-process test"))
        fingerprint = key.fingerprint
    # 3. TLS again, over the connection opened in step 1
    imported, attempts = vault.import_once(a["name"], {"kty": "EC-HSM", "crv": "P-256", "key_ops": ["sign", "verify"]},
                                           data, lambda k: key_fingerprint(k) == fingerprint)
    print(json.dumps({"before": before, "version": imported.properties.version, "attempts": attempts,
                      "fingerprint": fingerprint, "vault_fingerprint": key_fingerprint(imported)}))
''')


def test_pkcs11_and_keyvault_in_one_process_import_once(fl_lab, fl_make_token, fl_collections, fl_work):
    token = fl_make_token()
    name = unique("f1proc")
    env = dict(fl_work.env, **fl_lab.azure_env, **token.env)
    env["PYTHONPATH"] = fl_collections
    env.pop("REQUESTS_CA_BUNDLE", None)
    args = {"vault_url": fl_lab.vault_url(), "authority": fl_lab.env["LAB_AUTHORITY"], "ca": fl_lab.env["LAB_CA"],
            "kek": unique("fkek"), "name": name, "module": SOFTHSM_LIB, "token_label": token.label, "pin": token.pin}
    script = fl_work.path / "one_process.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([PYTHON, str(script), json.dumps(args)], env=env, cwd=str(fl_work.path), capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, "one-process transfer failed:\n%s%s" % (proc.stdout, proc.stderr[-4000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    versions = fl_lab.versions(name)
    assert len(versions) == 1, "one import in a process that loaded PKCS#11 made %d versions: %s (%s)" % (
        len(versions), versions, out)
    assert out["before"] == [] and out["version"] == versions[0]["version"]
    assert out["fingerprint"] == out["vault_fingerprint"]
    puts = [line for line in (fl_lab.state_dir / "server.log").read_text().splitlines() if "PUT /keys/%s " % name in line]
    assert len(puts) == 1, "the import PUT reached the vault %d times: %s" % (len(puts), puts)
    assert os.path.exists(SOFTHSM_LIB)
