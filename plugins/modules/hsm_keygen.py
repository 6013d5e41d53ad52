#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: hsm_keygen
short_description: Generate a BYOK target key inside an HSM over PKCS#11
version_added: 1.0.0
description:
  - Makes sure the token holds a key with the given label, of a type, size or curve Azure Key Vault accepts,
    generated inside the HSM as a token object that is private, sensitive and extractable (so that the HSM itself
    may wrap it for the transfer; its clear value never leaves the HSM).
  - A key that exists with the label and matches is left alone. One that differs follows O(regenerate). A key sealed
    after its transfer by M(byok.keyvault.hsm_seal) (no longer extractable, but extractable once) is not a difference;
    it is kept, and reported with C(sealed) true.
  - Before a key is generated, the module checks that the token lists the mechanism that generates its type, and proves
    by test wraps of session keys (known-answer tests, checked in software) that the token can wrap a key of that type
    the way Azure unwraps it (see M(byok.keyvault.byok_wrap)); otherwise it refuses and generates nothing, so no key is
    made that could never be transferred.
  - Give one key with O(label) or several with O(keys); several keys share one login.
extends_documentation_fragment:
  - byok.keyvault.pkcs11
  - byok.keyvault.attributes
  - byok.keyvault.attributes.full
options:
  label:
    description:
      - CKA_LABEL of the target key. Mutually exclusive with O(keys).
    type: str
  id:
    description:
      - CKA_ID of the target key in hex. A random 16-byte id is used for new keys when not given.
    type: str
  key_type:
    description:
      - Type of the target key. V(oct) (AES) keys can only go to Azure Managed HSM.
    type: str
    default: RSA
    choices: [RSA, EC, oct]
  key_size:
    description:
      - Size in bits. RSA 2048, 3072 (default) or 4096; oct 128, 192 or 256 (default). Not used for EC keys.
    type: int
  curve:
    description:
      - Curve of an EC key (default V(P-256)).
    type: str
    choices: [P-256, P-384, P-521, P-256K]
  keys:
    description:
      - Several target keys at once, each a dictionary with C(label) and optionally C(id), C(key_type), C(key_size), C(curve).
    type: list
    elements: dict
  regenerate:
    description:
      - What to do when a key with the label exists but differs (type, size, curve, not extractable, not sensitive,
        a session object).
      - V(fail) (default) stops and names the difference; HSM keys have no backup, so nothing is destroyed by default.
      - V(never) keeps the existing key and warns. V(full_idempotence) destroys it and generates a new one.
        V(always) replaces the key on every run.
    type: str
    default: fail
    choices: [never, fail, full_idempotence, always]
  wrap_method:
    version_added: 2.0.0
    description:
      - The wrap path the key will take (as O(byok.keyvault.byok_wrap#module:wrap_method)); a key is generated only when
        that path was proved on this token for its type. V(auto) accepts either path.
    type: str
    default: auto
    choices: [auto, combined, two_step]
seealso:
  - module: byok.keyvault.byok_wrap
  - module: byok.keyvault.keyvault_import
'''

EXAMPLES = r'''
- name: Generate an RSA-3072 target key on a Luna partition
  byok.keyvault.hsm_keygen:
    pkcs11_module: /usr/safenet/lunaclient/lib/libCryptoki2_64.so
    token_label: byok-partition
    user_pin: "{{ vault_luna_co_pin }}"
    label: payments-signing
    key_type: RSA
    key_size: 3072

- name: Generate several keys with one login (PKCS11_* environment variables select the token; the PIN stays an option)
  byok.keyvault.hsm_keygen:
    keys:
      - label: app-ec
        key_type: EC
        curve: P-384
      - label: app-aes
        key_type: oct
        key_size: 256
    user_pin: "{{ vault_pin }}"
  environment:  # never a secret here: the task keyword puts each value on the command line that starts the module
    PKCS11_MODULE: /usr/lib/softhsm/libsofthsm2.so
    PKCS11_TOKEN_LABEL: byok
'''

RETURN = r'''
label:
  description: Label of the key (single-key form).
  returned: when O(label) is given
  type: str
  sample: payments-signing
key_type:
  description: Type of the key (single-key form).
  returned: when O(label) is given
  type: str
  sample: RSA
key_size:
  description: Size of the key in bits (single-key form).
  returned: when O(label) is given
  type: int
  sample: 3072
curve:
  description: Curve of an EC key (single-key form).
  returned: when O(label) is given and the key is an EC key
  type: str
  sample: P-256
fingerprint:
  description:
    - Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo of the key's public part; for oct keys the key check value
      (SHA-256 of AES-ECB of a zero block, 64 hex digits, computed in the HSM; not the 3-byte KCV vendor tools print).
      Null in check mode for a key not generated yet.
  returned: when O(label) is given
  type: str
  sample: 04828a6d138a537e111d08a02f2af1ced02ea40664b07223f016a938b7fa6d60
public_key_pem:
  description: Public key (PEM SubjectPublicKeyInfo) of an RSA or EC key.
  returned: when O(label) is given and the key has a public part
  type: str
action:
  description: What was done, V(keep), V(generate) or V(replace) (single-key form).
  returned: when O(label) is given
  type: str
  sample: generate
wrap_mechanism:
  version_added: 2.0.0
  description: The wrap path proved on this token for the key's type before it was generated (single-key form; only for
    a key generated or to be generated).
  returned: when O(label) is given and a key is generated
  type: str
  sample: CKM_AES_KEY_WRAP_KWP (0x210B) + CKM_RSA_PKCS_OAEP
keys:
  description: One entry per item of O(keys), each with label, action, changed, key_type, key_size, curve, fingerprint,
    public_key_pem and sealed (true for a key sealed after its transfer by M(byok.keyvault.hsm_seal); it is kept as it is).
  returned: when O(keys) is given
  type: list
  elements: dict
token:
  description: Facts about the token used (vendor, manufacturer, model, serial, label, firmware and library versions).
  returned: always
  type: dict
'''

from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import vendors
from ansible_collections.byok.keyvault.plugins.module_utils.hsm_backend import REGENERATE_CHOICES, keygen_request
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_token import HsmModule


def main():
    HsmModule.run(
        keygen_request,
        dict(
            label=dict(type='str'),
            id=dict(type='str'),
            key_type=dict(type='str', default='RSA', choices=list(ki.KEY_TYPES)),
            key_size=dict(type='int'),
            curve=dict(type='str', choices=list(ki.EC_CURVES)),
            keys=dict(type='list', elements='dict', no_log=False),
            regenerate=dict(type='str', default='fail', choices=list(REGENERATE_CHOICES)),
            wrap_method=dict(type='str', default='auto', choices=list(vendors.WRAP_METHODS)),
        ),
        mutually_exclusive=[('label', 'keys')],
        required_one_of=[('label', 'keys')],
        supports_check_mode=True,
    )


if __name__ == '__main__':
    main()
