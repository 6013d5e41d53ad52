#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: byok_hsm_step
short_description: The HSM side of a transfer over key records - contact, generate and wrap, seal
version_added: 2.0.0
description:
  - The step the byok.keyvault.transfer role runs on each HSM host. It takes the key records of the host (one per key
    and vault, made by the plan and carried from step to step) and returns them with what it did for each key; the report
    row of each key is derived from its record.
  - O(step=contact) is read-only whatever the check mode. It opens the token, logs in, looks at each HSM key as
    M(byok.keyvault.hsm_keygen) would (generation mechanism listed, wrap path proved by known-answer tests), and decides
    each key against what its vault holds (import, keep, or conflict). RV(kek_vaults) names the vaults whose KEK the host
    needs. The role runs it on every HSM host before any KEK or vault write.
  - O(step=transfer), under one login, makes sure of each HSM key (kept, generated or replaced, per O(regenerate)),
    decides each key again, and wraps each key that moves under its vault's KEK (as M(byok.keyvault.byok_wrap) does,
    nothing written to disk, the .byok goes to the import in the record). When the contact found every key in the HSM
    and in its vaults, it does not log in at all.
  - O(step=finish) runs once the vaults answered, under one login. It destroys the HSM key of each key the inventory
    retires with C(state=absent) and C(destroy_hsm_key), once the vault step confirmed that its vault no longer holds it
    (deleted in this run, or found without a current version), and only while the token's key under the label is still
    the one the contact found (its fingerprint or KCV), as M(byok.keyvault.hsm_key_remove) does; a label another record
    of the host still needs is never destroyed. With O(seal_after_transfer), it then seals (CKA_EXTRACTABLE false) each HSM key that every
    vault listed for it holds, as M(byok.keyvault.hsm_seal) does. With nothing to destroy or seal it does not log in.
  - With O(bundle), O(step=transfer) is stage 2 of the air-gapped flow (the byok.keyvault.staged role) on an offline HSM
    host. The KEK of each vault comes from the bundle and is taken only when its fingerprint is the one verified out of
    band (O(bundle.kek_fingerprints)); every KEK is checked before the token is opened. Each key is made sure of and
    wrapped afresh (the host cannot read its vault; stage 3 decides), written to C(wrapped/HOST/VAULT/NAME.byok) with its
    metadata file, and the host's seal (C(wrapped/HOST/seal.json)) records each key's HSM identity and C(.byok) SHA-256;
    RV(seal) gives the digest to carry to stage 3 out of band. A host whose keys did not all wrap gets no new seal.
  - A vault that could not be read, or a KEK that could not be had, stops the host before the token is opened. A key
    whose step fails fails the module (its record says why; the role's rescue keeps the records).
extends_documentation_fragment:
  - byok.keyvault.bundle
  - byok.keyvault.pkcs11
  - byok.keyvault.attributes
  - byok.keyvault.attributes.full
attributes:
  check_mode:
    details:
      - In check mode O(step=transfer) generates and wraps nothing, and O(step=finish) destroys and seals nothing.
options:
  step:
    description: Which step to run over O(records).
    type: str
    required: true
    choices: [contact, transfer, finish]
  records:
    description:
      - The key records of this HSM host, as the plan (M(byok.keyvault.byok_plan)) made them and the earlier steps
        returned them. Each has C(host), C(name), C(label), C(vault), C(key_type) and the steps done so far.
    type: list
    elements: dict
    required: true
  regenerate:
    description: What to do with an HSM key whose label exists but differs, as O(byok.keyvault.hsm_keygen#module:regenerate).
    type: str
    default: fail
    choices: [never, fail, full_idempotence, always]
  wrap_method:
    description: The wrap path, as O(byok.keyvault.byok_wrap#module:wrap_method).
    type: str
    default: auto
    choices: [auto, combined, two_step]
  seal_after_transfer:
    description:
      - With O(step=finish), seal each HSM key that every vault listed for it holds (C(byok_hsm_seal_after_transfer)).
    type: bool
    default: false
  hsm_environment:
    description:
      - The vendor's environment variables (C(byok_hsm_environment)) - C(SOFTHSM2_CONF), C(ChrystokiConfigurationPath),
        C(CKNFAST_*), C(LD_LIBRARY_PATH) and the like. The action plugin puts them in the environment the module's process
        starts with, as the task keyword C(environment) would (the loader reads C(LD_LIBRARY_PATH) before any Python
        runs), after the keyword's own variables; the module itself never gets the option.
      - They are on the command line that starts the module (C(ps) on the HSM host, C(-vvv)), so never a secret - a name
        with PIN (also ending a word, HSMPIN), PASSWORD, PASSWD, PWD, PASS, PASSCODE, PASSPHRASE or SECRET is refused.
    type: dict
    default: {}
seealso:
  - module: byok.keyvault.byok_vault_step
  - module: byok.keyvault.hsm_keygen
  - module: byok.keyvault.byok_wrap
  - module: byok.keyvault.hsm_seal
'''

EXAMPLES = r'''
- name: Contact the HSM and decide what moves (read-only)
  byok.keyvault.byok_hsm_step:
    step: contact
    records: "{{ byok_read.records | selectattr('host', 'eq', inventory_hostname) | list }}"
    pkcs11_module: /usr/lib/softhsm/libsofthsm2.so
    token_label: byok-demo
    user_pin: "{{ vault_hsm_pin }}"
    hsm_environment:
      SOFTHSM2_CONF: /etc/softhsm/softhsm2.conf
  register: byok_contact
'''

RETURN = r'''
records:
  description:
    - The records given, each with what this step did for its key under C(steps) (C(contact), C(decide), C(keygen),
      C(wrap), C(destroy) or C(seal)), and the token's facts under C(token).
  returned: always
  type: list
  elements: dict
kek_vaults:
  description: With O(step=contact), the vaults whose KEK this host needs (a key of it moves there).
  returned: success
  type: list
  elements: str
seal:
  description:
    - With O(bundle), the seal of the host - C(host), C(digest) (to carry to stage 3 out of band), C(path), C(keys) (one
      per key - vault, name, key_type, key_size, curve, identity, byok_sha256, kek_kid) and C(lines) to show.
  returned: with O(bundle), when every key of the host wrapped
  type: dict
token:
  description: Facts about the token (vendor, model, serial, label, firmware and library versions).
  returned: when the token was opened
  type: dict
'''

from ansible_collections.byok.keyvault.plugins.module_utils import bundle
from ansible_collections.byok.keyvault.plugins.module_utils import vendors
from ansible_collections.byok.keyvault.plugins.module_utils.decisions import REGENERATE_CHOICES
from ansible_collections.byok.keyvault.plugins.module_utils.hsm_backend import hsm_step_request
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_token import HsmModule


def main():
    HsmModule.run(
        hsm_step_request,
        dict(
            step=dict(type='str', required=True, choices=['contact', 'transfer', 'finish']),
            records=dict(type='list', elements='dict', required=True, no_log=False),
            regenerate=dict(type='str', default='fail', choices=list(REGENERATE_CHOICES)),
            wrap_method=dict(type='str', default='auto', choices=list(vendors.WRAP_METHODS)),
            seal_after_transfer=dict(type='bool', default=False),
            bundle=bundle.option_spec(),
            # put into the environment of this process by the action plugin (plugins/action/byok_hsm_step.py), which
            # takes it out of the arguments: a module started without that plugin has no use for it
            hsm_environment=dict(type='dict', default={}),
        ),
        supports_check_mode=True,
    )


if __name__ == '__main__':
    main()
