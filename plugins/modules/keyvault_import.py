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
  - The import request is never resent blindly; after a failure the vault is checked for the key first.
author:
  - byok.keyvault contributors (@byok-keyvault)
extends_documentation_fragment:
  - byok.keyvault.azure
  - byok.keyvault.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode O(byok_file) does not need to exist.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description:
      - Name of the key in the vault (1-127 characters of 0-9, a-z, A-Z and -).
    type: str
    required: true
  byok_file:
    description:
      - The .byok file written by M(byok.keyvault.byok_wrap). Not read when the vault already holds the key.
    type: path
    required: true
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
        a new current version.
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
'''

RETURN = r'''
kid:
  description: Versioned id of the vault key that holds the HSM key. Null in check mode before the import.
  returned: always
  type: str
  sample: https://contoso-prod.vault.azure.net/keys/payments-signing/0123456789abcdef0123456789abcdef
version:
  description: Version of that key.
  returned: always
  type: str
fingerprint:
  description: Fingerprint of the vault key (SPKI SHA-256), or KCV for oct keys; equals the HSM key's.
  returned: always
  type: str
decision:
  description: V(import) or V(keep), and why in C(reason).
  returned: always
  type: str
reason:
  description: Why the module imported or kept.
  returned: always
  type: str
key:
  description: The vault key after the run (kid, version, kty, key_ops, enabled, dates, tags, fingerprint).
  returned: always
  type: dict
expected_fingerprint:
  description: The HSM key's fingerprint (or KCV) the vault key was compared with.
  returned: always
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

from ansible_collections.byok.keyvault.plugins.module_utils import byok_file
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils.keyvault import (KEY_OPS_CHOICES, KeyVaultError, KeyVaultModule,
                                                                             parse_datetime)
from ansible_collections.byok.keyvault.plugins.module_utils.vault_backend import import_key


def target_spec(p, meta, vault_type):
    """Key type/size/curve from the options, else from the .byok metadata; checked against what the vault accepts."""
    meta = meta or {}
    key_type = p['key_type'] or meta.get('key_type')
    if not key_type:
        raise ki.KeySpecError('key_type is not set and %s has no metadata file next to it; set key_type (and key_size or curve)'
                              % p['byok_file'])
    return ki.validate_target(key_type, p['key_size'] or meta.get('key_size'), p['curve'] or meta.get('curve'), vault_type)


def main():
    kv = KeyVaultModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            byok_file=dict(type='path', required=True),
            key_type=dict(type='str', choices=['RSA', 'EC', 'oct']),
            key_size=dict(type='int'),
            curve=dict(type='str', choices=list(ki.EC_CURVES)),
            key_ops=dict(type='list', elements='str', choices=KEY_OPS_CHOICES, no_log=False),
            enabled=dict(type='bool', default=True),
            not_before=dict(type='str'),
            expires_on=dict(type='str'),
            tags=dict(type='dict'),
            expected_fingerprint=dict(type='str'),
            force=dict(type='bool', default=False),
            verify_signature=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    p = kv.params
    try:
        byok_file.validate_key_name(p['name'])
        meta = byok_file.read_sidecar(p['byok_file'])
        spec = target_spec(p, meta, ki.vault_type_from_url(p['vault_url'], p['vault_type']))
        if p['key_ops'] and 'import' in p['key_ops']:
            raise KeyVaultError('key_ops of a target key cannot contain import (only a KEK has it); remove it')
        attributes = {'enabled': p['enabled'], 'not_before': parse_datetime(p['not_before'], 'not_before'),
                      'expires_on': parse_datetime(p['expires_on'], 'expires_on')}
        expected = (p['expected_fingerprint'] or (meta or {}).get('fingerprint') or '').lower() or None
        if not kv.module.check_mode:
            byok_file.read(p['byok_file'])  # a missing or damaged file fails before any vault call
        result = import_key(kv.vault, p['name'], p['byok_file'], spec, p['key_ops'], expected, p['force'], attributes,
                            p['tags'], kv.module.check_mode, verify_signature=p['verify_signature'] and not kv.module.check_mode)
    except (KeyVaultError, ki.KeySpecError, byok_file.ByokFormatError) as exc:
        kv.fail(exc)
    before = result.pop('before')
    result['diff'] = {'before': before or {}, 'after': result.get('key') or {}}
    kv.module.exit_json(**result)


if __name__ == '__main__':
    main()
