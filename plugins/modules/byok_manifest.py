#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: byok_manifest
short_description: Write the audit manifest of a transfer (JSON and a text summary) on the controller
version_added: 1.0.0
description:
  - Writes C(byok-transfer-<run id>.json) (schema C(byok.keyvault/manifest/2)) and C(byok-transfer-<run id>.txt) into O(dir)
    on the Ansible controller, as mode 0600 files written atomically; the directory is created with mode 0700 when missing.
  - >-
    The JSON holds the run id, the start (O(started)) and finish times, the controller's host name and user, the versions of
    this collection and of ansible-core, each vault's URL and the kid and fingerprint of the KEK its keys were wrapped under
    in this run (null when none was needed), the hosts without a report or that stopped, and the rows (C(keys)); each row
    names its C(proof) (C(fingerprint from the vault's JWK), C(KCV computed by the vault), or C(unverified: only the
    collection's own tag), with C(match) then null) and its C(signature) check. The text summary shows the same.
  - The run id is the UTC time the run finished and a random suffix, so every run keeps its own pair of files. A file is
    written under a temporary name, synced, then linked to its final name, which never replaces an existing file.
  - A O(dir) that is a symbolic link or that group or others may write is refused.
  - The rows are the C(byok_transfer_report) facts of the transfer role. They hold names, hosts, vault key ids,
    fingerprints and outcomes, never a PIN, a secret or key material.
  - This is an action plugin; it runs on the controller whatever host the task targets, so it costs no module run.
  - The files are an audit trail, not managed state, so the task never reports a change.
extends_documentation_fragment:
  - byok.keyvault.attributes
  - byok.keyvault.attributes.action_plugin
options:
  dir:
    description:
      - Directory of the manifests on the controller.
    type: path
    required: true
  rows:
    description:
      - The report rows (the C(byok_transfer_report) facts of the HSM hosts, flattened).
    type: list
    elements: dict
    required: true
  hosts_without_report:
    description:
      - HSM hosts that failed before they could report; listed in both files.
    type: list
    elements: str
    default: []
  hosts_failed:
    version_added: 2.0.0
    description:
      - HSM hosts that stopped during the transfer, each with the task and message that stopped it; listed in both files.
    type: dict
    default: {}
  started:
    version_added: 2.0.0
    description:
      - UTC time the run started (ISO 8601), as the transfer role noted it; null when not known.
    type: str
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written and the paths are returned as null.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run writes a new pair of files named after its run id; the task still reports no change.
notes:
  - Two runs that finish within the same second get different run ids; neither replaces the other's files.
'''

EXAMPLES = r'''
- name: Write the manifest of the transfer
  byok.keyvault.byok_manifest:
    dir: ~/byok-keyvault/manifests
    rows: "{{ groups['byok_hsm_hosts'] | map('extract', hostvars, 'byok_transfer_report') | flatten }}"
  register: manifest

- name: Show where it went
  ansible.builtin.debug:
    msg: "{{ manifest.json_path }}"
'''

RETURN = r'''
json_path:
  description: Path of the JSON manifest; null in check mode, and when it could not be written.
  returned: always
  type: str
  sample: /home/ops/byok-keyvault/manifests/byok-transfer-2026-11-28T210500Z-3f9a01c2.json
text_path:
  description: Path of the text summary; null in check mode, and when it could not be written.
  returned: always
  type: str
  sample: /home/ops/byok-keyvault/manifests/byok-transfer-2026-11-28T210500Z-3f9a01c2.txt
not_written:
  description:
    - Why the manifest could not be written (the task then fails with this message); the transfer's report role prints
      its table first, and fails the run at its end.
  returned: when the manifest could not be written
  type: str
  version_added: 2.0.0
run_id:
  description: Id of the run in the file names (UTC finish time and a random suffix); null in check mode.
  returned: always
  type: str
  sample: 2026-11-28T210500Z-3f9a01c2
finished:
  description: UTC time the manifest was written, as in the file names and the JSON C(finished) field.
  returned: always
  type: str
  sample: '2026-11-28T21:05:00Z'
'''
