#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: keyvault_key_info
short_description: Read what a vault holds for some key names (current version, fingerprint, version count)
version_added: 1.0.0
description:
  - Returns, for each name, whether the vault has the key and, if so, its current version, fingerprint (SPKI SHA-256 of
    the public part) and number of versions. Used by the transfer role to decide which HSM keys still need to move.
extends_documentation_fragment:
  - byok.keyvault.azure
  - byok.keyvault.attributes
  - byok.keyvault.attributes.info_module
options:
  names:
    description:
      - Key names to look up.
    type: list
    elements: str
    required: true
  versions:
    description:
      - Also count the versions of each key (one more request per key).
    type: bool
    default: true
  parallel:
    description:
      - How many keys are looked up at once (1-16); each look-up is one or two requests.
    type: int
    default: 8
'''

EXAMPLES = r'''
- name: What does the vault hold?
  byok.keyvault.keyvault_key_info:
    vault_url: https://contoso-prod.vault.azure.net
    names: [payments-signing, app-ec]
  register: info
'''

RETURN = r'''
keys:
  description: One entry per name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Key name.
      type: str
    exists:
      description: Whether the vault has a current version of the key.
      type: bool
    kid:
      description: Versioned id of the current version.
      type: str
    version:
      description: Current version.
      type: str
    fingerprint:
      description: SPKI SHA-256 of the current version's public key (null for oct keys).
      type: str
    kty:
      description: Key type, for example V(RSA-HSM).
      type: str
    key_ops:
      description: Allowed operations.
      type: list
      elements: str
    enabled:
      description: Whether the current version is enabled.
      type: bool
    tags:
      description: Tags of the current version.
      type: dict
    version_count:
      description: Number of versions (when O(versions) is true).
      type: int
    kcv:
      description:
        - Key check value of an oct-HSM key computed by the vault (AES-CBC with a zero IV over a zero block), or null when
          the key or the identity may not encrypt.
      type: str
'''

from ansible_collections.byok.keyvault.plugins.module_utils import byok_file
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils.keyvault import KeyVaultModule, key_summary


def vault_kcv(vault, key):
    """KCV of an oct-HSM key computed by the vault; its size is not in the JWK, so each AES size is tried."""
    for bits in reversed(ki.OCT_SIZES):
        kcv = vault.kcv(key, bits)
        if kcv is not None:
            return kcv
    return None


def look_up(vault, name, versions):
    key = vault.get(name)
    entry = {'name': name, 'exists': key is not None}
    if key is not None:
        entry.update(key_summary(key))
        if entry['kty'] == 'oct-HSM':
            entry['kcv'] = vault_kcv(vault, key)
    if versions:
        entry['version_count'] = len(vault.versions(name)) if key is not None else 0
    return entry


def main():
    kv = KeyVaultModule(
        argument_spec=dict(
            names=dict(type='list', elements='str', required=True),
            versions=dict(type='bool', default=True),
            parallel=dict(type='int', default=8),
        ),
        supports_check_mode=True,
    )
    names, versions = kv.params['names'], kv.params['versions']
    for name in names:
        kv.guard(byok_file.validate_key_name, name, option='names')
    vault = kv.vault
    keys = kv.run_keys_parallel(names, lambda name: look_up(vault, name, versions), 'name', 'look-up')
    failed = [k for k in keys if k.get('failed')]
    if failed:
        # a vault that cannot be read fails as a whole (authentication, permission, network): one message, once
        kv.fail(failed[0]['msg'], keys=keys)
    kv.module.exit_json(changed=False, keys=keys)


if __name__ == '__main__':
    main()
