#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: byok_bundle
short_description: The folders and the seal of an air-gapped transfer bundle
version_added: 1.0.0
description:
  - The bundle's checks and its seal on their own; the C(byok.keyvault.staged) role does them inside its steps
    (M(byok.keyvault.byok_vault_step) and M(byok.keyvault.byok_hsm_step) with their C(bundle) option); see the
    collection's docs/air-gapped.md.
  - Checks the bundle directory and its folders before any other work - no symbolic link on their paths, owned by the
    running user and not writable by group or others, under directories of root or the running user - and creates the
    missing ones with mode 0700. An existing folder is never chmod-ed or chown-ed; one that is not the user's own fails
    the module.
  - With O(seal) (stage 2, HSM side), writes C(wrapped/HOST/seal.json), the canonical list of the host's keys (vault,
    name, type, HSM key identity, SHA-256 of each .byok, KEK), and returns its digest for the operator to carry to
    stage 3 out of band.
  - With O(verify) (stage 3, connected side), checks the seal of each host against the digest given out of band and
    each .byok against its seal, and returns which keys may be imported and the HSM identity each must have in the
    vault. It writes nothing.
author:
  - byok.keyvault contributors (@byok-keyvault)
extends_documentation_fragment:
  - byok.keyvault.attributes
  - byok.keyvault.attributes.no_diff
attributes:
  check_mode:
    details:
      - Creates no folder and writes no seal; O(verify) works as without check mode.
  idempotent:
    details:
      - A seal is written again only when its content changed (stage 2 wraps afresh on every run, so a new .byok
        makes a new seal and a new digest).
options:
  path:
    description: The bundle directory on this host.
    type: path
    required: true
  directories:
    description: Folders of the bundle (relative paths such as C(keks) or C(wrapped/HOST/VAULT)) to check and create.
    type: list
    elements: str
    default: []
  create:
    description: Create the bundle directory and O(directories) when missing (mode 0700). When false, a missing one fails.
    type: bool
    default: true
  seal:
    description:
      - Seal the keys stage 2 wrapped for one HSM host.
    type: dict
    suboptions:
      host:
        description: The HSM host (its C(wrapped/HOST) folder).
        type: str
        required: true
      wrapped:
        description: The results of a M(byok.keyvault.byok_wrap) loop over the host's vaults (each with C(item), the vault, and C(keys)).
        type: list
        elements: dict
        required: true
  verify:
    description:
      - Check the bundle against the digests carried out of band before stage 3 imports.
    type: dict
    suboptions:
      keys:
        description: The plan's key entries (C(byok_plan.plan.entries)).
        type: list
        elements: dict
        required: true
      digests:
        description: The bundle digest of each HSM host as stage 2 printed it (C(byok_expected_bundle_digests)).
        type: dict
        default: {}
  unauthenticated:
    description:
      - The user opted out of the authenticated air gap (C(byok_airgap_unauthenticated)); the module warns loudly. With
        O(verify), keys are imported without the digests (the sealed SHA-256 of each .byok is still checked when there is
        a seal).
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Check and create the bundle's folders
  byok.keyvault.byok_bundle:
    path: /media/usb/bundle
    directories: [keks]

- name: Seal what stage 2 wrapped
  byok.keyvault.byok_bundle:
    path: /media/usb/bundle
    seal:
      host: "{{ inventory_hostname }}"
      wrapped: "{{ wrapped.results }}"
  register: sealed

- name: Check the bundle before stage 3 imports
  byok.keyvault.byok_bundle:
    path: /media/usb/bundle
    create: false
    verify:
      keys: "{{ byok_plan.plan.entries }}"
      digests: {hsm1: 3f2a-9c1d-77b0-e5f2-0a4b-6c8d-1e2f-3a4b}
  register: checked
'''

RETURN = r'''
created:
  description: Folders created (or that would be, in check mode).
  returned: always
  type: list
  elements: str
seal:
  description: With O(seal) - C(host), C(digest) (to carry to stage 3), C(path) and C(keys), one record per key (vault, name,
    key_type, key_size, curve, identity, byok_sha256, kek_kid, and where the wrap gave them kek_fingerprint, wrap_method,
    wrap_mechanism and token).
  returned: when O(seal) is given
  type: dict
keys:
  description: With O(verify) - one entry per key of O(verify.keys) with C(ready) (may be imported), C(msg) (why not),
    C(hsm_fingerprint) (the sealed HSM identity), C(byok_sha256), C(seal_digest) and, for a key that may be imported,
    C(byok_content) (the checked .byok as base64, for M(byok.keyvault.keyvault_import), so that the file is not read again).
  returned: when O(verify) is given
  type: list
  elements: dict
refusal:
  description: With O(verify) - why nothing may be imported (an authentication failure), or null.
  returned: when O(verify) is given
  type: str
rows:
  description: With O(verify) - a report row (result V(failed), the reason in C(message)) for each key that may not be imported.
  returned: when O(verify) is given
  type: list
  elements: dict
'''

from ansible_collections.byok.keyvault.plugins.module_utils import bundle
from ansible_collections.byok.keyvault.plugins.module_utils import owned_dir
from ansible_collections.byok.keyvault.plugins.module_utils import report
from ansible_collections.byok.keyvault.plugins.module_utils.module_base import ByokModule


def main():
    m = ByokModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            directories=dict(type='list', elements='str', default=[]),
            create=dict(type='bool', default=True),
            seal=dict(type='dict', options=dict(host=dict(type='str', required=True),
                                                wrapped=dict(type='list', elements='dict', required=True))),
            verify=dict(type='dict', options=dict(keys=dict(type='list', elements='dict', required=True, no_log=False),
                                                  digests=dict(type='dict', default={}))),
            unauthenticated=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('seal', 'verify')],
        supports_check_mode=True,
    )
    p = m.params
    result = {'changed': False}
    if p['unauthenticated']:
        m.module.warn(bundle.UNAUTHENTICATED_WARNING)
    try:
        result['created'] = bundle.prepare(p['path'], p['directories'], p['create'], m.check_mode)
        result['changed'] = bool(result['created'])
        if p['seal']:
            result['seal'] = bundle.seal(p['path'], p['seal']['host'], p['seal']['wrapped'], m.check_mode)
            result['changed'] = result['seal'].pop('changed') or result['changed']
        if p['verify']:
            v = p['verify']
            result['keys'], result['refusal'] = bundle.verify(p['path'], v['keys'], v['digests'], p['unauthenticated'])
            result['rows'] = [report.new_row(k, result='failed', message=k['msg']) for k in result['keys'] if not k['ready']]
    except owned_dir.UnsafeDirectory as exc:
        m.fail(bundle.unsafe_message(exc, p['path']))
    except bundle.BundleError as exc:
        m.fail(exc)
    except (IOError, OSError) as exc:
        m.fail('cannot use the bundle %s: %s; check byok_bundle_dir' % (p['path'], exc))
    m.module.exit_json(**result)


if __name__ == '__main__':
    main()
