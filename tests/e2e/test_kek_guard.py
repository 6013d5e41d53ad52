# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A KEK is never a target: keyvault_import, against the REAL lab vault, refuses to add a version to a vault key whose
current version is a KEK (key_ops exactly ["import"]), with or without force, before any write: the KEK keeps its one
version and stays a KEK.
"""

from __future__ import annotations

import pytest

from conftest import assert_one_line_failure, assert_says_how_to_fix, unique, wrap_under_new_kek


@pytest.fixture
def kek_and_blob(lab, run_module, make_token, tmp_path):
    """A fresh KEK in the premium vault and a .byok of an HSM key wrapped under it."""
    token = make_token()
    label, kek = unique("target"), unique("kek")
    gen = run_module("hsm_keygen", dict(token.pkcs11_args(), keys=[{"label": label, "key_type": "RSA", "key_size": 2048}]),
                     env=token.env)
    assert not gen.failed, str(gen)
    byok = tmp_path / "target.byok"
    wrap_under_new_kek(run_module, lab, token, label, byok, kek)
    return kek, byok, gen.result["keys"][0]["fingerprint"]


@pytest.mark.parametrize("force, check", [(True, False), (False, False), (True, True)],
                         ids=["force", "no-force", "force-check-mode"])
def test_keyvault_import_never_adds_a_version_to_a_kek(lab, run_module, kek_and_blob, force, check):
    kek, byok, fingerprint = kek_and_blob
    before = lab.keys("premium")[kek]["versions"]
    assert len(before) == 1
    # the name as the user might write it: Key Vault compares names case-insensitively
    run = run_module("keyvault_import", dict(lab.azure_args(), name=kek.upper(), byok_file=str(byok), key_type="RSA",
                                             key_size=2048, key_ops=["sign", "verify"], expected_fingerprint=fingerprint,
                                             force=force), env=lab.azure_env, check=check)
    msg = assert_one_line_failure(run, "is a KEK", "nothing was imported")
    assert_says_how_to_fix(msg)
    assert not run.changed
    after = lab.keys("premium")[kek]["versions"]
    assert after == before, "a version was added to the KEK: %s" % after
    # and it still serves as the KEK
    again = run_module("byok_kek_fetch", dict(lab.azure_args(), name=kek, key_size=2048, create=False), env=lab.azure_env)
    assert not again.failed and not again.changed, str(again)
