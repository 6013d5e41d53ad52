# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils import byok_file

KID = 'https://contoso.vault.azure.net/keys/byok-kek/0123456789abcdef0123456789abcdef'


def test_build_writes_the_microsoft_schema_with_unpadded_base64url():
    ciphertext = b'\xfb\xff' * 200 + b'\x00' * 40  # bytes that need - and _ in base64url
    doc = json.loads(byok_file.build(KID, ciphertext, 'tool 1.0; HSM fw 7.4'))
    assert doc['schema_version'] == '1.0.0'
    assert doc['header'] == {'kid': KID, 'alg': 'dir', 'enc': 'CKM_RSA_AES_KEY_WRAP'}
    assert '=' not in doc['ciphertext'] and '+' not in doc['ciphertext'] and '/' not in doc['ciphertext']
    assert byok_file.parse(json.dumps(doc)).ciphertext == ciphertext


def test_parse_accepts_padded_base64url_as_other_tools_write_it():
    ct = os.urandom(256 + 40)
    doc = json.loads(byok_file.build(KID, ct, 'x'))
    doc['ciphertext'] += '=' * (-len(doc['ciphertext']) % 4)
    assert byok_file.parse(json.dumps(doc)).ciphertext == ct


@pytest.mark.parametrize('mutate, needle', [
    (lambda d: d.update(schema_version='2.0'), 'schema_version'),
    (lambda d: d['header'].update(alg='RSA-OAEP'), 'header.alg'),
    (lambda d: d['header'].update(enc='A256KW'), 'header.enc'),
    (lambda d: d['header'].update(kid='https://contoso.vault.azure.net/keys/byok-kek'), 'no version'),
    (lambda d: d['header'].update(kid='not a kid'), 'not a Key Vault key identifier'),
    (lambda d: d.update(ciphertext=d['ciphertext'].replace('-', '+').replace('_', '/') + '+/'), 'base64url'),
    (lambda d: d.update(ciphertext=d['ciphertext'][:100]), 'truncated'),
    (lambda d: d.pop('header'), 'no header'),
])
def test_parse_names_what_is_wrong(mutate, needle):
    doc = json.loads(byok_file.build(KID, b'\xfb' * 296, 'x'))
    mutate(doc)
    with pytest.raises(byok_file.ByokFormatError) as exc:
        byok_file.parse(json.dumps(doc))
    assert needle in str(exc.value)


def test_parse_refuses_non_json():
    with pytest.raises(byok_file.ByokFormatError, match='not JSON'):
        byok_file.parse(b'{"schema_version": "1.0.0", "hea')


def test_parse_kid():
    assert byok_file.parse_kid(KID) == ('https://contoso.vault.azure.net', 'byok-kek', '0123456789abcdef0123456789abcdef')


@pytest.mark.parametrize('name', ['', 'a' * 128, 'has_underscore', 'spa ce', 'dot.name'])
def test_invalid_key_names(name):
    with pytest.raises(byok_file.ByokFormatError, match='1-127 characters'):
        byok_file.validate_key_name(name)


def test_atomic_write_mode_and_no_leftovers(tmp_path):
    dest = tmp_path / 'k.byok'
    byok_file.atomic_write(str(dest), b'data', mode=0o600)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert os.listdir(tmp_path) == ['k.byok']


def test_sidecar_roundtrip_and_remove(tmp_path):
    dest = str(tmp_path / 'k.byok')
    byok_file.atomic_write(dest, byok_file.build(KID, b'\x01' * 296, 'x'))
    byok_file.write_sidecar(dest, {'fingerprint': 'ab'})
    assert byok_file.read_sidecar(dest) == {'fingerprint': 'ab'}
    assert byok_file.remove(dest)
    assert os.listdir(tmp_path) == []
