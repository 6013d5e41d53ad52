#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: hsm_key_remove
short_description: Remove keys from the token, each only when it is the key that was listed (its fingerprint or KCV)
version_added: 2.0.0
description:
  - Destroys each given key (its private or secret key object and its public half) on the token. A key is looked up by
    label (and CKA_ID) and removed only when its fingerprint (RSA, EC) or KCV (AES) is the one given, that is the key
    M(byok.keyvault.hsm_key_info) listed; a key of unknown identity is never removed.
  - This module does not decide which keys are unused. The playbook C(byok.keyvault.hsm_keys) with C(byok_cleanup=true)
    gives it only the keys that neither the inventory names nor any vault holds (docs/hsm-keys.md).
  - Removal cannot be undone. Data encrypted or signed under a removed key can no longer be decrypted or verified with the
    HSM.
extends_documentation_fragment:
  - byok.keyvault.pkcs11
  - byok.keyvault.attributes
  - byok.keyvault.attributes.no_diff
attributes:
  check_mode:
    details:
      - In check mode nothing is removed; each key that would be removed is reported as V(remove).
options:
  keys:
    description:
      - The keys to remove, with one login.
    type: list
    elements: dict
    required: true
    suboptions:
      label:
        description: CKA_LABEL of the key.
        type: str
        required: true
      id:
        description: CKA_ID of the key in hex, to choose among keys with one label.
        type: str
      fingerprint:
        description: Fingerprint (RSA, EC) or KCV (AES) of the key, as M(byok.keyvault.hsm_key_info) listed it.
        type: str
        required: true
seealso:
  - module: byok.keyvault.hsm_key_info
'''

EXAMPLES = r'''
- name: Remove a key left behind by an abandoned run
  byok.keyvault.hsm_key_remove:
    pkcs11_module: /usr/lib/softhsm/libsofthsm2.so
    token_label: byok-lab
    user_pin: "{{ vault_softhsm_pin }}"
    keys:
      - label: payments-signing-test
        id: 0a1b2c
        fingerprint: 04828a6d138a537e111d08a02f2af1ced02ea40664b07223f016a938b7fa6d60
'''

RETURN = r'''
keys:
  description: One entry per item of O(keys).
  returned: always
  type: list
  elements: dict
  contains:
    label:
      description: Label of the key.
      type: str
    action:
      description: V(remove) (removed now, or would be in check mode) or V(absent) (no such key on the token).
      type: str
    changed:
      description: Whether the key was (or would be, in check mode) removed.
      type: bool
    fingerprint:
      description: Fingerprint or KCV of the key.
      type: str
token:
  description: Facts about the token used (vendor, manufacturer, model, serial, label, firmware and library versions).
  returned: always
  type: dict
'''

from ansible_collections.byok.keyvault.plugins.module_utils.hsm_backend import key_remove_request, listed_keys_argument_spec
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_token import HsmModule


def main():
    HsmModule.run(key_remove_request, listed_keys_argument_spec(), supports_check_mode=True)


if __name__ == '__main__':
    main()
