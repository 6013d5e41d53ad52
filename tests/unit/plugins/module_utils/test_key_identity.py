# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki


@pytest.mark.parametrize('args, expected', [
    (('RSA', 3072, None, 'premium'), {'key_type': 'RSA', 'key_size': 3072, 'curve': None}),
    (('RSA-HSM', None, None, None), {'key_type': 'RSA', 'key_size': 3072, 'curve': None}),
    (('EC', None, 'P-256K', 'premium'), {'key_type': 'EC', 'key_size': 256, 'curve': 'P-256K'}),
    (('EC', None, 'secp384r1', None), {'key_type': 'EC', 'key_size': 384, 'curve': 'P-384'}),
    (('oct', 128, None, 'managed_hsm'), {'key_type': 'oct', 'key_size': 128, 'curve': None}),
])
def test_accepted_specs(args, expected):
    assert ki.validate_target(*args) == expected


@pytest.mark.parametrize('args, needle', [
    (('RSA', 1024, None, None), '2048, 3072, 4096'),
    (('RSA', 8192, None, None), '2048, 3072, 4096'),
    (('EC', None, 'P-192', None), 'P-256, P-384, P-521, P-256K'),
    (('oct', 512, None, 'managed_hsm'), '128, 192, 256'),
    (('oct', 256, None, 'premium'), 'Managed HSM'),
    (('DSA', 2048, None, None), 'RSA, EC, oct'),
    (('EC', 384, 'P-256', None), 'does not match curve'),
])
def test_refused_specs_name_the_allowed_values(args, needle):
    with pytest.raises(ki.KeySpecError) as exc:
        ki.validate_target(*args)
    assert needle in str(exc.value)


def test_fingerprint_is_sha256_of_spki_and_equal_from_jwk():
    key = rsa.generate_private_key(65537, 2048).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    n = key.public_numbers().n.to_bytes(256, 'big')
    jwk = {'kty': 'RSA-HSM', 'n': ki.b64url_encode(n), 'e': ki.b64url_encode(b'\x01\x00\x01')}
    assert ki.fingerprint(key) == hashlib.sha256(spki).hexdigest()
    assert ki.fingerprint(ki.public_key_from_jwk(jwk)) == ki.fingerprint(key)


@pytest.mark.parametrize('curve, cls', [('P-256', ec.SECP256R1), ('P-384', ec.SECP384R1), ('P-521', ec.SECP521R1),
                                        ('P-256K', ec.SECP256K1)])
def test_ec_point_and_jwk_give_the_same_fingerprint(curve, cls):
    key = ec.generate_private_key(cls()).public_key()
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    der_octet_string = bytes([0x04, len(point)]) + point if len(point) < 128 else bytes([0x04, 0x81, len(point)]) + point
    size = (key.curve.key_size + 7) // 8
    nums = key.public_numbers()
    jwk = {'kty': 'EC-HSM', 'crv': curve, 'x': nums.x.to_bytes(size, 'big'), 'y': nums.y.to_bytes(size, 'big')}
    expected = ki.fingerprint(key)
    assert ki.fingerprint(ki.public_key_from_ec_point(curve, der_octet_string)) == expected
    assert ki.fingerprint(ki.public_key_from_ec_point(curve, point)) == expected
    assert ki.fingerprint(ki.public_key_from_jwk(jwk)) == expected
    assert ki.curve_from_ec_params(ki.CURVES[curve][1]) == curve
    assert ki.describe_public_key(key)['curve'] == curve


def test_load_public_pem_refuses_private_keys_and_garbage():
    priv = rsa.generate_private_key(65537, 2048)
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(ki.KeySpecError, match='private key'):
        ki.load_public_pem(pem)
    with pytest.raises(ki.KeySpecError, match='not a PEM public key'):
        ki.load_public_pem(b'hello')


def test_kcv():
    block = bytes.fromhex('dc95c078a2408989ad48a21492842087')
    assert ki.kcv_from_block(block) == hashlib.sha256(block).hexdigest()
    assert 'dc95c0' not in ki.kcv_from_block(block)  # neither the block nor the 3-byte KCV is shown


# -- an AES (oct) key is identified by its KCV: decided here, once ------------------------------------------------------
@pytest.mark.parametrize('key_type, by_kcv', [('oct', True), ('oct-HSM', True), ('AES', True), ('RSA', False),
                                              ('EC-HSM', False), (None, False), ('bogus', False)])
def test_which_keys_are_identified_by_their_kcv(key_type, by_kcv):
    assert ki.identified_by_kcv(key_type) is by_kcv
    assert ki.identity_kind(key_type) == ('kcv' if by_kcv else 'sha256')
    assert ki.identity(key_type, 'f' * 64, 'abc123') == ('abc123' if by_kcv else 'f' * 64)


def test_a_vault_key_is_identified_by_the_vaults_kcv_else_by_the_collections_tag():
    tags = {ki.KCV_TAG: 'AB' * 32}
    assert ki.vault_identity('oct', None, '0a0b0c', tags) == '0a0b0c'
    assert ki.vault_identity('oct-HSM', None, None, tags) == 'ab' * 32
    assert ki.vault_identity('oct', None, None, None) is None
    assert ki.vault_identity('RSA', 'f' * 64, None, tags) == 'f' * 64
    assert ki.vault_identity('EC', None, '0a0b0c', tags) is None


def test_two_aes_keys_whose_3_byte_kcvs_agree_are_two_keys():
    """The classic KCV is 24 bits: another key that agrees on them is found in seconds.  The identity compares all of
    AES(key, zero block), hashed, so agreeing on 3 bytes (or 15) is not being the same key."""
    from ansible_collections.byok.keyvault.plugins.module_utils.decisions import same_identity
    a = bytes.fromhex('2eb166') + os.urandom(13)
    b = a[:15] + bytes([a[15] ^ 1])
    assert not same_identity(ki.kcv_from_block(a), ki.kcv_from_block(b))
    assert same_identity(ki.kcv_from_block(a), ki.kcv_from_block(bytearray(a)).upper())


def test_a_tag_that_holds_no_identity_is_not_read_as_one():
    """A 3-byte KCV (what an earlier release wrote in byok-kcv), a word or a number identify nothing: not read at all,
    so the key is "cannot be compared", never a match nor another key's."""
    for value in ('dc95c0', 'f1', '', 'x' * 64, 'ab' * 33, 12, None):
        tags = {ki.KCV_TAG: value, ki.FINGERPRINT_TAG: value}
        assert ki.tagged_identity(tags, ki.KCV_TAG) is None and ki.identity_of_tags(tags) is None, value
        assert ki.vault_identity('oct', None, None, tags) is None
    assert ki.identity_of_tags({ki.FINGERPRINT_TAG: 'C0' * 32}) == (ki.FINGERPRINT_TAG, 'c0' * 32)


_TYPE_TEST = re.compile(r"(==|!=)\s*'oct(-HSM)?'|'oct(-HSM)?'\s*(==|!=)")


def _kcv_decisions(text):
    """Lines that decide by themselves that an AES key is identified by its KCV: a test of the key type with a KCV on
    the same line or the next."""
    lines = text.splitlines()
    found = []
    for index, line in enumerate(lines):
        if _TYPE_TEST.search(line):
            near = ' '.join(lines[index:index + 2])
            if 'kcv' in near.lower():
                found.append(line.strip())
    return found


def test_no_other_file_decides_how_an_aes_key_is_identified():
    root = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'plugins')
    found = {}
    for folder, dummy, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith('.py') and name != 'key_identity.py':
                with open(path) as f:
                    lines = _kcv_decisions(f.read())
                if lines:
                    found[os.path.relpath(path, root)] = lines
    assert not found, 'use key_identity.identified_by_kcv / identity / identity_kind / vault_identity: %s' % found


def test_the_aes_key_wrap_from_single_blocks_is_rfc_3394():
    """The HSM computes AES blocks only (the key never leaves it): the key wrap built from them is the standard's, as
    cryptography's own implementation and RFC 3394's test vector give it."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap
    kek = bytes.fromhex('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F')
    data = bytes.fromhex('00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F')

    def block(b):
        encryptor = Cipher(algorithms.AES(kek), modes.ECB()).encryptor()  # nosec - one block, as the HSM computes it
        return encryptor.update(b) + encryptor.finalize()

    assert ki.aes_key_wrap(block, data).hex().upper() == ('28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43B'
                                                          'FB988B9B7A02DD21')
    for size in (16, 24, 40):
        value = os.urandom(size)
        assert ki.aes_key_wrap(block, value) == aes_key_wrap(kek, value)
