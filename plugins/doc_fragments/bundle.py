# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # The transfer bundle of the air-gapped flow (byok_vault_step and byok_hsm_step; the spec is bundle.option_spec())
    DOCUMENTATION = r'''
options:
  bundle:
    description:
      - The transfer bundle of the air-gapped flow (the byok.keyvault.staged role), a directory carried between the
        connected and the offline hosts. Stage 1 is M(byok.keyvault.byok_vault_step) with C(step=kek), stage 2
        M(byok.keyvault.byok_hsm_step) with C(step=transfer) on the records of one HSM host, stage 3
        M(byok.keyvault.byok_vault_step) with C(step=read). Without it, the steps are the transfer's.
      - Its folders must be this user's own, with no link on their path and not writable by others (missing ones are
        created 0700; an existing one is never changed).
    type: dict
    suboptions:
      path:
        description: The bundle directory (C(byok_bundle_dir)).
        type: path
        required: true
      kek_fingerprints:
        description:
          - Stage 2 - the SHA-256 fingerprint of each vault's KEK, by vault short name, verified out of band
            (C(byok_expected_kek_fingerprints)). A KEK of the bundle is used only when its public key has this fingerprint.
        type: dict
        default: {}
      digests:
        description:
          - Stage 3 - the bundle digest of each HSM host, as stage 2 printed it, carried out of band
            (C(byok_expected_bundle_digests)). Nothing is imported when a host's seal does not have it.
        type: dict
        default: {}
      unauthenticated:
        description:
          - Stages 2 and 3 - take the KEKs and the C(.byok) files of the bundle as they are, without fingerprints or
            digests (C(byok_airgap_unauthenticated); for a lab only - whoever could alter the bundle can make the vault hold
            a key they know). Every run with it warns.
        type: bool
        default: false
'''
