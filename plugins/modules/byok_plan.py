#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: byok_plan
short_description: Check the inventory of a fleet of HSM hosts and plan a transfer, before anything is touched
version_added: 1.0.0
description:
  - Reads the variables of every HSM host in O(hosts) that the byok.keyvault.transfer role declares (its
    C(meta/argument_specs.yml) is the one specification of the inventory) and checks them against that specification
    and against what Azure Key Vault or the HSM would refuse - unknown fields and variables (with the nearest valid
    name), types, choices, key names (unique per vault across the fleet, compared case-insensitively), key type, size
    and curve for the vault kind, key operations for the key type, tags, dates, labels per token, vault URLs.
  - Every problem of the whole fleet is reported at once, one line each - host, variable path, value, rule and fix -
    and the task fails. A problem shared by every host (a variable set under C(all) C(vars)) is written once.
  - A check that depends on another field runs with that field as it would be once its own problem is fixed (C(rsa) as
    C(RSA), C(P384) as C(P-384), C(Sign) as C(sign)), so no problem waits for a second run.
  - Also refused - names (key, KEK, vault short name) that end in a line break; a vault C(type) that contradicts its
    URL; vault URLs with more than one port or a host that is not a DNS name; booleans other than true/false, yes/no,
    on/off, 1/0 (any case); C(byok_verify_signature) with an RSA or EC key whose C(key_ops) lack C(sign);
    C(expires_on) or C(kek_expires_on) less than one hour ahead; a C(byok_manifest_dir) that is not a string; variables
    that differ from a declared one only in case or C(-) for C(_) (C(byok-keys), C(Byok_keys)).
  - With ANSIBLE_DEBUG or ANSIBLE_KEEP_REMOTE_FILES on, refuses to continue when a PIN or client secret would be passed
    as a module argument (ansible-core then writes module arguments to its debug output, or leaves them in clear in the
    module payloads it keeps on the host), unless C(byok_allow_secrets_in_debug_log) is true.
  - Refuses a key whose name is a KEK name (any vault's C(kek_name), or the default byok-kek, compared
    case-insensitively), because a KEK is never a target key.
  - Vault short names (the keys of C(byok_vaults), and each key's C(vault)) must be identifiers (letters, digits, C(-),
    C(_)), as they name folders and files of an air-gapped transfer bundle. Host names must be usable as folder names.
  - Unless O(vaults_required) is false (an offline HSM host), the audit manifest folder on the controller
    (C(byok_manifest_dir), else C(BYOK_MANIFEST_DIR) or C(~/byok-keyvault/manifests)) must be the running user's own - no
    symbolic link on its path, not writable by group or others, under directories of root or the running user - or be
    missing under such directories; so it is refused before any key moves.
  - This is an action plugin; it runs on the controller, in-process, and makes no vault call, HSM login or file write.
    The byok.keyvault.plan role runs it once for the play.
extends_documentation_fragment:
  - byok.keyvault.attributes
  - byok.keyvault.attributes.action_plugin
  - byok.keyvault.attributes.info_module
options:
  hosts:
    description:
      - HSM hosts to check and plan. Defaults to every host of the play, also those that already failed.
    type: list
    elements: str
  outside_hosts:
    version_added: 2.0.0
    description:
      - HSM hosts of the inventory that this run leaves out (a C(--limit)). They are not planned, and their own mistakes
        are not reported; of each, only C(byok_keys), C(byok_vaults), C(byok_token_serial) and C(byok_token_label) are
        read, so that a key of this run does not take a vault key one of them lists, nor destroy an HSM key one of them
        uses on the same token (both refused), nor seal one (its record gets C(token_users_outside), and the seal waits).
    type: list
    elements: str
    default: []
  vaults_required:
    description:
      - Whether each key's C(vault) must be a name of C(byok_vaults) (false on offline HSM hosts of the staged flow, which
        get their KEKs from a bundle).
    type: bool
    default: true
  flow:
    version_added: 2.0.0
    description:
      - The flow the plan is for. V(staged) also refuses the C(byok_keys) fields an air-gapped run cannot honour
        (C(rotate_after), whose decision needs the vault's version dates on the HSM side).
    type: str
    default: transfer
    choices: [transfer, staged]
  role:
    description:
      - Role whose argument specification declares the inventory.
    type: str
    default: transfer
  entry_point:
    description:
      - Entry point of that role.
    type: str
    default: main
seealso:
  - module: byok.keyvault.hsm_keygen
  - module: byok.keyvault.keyvault_key_info
  - module: byok.keyvault.byok_manifest
'''

EXAMPLES = r'''
- name: Check the inventory of every HSM host and plan the transfer (nothing is touched yet)
  byok.keyvault.byok_plan:
    hosts: "{{ ansible_play_hosts_all }}"
  run_once: true
  register: byok_plan

- name: The keys this host generates
  ansible.builtin.debug:
    msg: "{{ byok_plan.plan.hosts[inventory_hostname].hsm_keys }}"
'''

RETURN = r'''
plan:
  description: The plan of the fleet (no secrets); absent when the inventory has problems.
  returned: success
  type: dict
  contains:
    hosts:
      description:
        - Per HSM host - C(keys) (every key with name, vault, vault_url, vault_kind, label, id, key_type, key_size, curve,
          key_ops, tags, enabled, not_before, expires_on, force, bundle_file), C(hsm_keys) (the hsm_keygen items, one
          per label), C(vaults) (the vault names it sends keys to) and C(regenerate).
      type: dict
    vaults:
      description: Every vault that receives a key - name, url, kind, kek_name, kek_size, kek_expires_on and hosts.
      type: list
      elements: dict
    reads:
      version_added: 2.0.0
      description: Every vault of C(vaults) with the key names to ask it about - name, vault_url, vault_type and names, the
        items of O(byok.keyvault.keyvault_key_info#module:vaults).
      type: list
      elements: dict
    entries:
      description: Every key of every host, as in C(hosts).
      type: list
      elements: dict
    controller:
      description: The host that runs the Azure calls.
      type: str
    summary:
      description: How many keys, HSM hosts and vaults, in words.
      type: str
      sample: 12 keys on 4 HSM hosts into 2 vaults
msg:
  description: The summary, or every problem of the inventory, one per line.
  returned: always
  type: str
  sample: "hsm2: byok_keys[1] (payments-signing).key_ops[0]: 'encrypt' is not allowed for EC keys; use sign, verify"
'''
