# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory contract's cases: a good inventory (two HSM hosts on one token, one premium vault) and the mistakes
made in it, each with the start of the one problem line the plan must report (host and variable path).

test_byok_plan_inventory_cases.py runs every case on the byok_plan action; tests/e2e/test_inventory_contract.py runs a
few of them, by id, through ansible-playbook against a SoftHSM2 token and a lab vault.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

SOFTHSM_LIB = '/usr/lib/softhsm/libsofthsm2.so'


def good_inventory(manifests, token_vars, vault_url, authority, ca_bundle, **fleet_vars):
    """The inventory every case starts from: hsm1 with the key contract-rsa, hsm2 with none, both with token_vars
    (byok_token_label, byok_user_pin, byok_hsm_environment); fleet_vars are added to all's vars."""
    key = {"name": "contract-rsa", "vault": "premium", "key_type": "RSA", "key_size": 2048, "key_ops": ["sign", "verify"]}
    return {"all": {
        "vars": dict({
            "ansible_connection": "local",
            "byok_controller": "localhost",
            "byok_manifest_dir": str(manifests),
            "byok_vaults": {"premium": {"url": vault_url, "type": "premium", "kek_size": 2048}},
            "byok_azure": {"auth_source": "env", "cloud_environment": authority, "ca_bundle": ca_bundle},
        }, **fleet_vars),
        "children": {
            "byok_hsm_hosts": {"vars": {"byok_hsm_vendor": "softhsm", "byok_pkcs11_module": SOFTHSM_LIB},
                               "hosts": {"hsm1": dict(token_vars, byok_keys=[key]), "hsm2": dict(token_vars, byok_keys=[])}},
        },
    }}


def hsm1(inv):
    return inv["all"]["children"]["byok_hsm_hosts"]["hosts"]["hsm1"]


def key0(inv):
    return hsm1(inv)["byok_keys"][0]


def fleet(inv):
    return inv["all"]["vars"]


def set_key(**fields):
    return lambda inv: key0(inv).update(fields)


def add_key(**fields):
    return lambda inv: hsm1(inv)["byok_keys"].append(dict({"vault": "premium"}, **fields))


def set_host(**fields):
    return lambda inv: hsm1(inv).update(fields)


def set_vault(**fields):
    return lambda inv: fleet(inv)["byok_vaults"]["premium"].update(fields)


def set_fleet(**fields):
    return lambda inv: fleet(inv).update(fields)


def second_host_key(name):
    def mutate(inv):
        inv["all"]["children"]["byok_hsm_hosts"]["hosts"]["hsm2"]["byok_keys"] = [{"name": name, "vault": "premium"}]
    return mutate


K = "hsm1: byok_keys[0] (contract-rsa)."
# (id, mutation, the start of the one problem line: host and variable path)
CASES = [
    ("typo-key_sise", set_key(key_sise=3072), K + "key_sise: unknown field; did you mean key_size?"),
    ("typo-keysize", set_key(keysize=3072), K + "keysize: unknown field; did you mean key_size?"),
    ("typo-kye_ops", set_key(kye_ops=["sign"]), K + "kye_ops: unknown field; did you mean key_ops?"),
    ("typo-lable", set_key(lable="x"), K + "lable: unknown field; did you mean label?"),
    ("typo-expire_on", set_key(expire_on="2030-01-01T00:00:00Z"), K + "expire_on: unknown field; did you mean expires_on?"),
    ("typo-host-variable", set_host(byok_kyes=[]), "hsm1: byok_kyes: unknown variable; did you mean byok_keys?"),
    ("typo-pin-variable", set_host(byok_user_pn="x"), "hsm1: byok_user_pn: unknown variable; did you mean byok_user_pin?"),
    ("key_ops-unknown", set_key(key_ops=["sign", "verfy"]), K + "key_ops[1]: 'verfy' is not one of"),
    ("key_ops-encrypt-on-EC", set_key(key_type="EC", key_size=None, curve="P-256", key_ops=["sign", "encrypt"]),
     K + "key_ops[1]: 'encrypt' is not allowed for EC keys; use sign, verify"),
    ("key_ops-import", set_key(key_ops=["sign", "import"]), K + "key_ops[1]: 'import' is not allowed for a BYOK target key"),
    ("key_ops-export", set_key(key_ops=["export"]), K + "key_ops[0]: 'export' is not allowed"),
    ("key_ops-twice", set_key(key_ops=["sign", "sign"]), K + "key_ops: lists sign twice"),
    ("key_ops-not-a-list", set_key(key_ops="sign"), K + "key_ops: 'sign' is a string, not a list; use a list like [sign, verify]"),
    ("tag-integer", set_key(tags={"cost": 5}), K + "tags.cost: tag value 5 is an integer, not a string"),
    ("tag-boolean", set_key(tags={"prod": True}), K + "tags.prod: tag value True is a boolean"),
    ("tag-too-long", set_key(tags={"note": "x" * 300}), K + "tags.note: tag value is 300 characters long"),
    ("tags-too-many", set_key(tags=dict(("t%d" % i, "v") for i in range(16))), K + "tags: 16 tags are more than Key Vault allows"),
    ("tag-reserved", set_key(tags={"byok-kcv": "abc"}), K + "tags.byok-kcv: tag name 'byok-kcv' is reserved"),
    ("enabled-maybe", set_key(enabled="maybe"), K + "enabled: 'maybe' is not a boolean"),
    ("force-string", set_key(force="sure"), K + "force: 'sure' is not a boolean"),
    ("date-not-iso", set_key(expires_on="next tuesday"), K + "expires_on: 'next tuesday' is not an ISO 8601 date-time"),
    ("date-expired", set_key(expires_on="2021-01-01T00:00:00Z"), K + "expires_on: '2021-01-01T00:00:00Z' is in the past"),
    ("date-order", set_key(not_before="2031-01-01T00:00:00Z", expires_on="2030-01-01T00:00:00Z"),
     K + "not_before: '2031-01-01T00:00:00Z' is not before expires_on"),
    ("name-twice", add_key(name="contract-rsa", key_type="RSA", key_size=2048, label="other"),
     "hsm1: byok_keys[1] (contract-rsa).name: 'contract-rsa' is listed twice for vault premium"),
    ("name-twice-other-case", add_key(name="Contract-RSA", label="other2"),
     "hsm1: byok_keys[1] (Contract-RSA).name: 'Contract-RSA' is listed twice for vault premium"),
    ("name-missing", add_key(key_type="EC"), "hsm1: byok_keys[1].name: is missing"),
    ("vault-missing", lambda inv: hsm1(inv)["byok_keys"].append({"name": "novault"}), "hsm1: byok_keys[1] (novault).vault: is missing"),
    ("name-invalid", set_key(name="bad_name"), "hsm1: byok_keys[0] (bad_name).name: 'bad_name' is not a valid Key Vault key name"),
    ("name-too-long", set_key(name="n" * 128), "is not a valid Key Vault key name"),
    ("key_size-words", set_key(key_size="3072 bits"), K + "key_size: '3072 bits' is not a whole number"),
    ("rsa-1024", set_key(key_size=1024), K + "key_size: RSA key_size 1024 is not accepted"),
    ("curve-unknown", set_key(key_type="EC", key_size=None, key_ops=["sign"], curve="P-192"), K + "curve: 'P-192' is not one of"),
    ("curve-on-rsa", set_key(curve="P-256"), K + "curve: curve is only for EC keys"),
    ("ec-size-mismatch", set_key(key_type="EC", key_size=384, curve="P-256", key_ops=["sign"]), K + "curve: key_size 384 does not match"),
    ("aes-into-premium", set_key(key_type="oct", key_size=256, key_ops=["encrypt"]),
     K + "key_type: oct (AES) keys can only be imported into Azure Managed HSM"),
    ("key_type-case", set_key(key_type="rsa"), K + "key_type: 'rsa' is not one of RSA, EC, oct; did you mean RSA?"),
    ("id-not-hex", set_key(id="zz"), K + "id: 'zz' is not hex"),
    ("label-two-specs", add_key(name="other-key", label="contract-rsa", key_type="EC", key_ops=["sign"]),
     "hsm1: byok_keys[1] (other-key).label: 'contract-rsa' is also the label of byok_keys[0]"),
    ("vault-unknown", set_key(vault="prod"), K + "vault: 'prod' is not a vault of byok_vaults"),
    ("keys-not-a-list", set_host(byok_keys={"name": "x"}), "hsm1: byok_keys: "),
    ("pin-octal-int", set_host(byok_user_pin=342391), "hsm1: byok_user_pin: the value (not shown: a secret) is an integer"),
    ("vendor-unknown", set_host(byok_hsm_vendor="thales"), "hsm1: byok_hsm_vendor: 'thales' is not one of"),
    ("vendor-case", set_host(byok_hsm_vendor="SoftHSM"),
     "hsm1: byok_hsm_vendor: 'SoftHSM' is not one of '' (empty), auto, luna, nshield, softhsm, generic; did you mean softhsm?"),
    ("regenerate-unknown", set_host(byok_regenerate="sometimes"), "hsm1: byok_regenerate: 'sometimes' is not one of"),
    ("wrap-method-unknown", set_host(byok_wrap_method="oaep"), "hsm1: byok_wrap_method: 'oaep' is not one of"),
    ("vault-url-http", set_vault(url="http://contoso.vault.azure.net"), "all HSM hosts: byok_vaults.premium.url: url 'http://"),
    ("vault-url-path", set_vault(url="https://contoso.vault.azure.net/keys/x"), "all HSM hosts: byok_vaults.premium.url: "),
    ("vault-field-typo", set_vault(uri="https://x.vault.azure.net"), "all HSM hosts: byok_vaults.premium.uri: unknown field; did you mean url?"),
    ("kek-size", set_vault(kek_size=1024), "all HSM hosts: byok_vaults.premium.kek_size: 1024 is not one of 2048, 3072, 4096"),
    ("kek-name", set_vault(kek_name="kek_1"), "all HSM hosts: byok_vaults.premium.kek_name: "),
    ("kek-expired", set_vault(kek_expires_on="2020-01-01T00:00:00Z"), "all HSM hosts: byok_vaults.premium.kek_expires_on: "),
    ("azure-field-typo", lambda inv: fleet(inv)["byok_azure"].update(clientid="x"),
     "all HSM hosts: byok_azure.clientid: unknown field; did you mean client_id?"),
    ("parallel-out-of-range", set_fleet(byok_import_parallel=64), "all HSM hosts: byok_import_parallel: 64 is out of range"),
    ("pacing-share-out-of-range", lambda inv: fleet(inv)["byok_azure"].update(pacing_share=80),
     "all HSM hosts: byok_azure.pacing_share: 80 is out of range; use more than 0 and at most 1"),
    ("key-named-like-the-default-kek", set_key(name="Byok-Kek"),
     "hsm1: byok_keys[0] (Byok-Kek).name: 'Byok-Kek' is a KEK name (byok_vaults.premium.kek_name,"),
    ("key-named-like-a-chosen-kek", lambda inv: (set_vault(kek_name="contract-kek")(inv), set_key(name="CONTRACT-KEK")(inv)),
     "hsm1: byok_keys[0] (CONTRACT-KEK).name: 'CONTRACT-KEK' is a KEK name (byok_vaults.premium.kek_name,"),
    ("same-vault-key-two-hosts", second_host_key("CONTRACT-rsa"), "hsm2: byok_keys[0] (CONTRACT-rsa).name: vault key 'CONTRACT-rsa'"),
]


def cases(*ids):
    """The CASES of these ids, in the table's order; an id the table lacks is an error."""
    unknown = set(ids) - set(case[0] for case in CASES)
    assert not unknown, "no such inventory contract case: %s" % sorted(unknown)
    return [case for case in CASES if case[0] in ids]
