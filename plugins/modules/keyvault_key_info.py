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
  vault_url:
    description:
      - URI of the Key Vault Premium vault (C(https://NAME.vault.azure.net)) or Managed HSM
        (C(https://NAME.managedhsm.azure.net)).
      - Required unless O(vaults) is given.
    type: str
    required: false
  names:
    description:
      - Key names to look up in O(vault_url). Required with O(vault_url).
    type: list
    elements: str
  vaults:
    version_added: 2.0.0
    description:
      - Several vaults at once, read at the same time (each with up to O(parallel) look-ups in flight and its own pacing);
        instead of O(vault_url), O(vault_type) and O(names). One credential serves them all; at most five Key Vault
        vaults are read at once (Azure's subscription-wide limit is five times a vault's).
      - A vault that cannot be read is reported in its entry of RV(vaults) (and the module fails naming it); the others
        are still read. A vault listed twice fails the module before any request.
    type: list
    elements: dict
    suboptions:
      name:
        description: A name for the vault, returned in its entry of RV(vaults) (the transfer role gives its C(byok_vaults) key).
        type: str
      vault_url:
        description: URI of the vault, as O(vault_url).
        type: str
        required: true
      vault_type:
        description: Kind of vault, as O(vault_type).
        type: str
        default: auto
        choices: [auto, premium, managed_hsm]
      names:
        description: Key names to look up in this vault.
        type: list
        elements: str
        required: true
  versions:
    description:
      - Also count the versions of each key (one more request per key).
    type: bool
    default: true
  tagged:
    version_added: 2.0.0
    description:
      - Also list each vault's other keys that carry the collection's identity tag (C(byok-fingerprint), C(byok-kcv)),
        with the identity the tag records (RV(vaults[].tagged), RV(tagged)). Needs the permission to list keys.
      - The playbook C(byok.keyvault.hsm_keys) uses it so that an HSM key a vault holds under a name the inventory no
        longer gives is never taken as unused.
    type: bool
    default: false
  parallel:
    description:
      - How many keys are looked up at once in each vault (1-16); each look-up is one or two requests.
    type: int
    default: 8
'''

EXAMPLES = r'''
- name: What does the vault hold?
  byok.keyvault.keyvault_key_info:
    vault_url: https://contoso-prod.vault.azure.net
    names: [payments-signing, app-ec]
  register: info

- name: Read three vaults at the same time
  byok.keyvault.keyvault_key_info:
    vaults:
      - {name: prod, vault_url: "https://contoso-prod.vault.azure.net", names: [payments-signing]}
      - {name: dr, vault_url: "https://contoso-dr.vault.azure.net", names: [payments-signing]}
      - {name: mhsm, vault_url: "https://contoso.managedhsm.azure.net", names: [app-aes]}
    versions: false
  register: fleet_info
'''

RETURN = r'''
tagged:
  version_added: 2.0.0
  description: With O(vault_url) and O(tagged), the vault's keys not among O(names) that carry the collection's identity
    tag, each with C(name), C(tag) and C(identity) (what the tag records; only the tag says so).
  returned: with O(vault_url) and O(tagged)
  type: list
  elements: dict
keys:
  description: One entry per name (with O(vault_url); with O(vaults), each entry of RV(vaults) has its own).
  returned: with O(vault_url)
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
    disabled:
      version_added: 2.0.0
      description:
        - True when the current version is disabled. Key Vault does not read a disabled version (403 KeyDisabled); its
          facts then come from its versions list, without C(fingerprint), C(kty) or C(key_ops).
      type: bool
    created_on:
      version_added: 2.0.0
      description: When the current version was created (ISO 8601).
      type: str
    tags:
      description: Tags of the current version.
      type: dict
    exportable:
      version_added: 2.0.0
      description: Whether the current version is exportable (Secure Key Release).
      type: bool
    release_policy:
      version_added: 2.0.0
      description:
        - The release policy of an exportable current version, or null - C(policy) (the policy document, parsed from the
          vault's JSON) and C(immutable).
      type: dict
    version_count:
      description: Number of versions (when O(versions) is true).
      type: int
    kcv:
      description:
        - Key check value of an oct-HSM key computed by the vault (AES-CBC with a zero IV over a zero block), or null when
          the key or the identity may not encrypt.
      type: str
vaults:
  version_added: 2.0.0
  description: One entry per item of O(vaults), in order.
  returned: with O(vaults)
  type: list
  elements: dict
  contains:
    name:
      description: The item's name (its O(vaults[].vault_url) when it has none).
      type: str
    vault_url:
      description: The item's O(vaults[].vault_url).
      type: str
    keys:
      description: One entry per name, as RV(keys).
      type: list
      elements: dict
    tagged:
      description: With O(tagged), the vault's keys not among the names that carry the collection's identity tag, each
        with C(name), C(tag) and C(identity) (what the tag records; only the tag says so).
      type: list
      elements: dict
      returned: with O(tagged)
    failed:
      description: Whether the vault could not be read.
      type: bool
      returned: when the vault could not be read
    msg:
      description: Why the vault could not be read.
      type: str
      returned: when the vault could not be read
'''

from ansible_collections.byok.keyvault.plugins.module_utils.keyvault import KeyVaultModule, vaults_option
from ansible_collections.byok.keyvault.plugins.module_utils.vault_backend import key_info_request


def main():
    KeyVaultModule.run(
        key_info_request,
        dict(
            vault_url=dict(type='str'),
            names=dict(type='list', elements='str'),
            vaults=vaults_option(names=dict(type='list', elements='str', required=True)),
            versions=dict(type='bool', default=True),
            tagged=dict(type='bool', default=False),
            parallel=dict(type='int', default=8),
        ),
        mutually_exclusive=[('vault_url', 'vaults'), ('names', 'vaults')],
        required_one_of=[('vault_url', 'vaults')],
        required_by={'vault_url': 'names'},
        supports_check_mode=True,
    )


if __name__ == '__main__':
    main()
