# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab Key Vault: a local HTTPS server speaking the Azure Key Vault keys REST API.

Layout (after moto: state and rules apart from the wire format, one module per endpoint family):

* ``models``   - vaults, keys, versions, KEKs, BYOK import and Azure's rules as state and transitions (no HTTP, JSON, files)
* ``limits``   - Azure's service limits as a state model (which row a request falls in, the throttle)
* ``wire``     - model objects in Key Vault's REST JSON shapes, and the lab's state summary
* ``store``    - the state directory's vault files (atomic, 0600) and ``LabState`` (all vaults of a lab)
* ``errors``   - one exception class per wire error code
* ``byok``     - the lab's own parser and unwrapper of .byok blobs (CKM_RSA_AES_KEY_WRAP)
* ``tokens``   - identities, token issuing and validation, permissions
* ``server``   - ``LabServer``: listeners, lifecycle, and the routing of a request to its endpoint family:
  ``login`` (token endpoint, OpenID configuration), ``arm`` (resource manager), ``admin`` (``/lab/...``),
  ``vaultapi`` (the keys API of each vault) and ``faults`` (service limits and injected faults around it)
* ``transport`` - TLS listeners, the HTTP handler, ``Reply``
* ``pki``      - the lab CA and the server certificate
* ``config``   - the state directory: init and load
* ``__main__`` - the CLI (``PYTHONPATH=tests python -m lab --help``; installed: ``byok-keyvault-lab --help``)
* ``testing``  - a lab for tests (in-process, free ports), SoftHSM2 tokens, ansible runs, inventories
* ``pytest_plugin`` - fixtures for testing playbooks against the lab, built on ``testing``
"""
from __future__ import annotations
