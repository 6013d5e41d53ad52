# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the lab tests: the lab's own pytest plugin (``lab_factory`` starts the labs), a lab per test module
(``module_lab``, its server ``lab``) and test keys."""

from __future__ import annotations

import os
import sys

import pytest

from cryptography.hazmat.primitives.asymmetric import ec, rsa

_HERE = os.path.dirname(os.path.abspath(__file__))
_TESTS_DIR = os.path.dirname(os.path.dirname(_HERE))
for _path in (_TESTS_DIR, _HERE):  # `import lab` without PYTHONPATH=tests; `import lab_blobs`
    if _path not in sys.path:
        sys.path.insert(0, _path)

from lab.pytest_plugin import lab_factory  # noqa: E402,F401 pylint: disable=wrong-import-position,unused-import


@pytest.fixture(scope="module")
def module_lab(lab_factory, request):  # noqa: F811 pylint: disable=redefined-outer-name
    """A lab of the test module's own (:class:`lab.testing.Lab`, in this process, in a temporary state directory named
    after the module), stopped when the module's tests are done."""
    started = lab_factory(request.module.__name__.rpartition(".")[2])
    yield started
    started.stop()


@pytest.fixture(scope="module")
def lab(module_lab):  # pylint: disable=redefined-outer-name
    """The server of the module's lab (:class:`lab.server.LabServer`): URLs, identities, CA, its state and faults."""
    return module_lab.server


@pytest.fixture(scope="session")
def rsa2048():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def rsa3072():
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@pytest.fixture(scope="session")
def p256():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def p256k():
    return ec.generate_private_key(ec.SECP256K1())
