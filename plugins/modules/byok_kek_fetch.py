#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: byok_kek_fetch
short_description: Create or find the key exchange key (KEK) of a vault and fetch its public key
version_added: 1.0.0
description:
  - Makes sure the vault holds a KEK - an RSA-HSM key whose key operations are exactly C(import) - and returns its
    versioned key id and public key, optionally written to a PEM file for the HSM host.
  - Refuses an existing key of that name that cannot serve as a KEK (another kty, other key_ops, other size, disabled,
    expired or not yet valid), without changing it.
  - Only Key Vault Premium and Managed HSM can hold a KEK.
extends_documentation_fragment:
  - byok.keyvault.azure
  - byok.keyvault.attributes
  - byok.keyvault.attributes.no_diff
options:
  name:
    description:
      - Name of the KEK in the vault (1-127 characters of 0-9, a-z, A-Z and -).
    type: str
    required: true
  key_size:
    description:
      - RSA size of the KEK. An existing KEK must have this size.
    type: int
    default: 4096
    choices: [2048, 3072, 4096]
  create:
    description:
      - Create the KEK (RSA-HSM, key_ops exactly C(import)) when the vault has no key of that name.
    type: bool
    default: true
  expires_on:
    description:
      - Expiry of a KEK created by this run, as an ISO 8601 date-time (for example C(2027-01-31T00:00:00Z)).
        Not applied to an existing KEK.
    type: str
  state:
    description:
      - V(present) creates or finds the KEK. V(absent) deletes it (for example after a transfer, so that no one can
        import under it any more); the vault keeps a soft-deleted key until it is purged.
      - With V(present), when the name is held by a soft-deleted key (a KEK deleted after an earlier run and not
        purged, for example because the vault has purge protection), that key is recovered if it can serve as this KEK
        (RSA-HSM, key_ops exactly C(import), O(key_size), valid dates), which needs keys/recover; it is the KEK the
        vault would hold had it not been deleted, and O(state=absent) at the end of the run deletes it again. A deleted
        key that cannot serve as the KEK is left alone and the module fails, naming its purge date and saying to choose
        another name.
      - While the vault is still deleting or purging a key of that name (Azure does both in the background, answering
        409 in the meantime), the creation is retried for up to a minute.
    type: str
    default: present
    choices: [present, absent]
  purge:
    description:
      - With O(state=absent), also purge the soft-deleted KEK so that its name can be used again (needs keys/purge).
      - On a vault with purge protection (always on for Managed HSM) a purge is not possible; the KEK is then deleted,
        the module warns, reports RV(purged=false) and RV(purge_refused) and does not fail. The vault purges the key at
        the end of its retention period; until then the next run recovers it (see O(state)).
    type: bool
    default: false
  dest:
    description:
      - PEM file to write the KEK public key to (SubjectPublicKeyInfo), for M(byok.keyvault.byok_wrap).
    type: path
seealso:
  - module: byok.keyvault.byok_wrap
'''

EXAMPLES = r'''
- name: Create or find the KEK and write its public key
  byok.keyvault.byok_kek_fetch:
    vault_url: https://contoso-prod.vault.azure.net
    name: byok-kek
    key_size: 4096
    dest: /var/lib/byok/kek-prod.pem
  register: kek

- name: Delete and purge the KEK after the transfer
  byok.keyvault.byok_kek_fetch:
    vault_url: https://contoso-prod.vault.azure.net
    name: byok-kek
    state: absent
    purge: true

- name: Use an existing KEK only (fail when it is missing), with credentials from AWX's Azure credential
  byok.keyvault.byok_kek_fetch:
    vault_url: https://contoso-hsm.managedhsm.azure.net
    auth_source: env
    name: byok-kek
    create: false
'''

RETURN = r'''
kid:
  description: Versioned key id of the KEK; goes into the header of every .byok file. Null in check mode before creation.
  returned: always
  type: str
  sample: https://contoso-prod.vault.azure.net/keys/byok-kek/0123456789abcdef0123456789abcdef
fingerprint:
  description: Lowercase hex SHA-256 of the KEK public key's DER SubjectPublicKeyInfo, to verify out of band.
  returned: always
  type: str
key_size:
  description: RSA size of the KEK.
  returned: always
  type: int
  sample: 4096
public_key_pem:
  description: KEK public key as PEM. Null in check mode before creation.
  returned: always
  type: str
created:
  description: Whether this run created the KEK (or would, in check mode).
  returned: always
  type: bool
deleted:
  description: Whether the KEK was deleted (O(state=absent)).
  returned: when O(state=absent)
  type: bool
purged:
  description: Whether the deleted KEK was also purged (O(state=absent) with O(purge)).
  returned: when O(state=absent)
  type: bool
purge_refused:
  description: Why the vault could not purge the deleted KEK (purge protection) and until when it keeps it; null otherwise.
  returned: when O(state=absent)
  type: str
scheduled_purge_date:
  description: When the vault purges the deleted KEK by itself (end of its retention period).
  returned: when O(state=absent) and the KEK was deleted
  type: str
recovered:
  description: Whether this run recovered the KEK from a soft-deleted key of that name (see O(state)).
  returned: when O(state=present)
  type: bool
expires_on:
  description: Expiry of the KEK, if it has one.
  returned: always
  type: str
'''

from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils.keyvault import KeyVaultModule
from ansible_collections.byok.keyvault.plugins.module_utils.vault_backend import kek_request


def main():
    KeyVaultModule.run(
        kek_request,
        dict(
            name=dict(type='str', required=True),
            key_size=dict(type='int', default=4096, choices=list(ki.KEK_SIZES)),
            create=dict(type='bool', default=True),
            expires_on=dict(type='str'),
            dest=dict(type='path'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            purge=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )


if __name__ == '__main__':
    main()
