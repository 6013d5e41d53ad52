#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: byok_wrap
short_description: Wrap an HSM key under a Key Vault KEK and write the .byok file
version_added: 1.0.0
description:
  - Wraps the target key inside the HSM under the key exchange key (KEK) of the target vault, as Azure's BYOK
    specification requires - CKM_RSA_AES_KEY_WRAP in one step, or the equivalent two steps, an RFC 5649 AES key wrap
    with an ephemeral AES-256 key and CKM_RSA_PKCS_OAEP (SHA-1) of that AES key - and writes the .byok
    JSON file (mode 0600, written atomically).
  - No mechanism is trusted by its name or number. Before the first wrap of a run, test wraps of session keys (a secret
    value and a private key, made and destroyed in the HSM) with each candidate - CKM_RSA_AES_KEY_WRAP, and for the
    AES step CKM_AES_KEY_WRAP_KWP (0x210B), a vendor's own code such as Luna's CKM_AES_KWP, then CKM_AES_KEY_WRAP_PAD
    (0x210A) - are unwrapped in software as Azure unwraps them (RSA-OAEP with SHA-1, RFC 5649); only a mechanism whose
    output matched is used (RV(wrap_mechanism)), and a token without one is refused, naming what was tried.
  - The KEK public key and the ephemeral AES key exist only as session objects and are destroyed afterwards.
  - Beside each .byok file a metadata file C(<dest>.json) records which key was wrapped under which KEK (fingerprints,
    no key material); it makes the module idempotent and lets M(byok.keyvault.keyvault_import) derive the key type.
extends_documentation_fragment:
  - byok.keyvault.pkcs11
  - byok.keyvault.attributes
  - byok.keyvault.attributes.no_diff
attributes:
  idempotent:
    details:
      - An existing O(dest) that wraps the same HSM key under the same KEK is kept.
options:
  label:
    description:
      - CKA_LABEL of the key to wrap. Mutually exclusive with O(keys) and O(keks).
    type: str
  id:
    description:
      - CKA_ID (hex) of the key, when several keys share the label.
    type: str
  dest:
    description:
      - Path of the .byok file to write.
      - Without it, nothing is written and the .byok is returned as base64 in RV(byok_content) (for example to hand it
        to M(byok.keyvault.keyvault_import) on the controller without file copies); the module then always wraps afresh.
    type: path
  keys:
    description:
      - Several keys at once, each a dictionary with C(label) and optionally C(dest), C(id) and C(kek_kid). All share one
        login.
      - An item's C(kek_kid) wraps it under that KEK of O(keks) (keys for several vaults in one run); the others use the
        module's O(kek_kid).
    type: list
    elements: dict
  keks:
    version_added: 2.0.0
    description:
      - With O(keys), the KEKs the items name by their C(kek_kid), each with C(kek_kid), C(kek_pem) or C(kek_file), and
        C(kek_fingerprint), as the module options of those names.
    type: list
    elements: dict
    suboptions:
      kek_kid:
        description: Versioned key identifier of the KEK, as O(kek_kid).
        type: str
        required: true
      kek_pem:
        description: The KEK public key as PEM text, as O(kek_pem).
        type: str
      kek_file:
        description: PEM file with the KEK public key, as O(kek_file).
        type: path
      kek_fingerprint:
        description: Fingerprint the KEK public key must have, as O(kek_fingerprint).
        type: str
  kek_file:
    description:
      - PEM file with the KEK public key, as written by M(byok.keyvault.byok_kek_fetch) with C(dest).
      - One of O(kek_file) and O(kek_pem) is required, unless every item of O(keys) names a KEK of O(keks).
    type: path
  kek_pem:
    description:
      - The KEK public key as PEM text, as M(byok.keyvault.byok_kek_fetch) returns it in C(public_key_pem).
    type: str
  kek_kid:
    description:
      - Versioned key identifier of the KEK (C(https://VAULT/keys/NAME/VERSION)), as returned by M(byok.keyvault.byok_kek_fetch).
      - Required unless every item of O(keys) names a KEK of O(keks).
    type: str
  kek_fingerprint:
    description:
      - SHA-256 fingerprint (lowercase hex of the DER SubjectPublicKeyInfo) the KEK public key must have, as
        M(byok.keyvault.byok_kek_fetch) returned it and as checked out of band. A KEK file that differs is refused.
    type: str
  wrap_method:
    description:
      - V(auto) uses CKM_RSA_AES_KEY_WRAP when its test wrap proved it and the two-step wrap otherwise.
      - V(combined) and V(two_step) force one and fail when its test wraps did not prove it on this token.
    type: str
    default: auto
    choices: [auto, combined, two_step]
  force:
    description:
      - Wrap again even when O(dest) already wraps this key under this KEK.
    type: bool
    default: false
notes:
  - SoftHSM before 2.7 pads a private key's PKCS#8 encoding with zero bytes to a multiple of 8 before wrapping; the
    module warns when the library is affected. See the collection's docs on this behaviour.
seealso:
  - module: byok.keyvault.byok_kek_fetch
  - module: byok.keyvault.keyvault_import
'''

EXAMPLES = r'''
- name: Wrap the key under the vault's KEK
  byok.keyvault.byok_wrap:
    pkcs11_module: /usr/safenet/lunaclient/lib/libCryptoki2_64.so
    token_label: byok-partition
    user_pin: "{{ vault_luna_co_pin }}"
    label: payments-signing
    kek_file: /var/lib/byok/kek-prod.pem
    kek_kid: "{{ kek.kid }}"
    dest: /var/lib/byok/payments-signing.byok

- name: Wrap several keys with one login
  byok.keyvault.byok_wrap:
    kek_file: /var/lib/byok/kek-prod.pem
    kek_kid: "{{ kek.kid }}"
    keys:
      - label: app-ec
        dest: /var/lib/byok/app-ec.byok
      - label: app-rsa
        dest: /var/lib/byok/app-rsa.byok

- name: Wrap keys for two vaults with one login, each under its vault's KEK
  byok.keyvault.byok_wrap:
    keks:
      - {kek_kid: "{{ kek_prod.kid }}", kek_pem: "{{ kek_prod.public_key_pem }}", kek_fingerprint: "{{ kek_prod.fingerprint }}"}
      - {kek_kid: "{{ kek_dr.kid }}", kek_pem: "{{ kek_dr.public_key_pem }}", kek_fingerprint: "{{ kek_dr.fingerprint }}"}
    keys:
      - {label: app-ec, kek_kid: "{{ kek_prod.kid }}"}
      - {label: app-ec, kek_kid: "{{ kek_dr.kid }}"}
  register: wrapped
'''

RETURN = r'''
dest:
  description: Path of the .byok file (single-key form).
  returned: when O(label) is given
  type: str
kek_kid:
  description: Versioned KEK id written into the file's header (each item of RV(keys) has its own).
  returned: when O(kek_kid) is given
  type: str
fingerprint:
  description: Fingerprint (SPKI SHA-256) of the wrapped key, or its KCV for oct keys (single-key form).
  returned: when O(label) is given
  type: str
wrap_method:
  description: Wrap path used, V(combined) or V(two_step) (single-key form).
  returned: when O(label) is given
  type: str
  sample: two_step
wrap_mechanism:
  version_added: 2.0.0
  description: The mechanisms of that path, as their test wraps proved them on this token (single-key form); for a kept
    .byok, what its metadata file records.
  returned: when O(label) is given
  type: str
  sample: CKM_AES_KEY_WRAP_KWP (0x210B) + CKM_RSA_PKCS_OAEP
key_type:
  description: Type of the wrapped key, V(RSA), V(EC) or V(oct) (single-key form).
  returned: when O(label) is given
  type: str
key_size:
  description: Size of the wrapped key in bits (single-key form).
  returned: when O(label) is given
  type: int
curve:
  description: Curve of an EC key (single-key form).
  returned: when O(label) is given
  type: str
byok_content:
  description: The .byok file as base64, when no O(dest) is given (wrapped under the KEK; no clear key material).
  returned: when O(label) is given without O(dest), outside check mode
  type: str
keys:
  description: One entry per item of O(keys) with label, dest, changed, kek_kid, fingerprint, wrap_method, wrap_mechanism, key_type,
    key_size, curve (and byok_content for an item without dest).
  returned: when O(keys) is given
  type: list
  elements: dict
token:
  description: Facts about the token used.
  returned: always
  type: dict
'''

from ansible_collections.byok.keyvault.plugins.module_utils import vendors
from ansible_collections.byok.keyvault.plugins.module_utils.hsm_backend import wrap_request
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_token import HsmModule


def main():
    HsmModule.run(
        wrap_request,
        dict(
            label=dict(type='str'),
            id=dict(type='str'),
            dest=dict(type='path'),
            keys=dict(type='list', elements='dict', no_log=False),
            keks=dict(type='list', elements='dict', no_log=False, options=dict(
                kek_kid=dict(type='str', required=True), kek_pem=dict(type='str'), kek_file=dict(type='path'),
                kek_fingerprint=dict(type='str'))),
            kek_file=dict(type='path'),
            kek_pem=dict(type='str'),
            kek_kid=dict(type='str'),
            kek_fingerprint=dict(type='str'),
            wrap_method=dict(type='str', default='auto', choices=list(vendors.WRAP_METHODS)),
            force=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('label', 'keys'), ('kek_file', 'kek_pem'), ('label', 'keks')],
        required_one_of=[('label', 'keys'), ('kek_kid', 'keks')],
        required_by={'label': 'kek_kid'},
        supports_check_mode=True,
    )


if __name__ == '__main__':
    main()
