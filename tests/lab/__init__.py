# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab Key Vault: a local HTTPS server speaking the Azure Key Vault keys REST API.

Layout (after moto):

* ``models``   - vault state and the domain rules (create, import, versions, soft delete, ...), the
  resource manager's documents (cloud metadata, tenant), no HTTP
* ``errors``   - one exception class per wire error code
* ``byok``     - the lab's own parser and unwrapper of .byok blobs (CKM_RSA_AES_KEY_WRAP)
* ``tokens``   - identities, token issuing and validation, permissions
* ``server``   - HTTPS only: routing, the 401 challenge, JSON error envelope, fault injection
* ``pki``      - the lab CA and the server certificate
* ``config``   - the state directory: init and load
* ``__main__`` - the CLI (``PYTHONPATH=tests python -m lab --help``; installed: ``byok-keyvault-lab --help``)
* ``pytest_plugin`` - fixtures for testing playbooks against the lab (``lab_vault``, ``lab_env``, ``lab_module_args``)
"""
from __future__ import annotations
