# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The software side of the wrap proof (pkcs11_wrap): what counts as RFC 5649, as the test key's PKCS#8 encoding, and
how a token's refusal is named.  Every expected value is computed here with `cryptography`, independently of the code
under test; the token side is exercised in tests/e2e/test_wrap_proof.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.keywrap import aes_key_wrap, aes_key_wrap_with_padding

from ansible_collections.byok.keyvault.plugins.module_utils import pkcs11_wrap as pw
from ansible_collections.byok.keyvault.plugins.module_utils import pkcs11_session as ps
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_session import explain

pkcs11_exceptions = pytest.importorskip('pkcs11.exceptions')

# RFC 5649 section 6, the two test vectors: the known answers the software unwrap must reproduce
KEK_5649 = bytes.fromhex('5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8')
VECTORS = [(bytes.fromhex('c37b7e6492584340bed12207808941155068f738'),
            bytes.fromhex('138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a')),
           (bytes.fromhex('466f7250617369'), bytes.fromhex('afbeb0f07dfbf5419200f2ccb50bb24f'))]


@pytest.mark.parametrize('plain,wrapped', VECTORS)
def test_rfc_5649_known_answers(plain, wrapped):
    assert pw._unwrap_5649(KEK_5649, wrapped) == plain
    assert pw._unwrap_5649(KEK_5649, wrapped[:-1] + bytes([wrapped[-1] ^ 1])) is None


def _pkcs7(data, block):
    pad = block - len(data) % block
    return data + bytes([pad]) * pad


@pytest.mark.parametrize('block', [8, 16])
def test_rfc_3394_over_pkcs7_is_named_not_taken_for_5649(block):
    kek, value = os.urandom(32), os.urandom(32)
    blob = aes_key_wrap(kek, _pkcs7(value, block))
    assert pw._unwrap_5649(kek, blob) is None
    assert pw._not_5649(kek, blob) == 'output is RFC 3394 over PKCS#7 padding, not RFC 5649 (Azure cannot unwrap it)'
    assert 'not RFC 5649 under the test key' in pw._not_5649(os.urandom(32), blob)


def _ec_pkcs8():
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key, der


def test_the_test_keys_pkcs8_exact_or_zero_padded():
    key, der = _ec_pkcs8()
    assert pw.check_private_plaintext(der, key.public_key()) == pw.EXACT
    padded = der + b'\x00' * (-len(der) % 8)
    assert len(padded) > len(der)  # a P-256 PKCS#8 is never a multiple of 8 bytes
    assert pw.check_private_plaintext(padded, key.public_key()) == pw.ZERO_PADDED
    # and through a real RFC 5649 round trip
    kek = os.urandom(32)
    plain = pw._unwrap_5649(kek, aes_key_wrap_with_padding(kek, padded))
    assert pw.check_private_plaintext(plain, key.public_key()) == pw.ZERO_PADDED


def test_anything_else_is_a_mismatch():
    key, der = _ec_pkcs8()
    other, _dummy = _ec_pkcs8()
    assert 'not zero' in pw.check_private_plaintext(der + b'\x01', key.public_key())
    assert 'not the test key' in pw.check_private_plaintext(der, other.public_key())
    assert 'not a DER encoding' in pw.check_private_plaintext(b'\x04' + der[1:], key.public_key())
    assert 'not RFC 5649' in pw.check_private_plaintext(None, key.public_key())


def test_ckr_names_as_the_standard_spells_them():
    assert ps.ckr_name('AttributeValueInvalid') == 'CKR_ATTRIBUTE_VALUE_INVALID'
    assert ps.ckr_name('GeneralError') == 'CKR_GENERAL_ERROR'
    assert ps.ckr_name('TokenNotRecognised') == 'CKR_TOKEN_NOT_RECOGNIZED'
    assert ps.exc_code(pkcs11_exceptions.KeyUnextractable()) == 'CKR_KEY_UNEXTRACTABLE'
    assert ps.exc_code(pkcs11_exceptions.PKCS11Error('Buffer was too small. Should never see this.')) == \
        'CKR_BUFFER_TOO_SMALL'
    assert ps.exc_code(pkcs11_exceptions.PKCS11Error('')) == 'an unnamed PKCS#11 error'


def test_explain_names_call_mechanism_code_attributes_and_fix():
    msg = explain(pkcs11_exceptions.AttributeValueInvalid(), "generation of RSA key 'k1'", call='C_GenerateKeyPair',
                  mechanism=0, template={'CKA_SENSITIVE': True, 'CKA_EXTRACTABLE': True})
    assert msg == ("PKCS#11 generation of RSA key 'k1' failed (C_GenerateKeyPair with CKM_RSA_PKCS_KEY_PAIR_GEN): "
                   "CKR_ATTRIBUTE_VALUE_INVALID for the attributes CKA_SENSITIVE=True, CKA_EXTRACTABLE=True; the token "
                   "refused a value of the key attributes; check the vendor policy for them")
    # never an empty reason, whatever the exception
    for exc in (pkcs11_exceptions.PKCS11Error(''), pkcs11_exceptions.GeneralError()):
        assert explain(exc, 'listing of the tokens', call='C_GetTokenInfo').split(': ', 1)[1].strip()
