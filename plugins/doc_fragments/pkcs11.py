# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Options shared by the modules that talk to an HSM over PKCS#11.
    DOCUMENTATION = r'''
options:
  pkcs11_module:
    description:
      - Path of the HSM's PKCS#11 library on the HSM host, for example C(/usr/safenet/lunaclient/lib/libCryptoki2_64.so)
        (Thales Luna), C(/opt/nfast/toolkits/pkcs11/libcknfast.so) (Entrust nShield) or C(/usr/lib/softhsm/libsofthsm2.so).
      - When not set, the environment variable E(PKCS11_MODULE) is used, then the first default path of O(vendor) that exists.
    type: path
  token_label:
    description:
      - Label of the token (Luna partition, nShield softcard/OCS/module token, SoftHSM token) that holds the keys.
      - When not set, the environment variable E(PKCS11_TOKEN_LABEL) is used.
      - One of O(token_label) and O(token_serial) is needed; with both, the token must match both.
    type: str
  token_serial:
    description:
      - Serial number of the token, to choose among tokens with the same label.
    type: str
  user_pin:
    description:
      - PIN of the token user (Luna Crypto Officer, nShield softcard/OCS passphrase, SoftHSM user PIN).
      - When not set, the environment variable E(PKCS11_USER_PIN) is used.
      - A wrong PIN is tried once and never retried, since HSMs lock a user after a few failures.
    type: str
  vendor:
    description:
      - HSM vendor profile that decides library defaults, environment, key attributes, wrap preference,
        firmware gates and quirks.
      - V(auto) recognises the vendor from the token's manufacturer and falls back to V(generic), which serves any
        PKCS#11 HSM (Utimaco, Securosys, Fortanix, Marvell, IBM, Futurex, Yubico, ...).
    type: str
    default: auto
    choices: [auto, luna, nshield, softhsm, generic]
  lock_timeout:
    description:
      - Seconds to wait while another run on this host works with the same token, before failing with a message that names
        the token's lock and, where it can, the process holding it (pid, host, start time).
      - Locks are files in C($TMPDIR/byok-keyvault-locks-<uid>), which must belong to the running user with mode 0700;
        a folder made by another user, or a symbolic link, is refused, and lock files are never followed through links.
    type: int
    default: 300
author:
  - byok.keyvault contributors (@byok-keyvault)
requirements:
  - python-pkcs11 >= 0.7 on the HSM host
  - cryptography on the HSM host
notes:
  - The PKCS#11 library is loaded once, the token user logs in once per module run; the PIN is only handed to C_Login.
'''
