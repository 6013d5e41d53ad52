#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: byok_vault_step
short_description: The vault side of a transfer over key records - read, KEKs, import
version_added: 2.0.0
description:
  - The steps the byok.keyvault.transfer role runs on the controller. Each takes key records (one per HSM host, key and
    vault, made by the plan and carried from step to step) and returns them with what it did for each key; the report
    row of each key is derived from its record.
  - O(step=read) is read-only. It asks each vault, all vaults at once, what it holds under each key's name (as
    M(byok.keyvault.keyvault_key_info) does).
  - O(step=kek) fetches, recovers or creates the KEK of each vault a key of the records moves to (RSA-HSM, key_ops
    exactly C(import), as M(byok.keyvault.byok_kek_fetch) does), and gives its versioned kid and public key to the records.
  - O(step=import) imports each wrapped key into its vault, all vaults at once (as M(byok.keyvault.keyvault_import)
    does; a key whose vault's current version is already the HSM key is kept, and the vault's key is read back and compared),
    and drops the wrapped keys from the records. With O(delete_keks) it then deletes the KEKs the records were given.
  - O(step=audit) is read-only too - the read of O(step=read), and each vault's keys that carry the collection's
    identity tag (C(byok-fingerprint) or C(byok-kcv)) but that no record names (the playbook byok.keyvault.verify reports
    them).
  - With O(bundle), the steps of the air-gapped flow (the byok.keyvault.staged role). O(step=kek) (stage 1) fetches or
    creates the KEK of every vault of the records and writes each into the bundle (C(keks/VAULT.pem) and
    C(keks/VAULT.json)); it fails when a KEK could not be had. O(step=read) (stage 3) first checks the bundle, before any
    vault call - the seal of each HSM host against the digest carried out of band, each C(.byok) against its seal - and
    gives each record the HSM key stage 2 sealed and its C(.byok); after the read, each record is decided against its
    vault (import, keep or conflict) as in the transfer. A bundle that is not authenticated stops every key, and no vault
    is called. O(step=import) then imports the records as in the transfer.
  - A vault that fails fails its own keys only (their records say why, and a warning names the vault); the module
    fails only when it cannot run at all.
  - An O(step=import) whose records give no vault anything to do (nothing to import, delete, recover, update or sign, and
    no O(delete_keks)) makes no vault request. Its action plugin then checks the arguments as the module does and returns
    the records as the module would, computed on the controller, without starting the module or building a credential.
extends_documentation_fragment:
  - byok.keyvault.bundle
  - byok.keyvault.azure
  - byok.keyvault.attributes
  - byok.keyvault.attributes.full
attributes:
  check_mode:
    details:
      - In check mode no KEK is created and nothing is imported or deleted; the records say what would be.
  action:
    description: Has an action plugin, which starts the module on the target (the controller, in the transfer role).
    support: full
    details:
      - An O(step=import) that gives no vault anything to do is answered by the action plugin alone.
options:
  vault_url:
    description: Not used; each record names its vault's URL.
    type: str
    required: false
  step:
    description: Which step to run over O(records).
    type: str
    required: true
    choices: [read, kek, import, audit]
  records:
    description:
      - The key records, as the plan (M(byok.keyvault.byok_plan)) made them and the earlier steps returned them. Each has
        C(host), C(name), C(label), C(vault), C(vault_url), C(key_type) and the steps done so far.
    type: list
    elements: dict
    required: true
  parallel:
    description: Requests in flight to one vault for O(step=read) and O(step=kek).
    type: int
    default: 8
  import_parallel:
    description: Imports in flight to one vault for O(step=import).
    type: int
    default: 4
  delete_keks:
    description: With O(step=import), delete the KEKs the records were given once the imports are done.
    type: bool
    default: false
  purge:
    description: With O(delete_keks), purge each deleted KEK (needs the purge permission; refused by a vault with purge protection).
    type: bool
    default: false
  list_unlisted:
    description:
      - With O(step=audit), list each vault's keys to find those with the collection's identity tag that no record names.
        Set false when the records are not the whole inventory's (a run limited with C(--limit)), where the other hosts'
        keys would look unlisted.
    type: bool
    default: true
seealso:
  - module: byok.keyvault.byok_hsm_step
  - module: byok.keyvault.keyvault_key_info
  - module: byok.keyvault.byok_kek_fetch
  - module: byok.keyvault.keyvault_import
'''

EXAMPLES = r'''
- name: Read what the vaults hold of every planned key (once, on the controller)
  byok.keyvault.byok_vault_step:
    step: read
    records: "{{ byok_plan.records }}"
  run_once: true
  delegate_to: localhost
  register: byok_read

- name: Stage 3 of the air-gapped flow - check the bundle, then read the vaults and decide
  byok.keyvault.byok_vault_step:
    step: read
    records: "{{ byok_plan.records }}"
    bundle:
      path: /media/usb/bundle
      digests: {hsm1: 3f2a-9c1d-77b0-e5f2-0a4b-6c8d-1e2f-3a4b}
  register: byok_read
'''

RETURN = r'''
records:
  description:
    - The records given, each with what this step did for its key under C(steps) (C(read), C(kek) or C(import)).
  returned: always
  type: list
  elements: dict
unlisted:
  description: With O(step=audit), each vault key that carries the collection's identity tag but that no record names
    (vault, vault_url, name, tag, identity, expires_on).
  returned: with O(step=audit)
  type: list
  elements: dict
listing_failures:
  description: With O(step=audit), one line per vault whose keys could not be listed.
  returned: with O(step=audit)
  type: list
  elements: str
destroy_hosts:
  description:
    - With O(step=import), the HSM hosts with a key to destroy now (retired with C(destroy_hsm_key), its deletion
      confirmed), for M(byok.keyvault.byok_hsm_step) with O(byok.keyvault.byok_hsm_step#module:step=finish).
  returned: with O(step=import)
  type: list
  elements: str
lines:
  description: With O(bundle) and O(step=kek), one line per vault with the fingerprint of its KEK, to verify out of band.
  returned: with O(bundle) and O(step=kek)
  type: list
  elements: str
refusal:
  description: With O(bundle) and O(step=read), why nothing may be imported (the bundle is not authenticated), or null.
  returned: with O(step=read)
  type: str
keks_deleted:
  description: With O(delete_keks), what deleting each KEK did (vault, KEK name, deleted, purged).
  returned: when O(delete_keks) is true
  type: list
  elements: dict
'''

from ansible_collections.byok.keyvault.plugins.module_utils.azure_options import vault_step_argument_spec
from ansible_collections.byok.keyvault.plugins.module_utils.keyvault import KeyVaultModule
from ansible_collections.byok.keyvault.plugins.module_utils.vault_backend import vault_step_request


def main():
    KeyVaultModule.run(vault_step_request, vault_step_argument_spec(), supports_check_mode=True)


if __name__ == '__main__':
    main()
