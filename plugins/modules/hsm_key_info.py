#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: hsm_key_info
short_description: List the private and secret keys a token holds (label, CKA_ID, type, size or curve, fingerprint or KCV)
version_added: 2.0.0
description:
  - Lists every private and secret key object stored on the token (CKA_TOKEN true), with its label, CKA_ID, key type, size
    or curve and identity (fingerprint of the public key for RSA and EC, KCV for AES), the same identity
    M(byok.keyvault.keyvault_key_info) returns for a vault key. Public key objects are read only to pair them with their
    private key (same label and CKA_ID).
  - Nothing is changed on the token. The playbook C(byok.keyvault.hsm_keys) compares the list with the inventory and the
    vaults, and removes only on request the keys that neither names (docs/hsm-keys.md).
  - A key whose facts cannot be read (a type Azure does not take, an EC key without its public half) is listed with its
    label and the reason in RV(keys[].error).
extends_documentation_fragment:
  - byok.keyvault.pkcs11
  - byok.keyvault.attributes
  - byok.keyvault.attributes.info_module
options:
  labels:
    description:
      - Only the keys with these labels. All keys of the token when not given.
    type: list
    elements: str
seealso:
  - module: byok.keyvault.hsm_key_remove
  - module: byok.keyvault.keyvault_key_info
'''

EXAMPLES = r'''
- name: List the keys of the token
  byok.keyvault.hsm_key_info:
    pkcs11_module: /usr/lib/softhsm/libsofthsm2.so
    token_label: byok-lab
    user_pin: "{{ vault_softhsm_pin }}"
  register: token_keys
'''

RETURN = r'''
keys:
  description: One entry per private or secret key on the token, sorted by label.
  returned: always
  type: list
  elements: dict
  contains:
    label:
      description: CKA_LABEL of the key.
      type: str
    id:
      description: CKA_ID of the key in hex (null when it has none).
      type: str
    key_type:
      description: V(RSA), V(EC) or V(oct) (AES); the PKCS#11 type name for a key the collection cannot transfer.
      type: str
    key_size:
      description: Size in bits.
      type: int
    curve:
      description: Curve of an EC key (V(P-256), V(P-384), V(P-521)).
      type: str
    fingerprint:
      description: SPKI SHA-256 of the public key (RSA, EC) or the KCV (AES); null when unknown.
      type: str
    kcv:
      description: KCV of an AES key, computed inside the HSM; null when the key may not encrypt.
      type: str
    sealed:
      description: Whether the key was sealed after its transfer (see M(byok.keyvault.hsm_seal)).
      type: bool
    has_public_key:
      description: Whether a public key object pairs with it (RSA, EC).
      type: bool
    error:
      description: Why the key's facts could not be read; null when they could.
      type: str
token:
  description: Facts about the token used (vendor, manufacturer, model, serial, label, firmware and library versions).
  returned: always
  type: dict
'''

from ansible_collections.byok.keyvault.plugins.module_utils.hsm_backend import key_info_request
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_token import HsmModule


def main():
    HsmModule.run(key_info_request, dict(labels=dict(type='list', elements='str')), supports_check_mode=True)


if __name__ == '__main__':
    main()
