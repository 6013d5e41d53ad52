# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import multiprocessing
import os
import resource
import stat

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils import byok_file
from ansible_collections.byok.keyvault.plugins.module_utils import hsm_backend

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


def _write_past_the_file_size_limit(write, limit):
    """In a forked child: write() with files limited to `limit` bytes (a disk that fills up during the write).
    Exit 0 when the write failed with EFBIG, as a full disk fails it; 1 when it did not fail; 2 on another error."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        write()
    except OSError as exc:
        os._exit(0 if exc.errno == errno.EFBIG else 2)
    except BaseException:
        os._exit(2)
    os._exit(1)


def _fails_past(limit, write):
    child = multiprocessing.get_context('fork').Process(target=_write_past_the_file_size_limit, args=(write, limit))
    child.start()
    child.join(60)
    return child.exitcode


def test_a_write_that_fails_halfway_leaves_the_previous_file_whole(tmp_path):
    """A .byok is either the previous whole file or the new whole file: a write that fails halfway (disk full) leaves
    the previous one as it was, and no partial file beside it."""
    dest = tmp_path / 'k.byok'
    old = byok_file.build(KID, b'\x01' * 296, 'old')
    byok_file.atomic_write(str(dest), old)
    new = byok_file.build(KID, b'\x02' * 4096, 'new')
    assert _fails_past(1024, lambda: byok_file.atomic_write(str(dest), new)) == 0, 'the write did not fail as a full disk does'
    assert dest.read_bytes() == old and os.listdir(str(tmp_path)) == ['k.byok']


def test_a_reader_of_the_previous_file_never_sees_a_mix(tmp_path):
    """The new file replaces the name (rename); a process reading the previous file (an import at the same time) goes
    on reading the previous content, whole."""
    dest = tmp_path / 'k.byok'
    old = byok_file.build(KID, b'\x01' * 296, 'old')
    byok_file.atomic_write(str(dest), old)
    with open(str(dest), 'rb') as reader:
        new = byok_file.build(KID, b'\x02' * 296, 'new')
        byok_file.atomic_write(str(dest), new)
        assert reader.read() == old
    assert dest.read_bytes() == new and stat.S_IMODE(dest.stat().st_mode) == 0o600


class _Key(object):
    key_type, key_size, curve, kcv = 'EC', None, 'P-256', None
    fingerprint = 'ab' * 32


class _Token(object):
    """The HSM side of byok_wrap, as far as wrap_key uses it: one EC key, wrapped into `ciphertext`."""
    profile = {'display_name': 'test token'}

    def __init__(self, ciphertext):
        self.ciphertext = ciphertext

    def find(self, label, key_id=None):
        return _Key()

    def info_basic(self):
        return {'firmware_version': None}

    def info(self):
        return dict((k, 'x') for k in ('label', 'vendor', 'manufacturer', 'model', 'serial', 'firmware_version',
                                       'library_version'))

    def wrap_path(self, key_type, wrap_method):
        return {'zero_padded': False, 'method': 'two_step', 'mechanism_name': 'CKM_AES_KEY_WRAP_PAD'}

    def wrap(self, key, kek_public, path):
        return self.ciphertext

    def generator(self, name):
        return name


def test_a_rewrap_that_fails_while_writing_keeps_the_previous_byok(tmp_path):
    """byok_wrap rewrapping a key (force) onto a disk that fills up: the previous .byok stays whole and no partial
    file is left, so a later import reads either the previous wrap or none."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    kek = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    dest = tmp_path / 'k.byok'
    item = {'label': 'k', 'dest': str(dest)}
    hsm_backend.wrap_key(_Token(b'\x01' * 296), item, kek, KID, 'auto', True, False)
    old = dest.read_bytes()
    assert byok_file.parse(old).ciphertext == b'\x01' * 296
    rewrap = _Token(b'\x02' * 8192)
    assert _fails_past(4096, lambda: hsm_backend.wrap_key(rewrap, item, kek, KID, 'auto', True, False)) == 0, \
        'the rewrap did not fail as on a full disk'
    assert dest.read_bytes() == old
    assert sorted(os.listdir(str(tmp_path))) == ['k.byok', 'k.byok.json']


def test_sidecar_roundtrip_and_remove(tmp_path):
    dest = str(tmp_path / 'k.byok')
    byok_file.atomic_write(dest, byok_file.build(KID, b'\x01' * 296, 'x'))
    byok_file.write_sidecar(dest, {'fingerprint': 'ab'})
    assert byok_file.read_sidecar(dest) == {'fingerprint': 'ab'}
    assert byok_file.remove(dest)
    assert os.listdir(tmp_path) == []
