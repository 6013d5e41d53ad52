#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: byok_audit
short_description: Audit the key records of a read-only verify run, and write the audit as JSON and JUnit XML
version_added: 2.0.0
description:
  - Takes the key records after the vault read and the HSM contact of the playbook byok.keyvault.verify (both read-only)
    and gives each key a row - C(ok), or C(drift) with one finding per difference - the HSM holds no key under the
    label, or another one; the vault has no such key, or its current version is not the HSM key; attributes that differ
    from the inventory; a key disabled outside the inventory; an expiry within O(warning_days) or past; a rotation due
    (C(rotate_after)); a key listed with C(state=absent) that the vault still holds.
  - Each row names its proof - C(fingerprint of the vault public key), C(KCV computed by the vault), or
    C(unverifiable, only the collection's own tag) (an AES key the identity may not encrypt with, a disabled key).
  - A vault key that carries the collection's identity tag (C(byok-fingerprint), C(byok-kcv)) but that no inventory entry
    names is a drift row of its own (O(unlisted)).
  - Writes C(byok-verify-<run id>.json) (schema C(byok.keyvault/audit/1)) and C(byok-verify-<run id>.xml) (JUnit, one test
    case per key, a drift is a failure) into O(dir) on the controller, as mode 0600 files, as M(byok.keyvault.byok_manifest)
    writes the manifest.
  - This is an action plugin; it runs on the controller and makes no vault call and no HSM login.
extends_documentation_fragment:
  - byok.keyvault.attributes
  - byok.keyvault.attributes.action_plugin
options:
  dir:
    description:
      - Directory of the reports on the controller (default C(byok_manifest_dir), else C(BYOK_MANIFEST_DIR), else
        C(~/byok-keyvault/manifests)).
    type: path
  records:
    description:
      - The key records of every HSM host after the read (O(byok.keyvault.byok_vault_step#module:step=audit)) and the contact
        (O(byok.keyvault.byok_hsm_step#module:step=contact)).
    type: list
    elements: dict
    required: true
  unlisted:
    description:
      - The vault keys with the collection's identity tag that no record names, as the audit step returned them.
    type: list
    elements: dict
    default: []
  listing_failures:
    description:
      - One line per vault whose keys could not be listed; each is a drift row (its unlisted keys are unknown).
    type: list
    elements: str
    default: []
  warning_days:
    description:
      - A vault key that expires within this many days is a drift.
    type: int
    default: 30
  unlisted_checked:
    description:
      - Whether the vaults were listed for O(unlisted) keys (false for a run limited with C(--limit)); the table and the
        JSON say so.
    type: bool
    default: true
  started:
    description:
      - UTC time the run started (ISO 8601).
    type: str
attributes:
  check_mode:
    support: full
    details:
      - In check mode the rows are computed and nothing is written (the paths are null).
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run writes a new pair of files named after its run id; the task never reports a change.
'''

EXAMPLES = r'''
- name: Audit every key of the run
  byok.keyvault.byok_audit:
    records: "{{ ansible_play_hosts_all | map('extract', hostvars) | byok.keyvault.byok_records }}"
    unlisted: "{{ byok_read.unlisted }}"
  run_once: true
  register: audit

- name: Fail on drift
  ansible.builtin.fail:
    msg: "{{ audit.summary }}"
  when: audit.drift
'''

RETURN = r'''
rows:
  description:
    - One row per key (host, vault, name, label, version, hsm_identity, vault_identity, claimed_identity, proof,
      expires_on, status, findings), and one per unlisted vault key.
    - C(status) is V(ok), V(drift) (one finding per difference), or V(unverified) (no difference seen, but the vault's
      current version is disabled and shows only the collection's own identity tag, given as C(claimed_identity);
      C(vault_identity) is what the vault proved, null then).
  returned: always
  type: list
  elements: dict
drift:
  description: Whether any row drifted.
  returned: always
  type: bool
summary:
  description: One line, e.g. C(2 of 9 keys drifted from the inventory).
  returned: always
  type: str
lines:
  description: The table for people, one line per key and one per finding.
  returned: always
  type: list
  elements: str
json_path:
  description: Path of the JSON report; null in check mode.
  returned: always
  type: str
  sample: /home/ops/byok-keyvault/manifests/byok-verify-2026-12-07T120000Z-3f9a01c2.json
junit_path:
  description: Path of the JUnit XML report; null in check mode.
  returned: always
  type: str
  sample: /home/ops/byok-keyvault/manifests/byok-verify-2026-12-07T120000Z-3f9a01c2.xml
finished:
  description: UTC time the audit was made.
  returned: always
  type: str
'''
