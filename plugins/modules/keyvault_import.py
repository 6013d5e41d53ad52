#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: keyvault_import
short_description: Import a .byok file into Azure Key Vault, once
version_added: 1.0.0
description:
  - Imports an HSM key wrapped by M(byok.keyvault.byok_wrap) into a Key Vault Premium vault or a Managed HSM as an
    HSM-protected key (kty RSA-HSM, EC-HSM or oct-HSM).
  - Every import creates a new key version, so the module first compares the vault's current version with the HSM key
    (O(expected_fingerprint), or the fingerprint recorded next to O(byok_file)); when they are equal nothing is imported.
  - A vault key whose current version is another key is reported and left alone unless O(force) is set (a rotation).
  - A vault key whose current version is a KEK (key_ops exactly V(import)) is refused before any write, with or without
    O(force), because a new version would turn the KEK into a usable key and break every later transfer into that
    vault.
  - The import request is never resent blindly; after a failure the vault is checked for the key first.
extends_documentation_fragment:
  - byok.keyvault.azure
  - byok.keyvault.attributes
  - byok.keyvault.attributes.full
attributes:
  check_mode:
    details:
      - In check mode O(byok_file) does not need to exist.
options:
  vault_url:
    description:
      - URI of the Key Vault Premium vault (C(https://NAME.vault.azure.net)) or Managed HSM
        (C(https://NAME.managedhsm.azure.net)).
      - Required unless O(vaults) is given.
    type: str
    required: false
  name:
    description:
      - Name of the key in the vault (1-127 characters of 0-9, a-z, A-Z and -). Mutually exclusive with O(keys) and
        O(vaults).
    type: str
  byok_file:
    description:
      - The .byok file written by M(byok.keyvault.byok_wrap). Not read when the vault already holds the key.
      - With O(name), one of O(byok_file) and O(byok_content) is required.
    type: path
  byok_content:
    description:
      - The .byok file's bytes as base64, as M(byok.keyvault.byok_wrap) returns them without C(dest).
    type: str
  keys:
    description:
      - Several keys of the same vault at once, imported with up to O(parallel) requests in flight.
      - Each item takes the single-key options C(name), C(byok_file) or C(byok_content), C(key_type), C(key_size), C(curve), C(key_ops),
        C(enabled), C(not_before), C(expires_on), C(tags), C(expected_fingerprint), C(force), C(exportable),
        C(release_policy), C(release_policy_immutable) and C(if_current_version), with the same meaning and defaults.
    type: list
    elements: dict
    suboptions: &import_key_options
      name:
        description: Vault key name.
        type: str
        required: true
      byok_file:
        description: The .byok file (or give byok_content).
        type: path
      byok_content:
        description: The .byok file's bytes as base64.
        type: str
      key_type:
        description: Type of the wrapped key.
        type: str
        choices: [RSA, EC, oct]
      key_size:
        description: Size in bits (RSA, oct).
        type: int
      curve:
        description: Curve of an EC key.
        type: str
        choices: [P-256, P-384, P-521, P-256K]
      key_ops:
        description: Operations the vault key allows.
        type: list
        elements: str
        choices: [encrypt, decrypt, sign, verify, wrapKey, unwrapKey, import, export]
      enabled:
        description: Whether the imported version is enabled.
        type: bool
        default: true
      not_before:
        description: Activation date-time (ISO 8601).
        type: str
      expires_on:
        description: Expiry date-time (ISO 8601).
        type: str
      tags:
        description: Tags of the imported version.
        type: dict
      expected_fingerprint:
        description: Fingerprint or KCV of the HSM key.
        type: str
      force:
        description: Import even when the vault's current version is another key.
        type: bool
        default: false
      exportable:
        version_added: 2.0.0
        description: Import an exportable key (Secure Key Release), as O(exportable).
        type: bool
        default: false
      release_policy:
        version_added: 2.0.0
        description: The release policy of an exportable key, as O(release_policy).
        type: raw
      release_policy_immutable:
        version_added: 2.0.0
        description: Make the release policy immutable, as O(release_policy_immutable).
        type: bool
        default: false
      if_current_version:
        version_added: 2.0.0
        description: Import only while the vault's current version is this one, as O(if_current_version).
        type: str
  vaults:
    version_added: 2.0.0
    description:
      - Keys for several vaults at once, instead of O(vault_url), O(vault_type), O(name) and O(keys). The vaults are served
        at the same time with one credential, each with up to O(parallel) requests in flight and its own pacing under
        its limits; at most five Key Vault vaults at once, as Azure's subscription-wide limit is five times a vault's
        (Managed HSMs are not counted).
      - A vault listed twice, or a O(vaults[].vault_url) that is not a vault URI, fails the module before any request. A
        vault that fails as a whole during the run (an unsupported cloud, its permissions, an unexpected error) fails
        each of its keys with that message (an unexpected error as an unknown outcome, to confirm by running again); the
        other vaults go on.
    type: list
    elements: dict
    suboptions:
      name:
        description: A name for the vault, returned in its entry of RV(vaults) and used in the diff (the transfer role gives
          its C(byok_vaults) key).
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
      keys:
        description: The keys of this vault, as O(keys).
        type: list
        elements: dict
        required: true
        suboptions: *import_key_options
  parallel:
    description:
      - With O(keys) or O(vaults), how many import requests may be in flight at once to one vault (1-16).
    type: int
    default: 4
  key_type:
    description:
      - Type of the wrapped key. Derived from the metadata file next to O(byok_file) when not given.
    type: str
    choices: [RSA, EC, oct]
  key_size:
    description:
      - Size of the wrapped key in bits (RSA, oct). Derived from the metadata file when not given.
    type: int
  curve:
    description:
      - Curve of an EC key. Derived from the metadata file when not given.
    type: str
    choices: [P-256, P-384, P-521, P-256K]
  key_ops:
    description:
      - Operations the vault key allows. Defaults by type - RSA encrypt, decrypt, sign, verify, wrapKey, unwrapKey;
        EC sign, verify; oct encrypt, decrypt, wrapKey, unwrapKey.
    type: list
    elements: str
    choices: [encrypt, decrypt, sign, verify, wrapKey, unwrapKey, import, export]
  enabled:
    description:
      - Whether the imported key version is enabled.
    type: bool
    default: true
  not_before:
    description:
      - Activation date-time (ISO 8601) of the imported version.
    type: str
  expires_on:
    description:
      - Expiry date-time (ISO 8601) of the imported version.
    type: str
  tags:
    description:
      - Tags of the imported version. For oct keys the collection adds C(byok-kcv) with the key check value.
    type: dict
  expected_fingerprint:
    description:
      - Fingerprint (SPKI SHA-256, lowercase hex) of the HSM key, or its KCV for oct keys, as returned by
        M(byok.keyvault.hsm_keygen). Defaults to the one recorded next to O(byok_file).
      - The import is skipped when the vault's current version has it, and the imported key is checked against it.
    type: str
  exportable:
    version_added: 2.0.0
    description:
      - Import the key as exportable (Secure Key Release) - the vault may release it to an attested confidential VM or
        container that O(release_policy) admits. Key Vault Premium takes exportable RSA and EC keys, a Managed HSM also
        AES keys.
      - An exportable key needs O(release_policy), and a release policy needs an exportable key (Key Vault refuses
        either alone); the module refuses both before any vault call. Only C(export) in O(key_ops) needs it too.
    type: bool
    default: false
  release_policy:
    version_added: 2.0.0
    description:
      - The release policy of an exportable key, in Microsoft's policy grammar (version 1.0.0) - a mapping, JSON text, or
        the path of a JSON file on the host the module runs on.
      - Its shape is checked before any vault call - C(version), C(anyOf) or C(allOf) of authorities, each an https
        attestation URL with C(allOf) or C(anyOf) of claim conditions, each a C(claim) with one operator (C(equals),
        C(notEquals), C(less), C(lessOrEquals), C(greater), C(greaterOrEquals), C(exists)).
      - Sent to the vault as compact JSON with sorted members (content type C(application/json; charset=utf-8)).
    type: raw
  release_policy_immutable:
    version_added: 2.0.0
    description:
      - Make the release policy immutable; the vault then refuses any change to it for the life of the version.
    type: bool
    default: false
  if_current_version:
    version_added: 2.0.0
    description:
      - Import only while the vault's current version of O(name) is this version (a rotation decided on it). When the
        current version has changed since, the HSM key is not imported again - the key is kept when the current version
        is the HSM key (another run imported it), and the import fails, naming both versions, when it is another key.
    type: str
  verify_signature:
    description:
      - After the import (or when the vault already holds the key), let the vault sign a random digest with the key and
        verify the signature with the key's public part, proving the vault holds the private key whose public key has the
        HSM key's fingerprint. Needs the C(sign) operation and keys/sign permission. oct keys are proven by their KCV.
    type: bool
    default: false
  force:
    description:
      - Import even when the vault's current version is another key (or cannot be compared); the HSM key becomes
        a new current version (a rotation). Once the current version is the HSM key, nothing more is imported.
    type: bool
    default: false
seealso:
  - module: byok.keyvault.byok_wrap
  - module: byok.keyvault.keyvault_key_info
'''

EXAMPLES = r'''
- name: Import the wrapped key
  byok.keyvault.keyvault_import:
    vault_url: https://contoso-prod.vault.azure.net
    name: payments-signing
    byok_file: /var/lib/byok/payments-signing.byok
    key_ops: [sign, verify]
    tags:
      owner: payments

- name: Rotate - import a new HSM key as the next version of an existing vault key
  byok.keyvault.keyvault_import:
    vault_url: https://contoso-prod.vault.azure.net
    name: payments-signing
    byok_file: /var/lib/byok/payments-signing-2027.byok
    expected_fingerprint: "{{ newkey.fingerprint }}"
    force: true

- name: Import the keys of a fleet into two vaults at the same time
  byok.keyvault.keyvault_import:
    vaults:
      - name: prod
        vault_url: https://contoso-prod.vault.azure.net
        keys:
          - {name: payments-signing, byok_file: /var/lib/byok/payments-signing.byok, key_ops: [sign, verify]}
      - name: dr
        vault_url: https://contoso-dr.vault.azure.net
        keys:
          - {name: payments-signing, byok_file: /var/lib/byok/payments-signing-dr.byok, key_ops: [sign, verify]}
  register: imported
'''

RETURN = r'''
keys:
  description: With O(keys), one result per item with the single-key return values (and C(failed), C(msg) for a key that failed).
  returned: when O(keys) is given
  type: list
  elements: dict
vaults:
  version_added: 2.0.0
  description: With O(vaults), one entry per vault in order; C(failed) and C(msg) when one of its keys (or the vault) failed.
  returned: when O(vaults) is given
  type: list
  elements: dict
  contains:
    name:
      description: The vault's O(vaults[].name) (its URL when it has none).
      type: str
    vault_url:
      description: The vault's O(vaults[].vault_url).
      type: str
    changed:
      description: Whether a key was imported into this vault.
      type: bool
    keys:
      description: One result per key, as RV(keys).
      type: list
      elements: dict
kid:
  description: Versioned id of the vault key that holds the HSM key. Null in check mode before the import.
  returned: when O(name) is given
  type: str
  sample: https://contoso-prod.vault.azure.net/keys/payments-signing/0123456789abcdef0123456789abcdef
version:
  description: Version of that key.
  returned: when O(name) is given
  type: str
fingerprint:
  description: Fingerprint of the vault key (SPKI SHA-256), or KCV for oct keys; equals the HSM key's.
  returned: when O(name) is given
  type: str
identity_source:
  version_added: 2.0.0
  description:
    - Where RV(fingerprint) came from - V(vault-jwk) (the fingerprint of the vault's JWK, RSA and EC), V(vault-kcv) (a KCV the
      vault computed, oct keys whose key_ops and identity allow encrypt) or V(kcv-tag) (only the C(byok-kcv) tag the
      collection wrote itself, which proves nothing about the key material); null in check mode before an import.
  returned: when O(name) is given
  type: str
decision:
  description: V(import) or V(keep), and why in C(reason).
  returned: when O(name) is given
  type: str
reason:
  description: Why the module imported or kept.
  returned: when O(name) is given
  type: str
key:
  description: The vault key after the run (kid, version, kty, key_ops, enabled, dates, tags, fingerprint).
  returned: when O(name) is given
  type: dict
expected_fingerprint:
  description: The HSM key's fingerprint (or KCV) the vault key was compared with.
  returned: when O(name) is given
  type: str
proof:
  description: With O(verify_signature), how the vault's possession of the key was proven (method, algorithm, verified).
  returned: when O(verify_signature) is true
  type: dict
attempts:
  description: Number of import requests sent (more than one only after a retryable failure with no key landed).
  returned: when imported
  type: int
'''

from ansible_collections.byok.keyvault.plugins.module_utils.keyvault import KeyVaultModule, vaults_option
from ansible_collections.byok.keyvault.plugins.module_utils.vault_backend import ITEM_SPEC, import_request


def main():
    spec = dict((k, dict(v, required=False) if k == 'name' else v) for k, v in ITEM_SPEC.items())
    spec.update(
        vault_url=dict(type='str'),
        keys=dict(type='list', elements='dict', options=ITEM_SPEC, no_log=False),
        vaults=vaults_option(keys=dict(type='list', elements='dict', options=ITEM_SPEC, required=True, no_log=False)),
        verify_signature=dict(type='bool', default=False),
        parallel=dict(type='int', default=4),
    )
    KeyVaultModule.run(
        lambda kv: import_request(kv, tuple(ITEM_SPEC)),
        spec,
        mutually_exclusive=[('name', 'keys', 'vaults'), ('byok_file', 'byok_content'), ('vault_url', 'vaults')],
        required_one_of=[('name', 'keys', 'vaults')],
        required_by={'name': 'vault_url', 'keys': 'vault_url'},
        supports_check_mode=True,
    )


if __name__ == '__main__':
    main()
