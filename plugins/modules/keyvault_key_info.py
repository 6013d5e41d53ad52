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
vaults:
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
    failed:
      description: Whether the vault could not be read.
      type: bool
      returned: when the vault could not be read
    msg:
      description: Why the vault could not be read.
      type: str
      returned: when the vault could not be read
'''

from ansible_collections.byok.keyvault.plugins.module_utils import byok_file
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils.keyvault import KeyVaultModule, vaults_option
from ansible_collections.byok.keyvault.plugins.module_utils.vault_client import key_summary


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


def read_vault(kv, vault, names, versions):
    """The look-ups of one vault; a vault that cannot be read fails as a whole (authentication, permission, network)."""
    keys = kv.run_keys_parallel(names, lambda name: look_up(vault, name, versions), 'name', 'look-up')
    failed = [k for k in keys if k.get('failed')]
    result = {'changed': False, 'keys': keys}
    if failed:
        result.update(failed=True, msg=failed[0]['msg'])
    return result


def main():
    kv = KeyVaultModule(
        argument_spec=dict(
            vault_url=dict(type='str'),
            names=dict(type='list', elements='str'),
            vaults=vaults_option(names=dict(type='list', elements='str', required=True)),
            versions=dict(type='bool', default=True),
            parallel=dict(type='int', default=8),
        ),
        mutually_exclusive=[('vault_url', 'vaults'), ('names', 'vaults')],
        required_one_of=[('vault_url', 'vaults')],
        required_by={'vault_url': 'names'},
        supports_check_mode=True,
    )
    p = kv.params
    versions = p['versions']
    if p['vaults'] is not None:
        kv.check_vaults(p['vaults'])
        for entry in p['vaults']:
            for name in entry['names']:
                kv.guard(byok_file.validate_key_name, name, option='names of vault %s' % (entry['name'] or entry['vault_url']))
        results = kv.run_vaults(p['vaults'], lambda vault, entry: read_vault(kv, vault, entry['names'], versions),
                                'look-up', items='names')
        failed = [r for r in results if r.get('failed')]
        if failed:
            kv.fail('%d of %d vaults could not be read: %s' % (len(failed), len(results), ' | '.join(
                '%s: %s' % (r['name'], r['msg']) for r in failed)), vaults=results)
        kv.module.exit_json(changed=False, vaults=results)
    for name in p['names']:
        kv.guard(byok_file.validate_key_name, name, option='names')
    result = read_vault(kv, kv.vault, p['names'], versions)
    if result.get('failed'):
        kv.fail(result['msg'], keys=result['keys'])
    kv.module.exit_json(changed=False, keys=result['keys'])


if __name__ == '__main__':
    main()
