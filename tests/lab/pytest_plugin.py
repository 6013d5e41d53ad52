# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pytest fixtures for testing your own playbooks against the lab Key Vault.

Installed with the ``byok-keyvault-lab`` package, this plugin is loaded by pytest automatically. Without the
package (a checkout, ``PYTHONPATH=tests``), enable it with ``-p lab.pytest_plugin`` or
``pytest_plugins = ["lab.pytest_plugin"]`` in a conftest.py.

* ``lab_factory`` (session): ``lab_factory(name="lab", settings=None)`` starts another lab (:class:`lab.testing.Lab`, in
  this process, on free ports, in a temporary state directory; ``.env``, ``.dump()``, ``.faults(...)``, ``.settings(...)``,
  ``.key_client(vault)``, ``.server``); every lab it started is stopped at the end of the session (or by ``.stop()``).
* ``lab_vault`` (session): a running lab (:class:`lab.server.LabServer`) in a temporary state directory, on free
  ports: ``.urls["premium"|"mhsm"|"premium2"|"premium3"]``, ``.authority``, ``.ca_path``, ``.tenant_id``, ``.env()``,
  ``.vault(name)`` (the state, for assertions), ``.reset()``, ``.faults``.
* ``lab_env`` (function): the environment variables ``byok-keyvault-lab env`` prints (``AZURE_CLIENT_ID``,
  ``AZURE_SECRET``, ``AZURE_TENANT``, ``LAB_AUTHORITY``, ``LAB_CA``, ``LAB_VAULT_*``, ``LAB_CLIENT_CERTIFICATE``),
  as a fresh dict to merge into a subprocess environment.
* ``lab_module_args`` (function): the Azure options of the byok.keyvault modules for a lab vault
  (``lab_module_args("premium")``): vault_url, auth_source env, cloud_environment, ca_bundle.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional

import pytest

from .testing import Lab


class LabFactory:
    """Starts labs (each in its own temporary state directory) and stops those still running at the end."""

    def __init__(self, tmp_path_factory) -> None:
        self._tmp = tmp_path_factory
        self._labs: List[Lab] = []

    def __call__(self, name: str = "lab", settings: Optional[dict] = None, base_env: Optional[Dict[str, str]] = None,
                 state_dir=None) -> Lab:
        """A started lab; ``state_dir`` (default: a new temporary directory) may hold the state of an earlier one."""
        where = state_dir if state_dir is not None else self._tmp.mktemp(name) / "vault"
        lab = Lab(where, base_env=base_env, settings=settings).start()
        self._labs.append(lab)
        return lab

    def stop_all(self) -> None:
        while self._labs:
            self._labs.pop().stop()


@pytest.fixture(scope="session")
def lab_factory(tmp_path_factory) -> Iterator[LabFactory]:
    """Start labs: ``lab_factory("name")`` -> :class:`lab.testing.Lab` (stopped at the end of the session)."""
    factory = LabFactory(tmp_path_factory)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def lab_vault(lab_factory) -> Iterator["object"]:
    """A lab Key Vault server for the whole test session (every vault empty at the start)."""
    yield lab_factory("byok-lab").server


@pytest.fixture
def lab_env(lab_vault) -> Dict[str, str]:
    """What a client of the lab needs in its environment (credentials of the lab operator, CA, URLs)."""
    return dict(lab_vault.env())


@pytest.fixture
def lab_module_args(lab_vault) -> Callable[..., Dict[str, str]]:
    """lab_module_args(vault="premium") -> the Azure options of a byok.keyvault module for that lab vault."""

    def _args(vault: str = "premium") -> Dict[str, str]:
        return {
            "vault_url": lab_vault.urls[vault],
            "auth_source": "env",
            "cloud_environment": lab_vault.authority,
            "ca_bundle": lab_vault.ca_path,
        }

    return _args
