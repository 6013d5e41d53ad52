# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one-shot (CKM_RSA_AES_KEY_WRAP) and two-step wrap paths of pkcs11_token.HsmToken, end to end.

SoftHSM 2.6.1 has no CKM_RSA_AES_KEY_WRAP, so the token is reached through the test-only proxy
tests/pkcs11_shim/rsa_aes_shim.c (built here when needed), which adds the mechanism and performs it
inside SoftHSM.  Every blob is unwrapped with the openssl command line only:

    openssl pkeyutl -decrypt -inkey kek.pem -in rsa_part -pkeyopt rsa_padding_mode:oaep \
        -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1
    openssl enc -d -id-aes256-wrap-pad -K <aes key hex> -iv A65959A6 -in kwp_part

(OpenSSL 3's enc allows the wrap ciphers by itself; the IV A65959A6 is mandatory - without it enc stops
with "iv undefined" - and -nopad is not needed.)

PKCS#11 runs in a child process (this file run as a script): SoftHSM reads SOFTHSM2_CONF once per
process, and python-pkcs11 keeps a loaded library for the life of the process, so a fresh token in a
tmp dir is only reliable there.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..', '..', '..'))
SHIM_SRC = os.path.join(ROOT, 'tests', 'pkcs11_shim', 'rsa_aes_shim.c')
SHIM_BUILD = os.path.join(ROOT, 'tests', 'pkcs11_shim', 'build.sh')
SHIM_LIB = os.path.join(ROOT, 'build', 'pkcs11_shim', 'librsaaesshim.so')
SOFTHSM_LIB = os.environ.get('BYOK_SHIM_TARGET', '/usr/lib/softhsm/libsofthsm2.so')
PKCS11_HEADER = '/usr/include/p11-kit-1/p11-kit/pkcs11.h'
PIN = '1234'
LABEL = 'combined'
KEK_BITS = 3072
RSA_EXACT_ATTEMPTS = 48  # P(no RSA-2048 key with a PKCS#8 length multiple of 8) = 0.83**48, about 1e-4
CKM_RSA_AES_KEY_WRAP = 0x1054


def _missing():
    """Why this module cannot run here, or None."""
    if not shutil.which(os.environ.get('CC', 'gcc')):
        return 'gcc is not installed (apt-get install gcc): cannot build the CKM_RSA_AES_KEY_WRAP test shim'
    if not os.path.exists(PKCS11_HEADER) and not os.environ.get('PKCS11_INCLUDE'):
        return 'p11-kit/pkcs11.h is absent (apt-get install libp11-kit-dev): cannot build the test shim'
    if not os.path.exists(SOFTHSM_LIB) or not shutil.which('softhsm2-util'):
        return 'SoftHSM2 is not installed (apt-get install softhsm2)'
    if not shutil.which('openssl'):
        return 'the openssl command line is not installed'
    try:
        import pkcs11  # noqa: F401 pylint: disable=unused-import
    except ImportError:
        return 'python-pkcs11 is not installed'
    return None


# scripts/test.sh (make test) sets BYOK_REQUIRE_ALL=1: there a missing tool fails the run instead of skipping this module
if _missing() is not None and os.environ.get('BYOK_REQUIRE_ALL') == '1':
    pytest.fail('BYOK_REQUIRE_ALL=1 and %s (scripts/bootstrap.sh installs it)' % _missing(), pytrace=False)
pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or '')


def _collections_root():
    """The directory that holds ansible_collections/, for the child's PYTHONPATH."""
    from ansible_collections.byok.keyvault.plugins.module_utils import vendors
    path = os.path.abspath(vendors.__file__)
    while os.path.basename(path) != 'ansible_collections':
        path = os.path.dirname(path)
    return os.path.dirname(path)


def openssl(*args, **kwargs):
    proc = subprocess.run(['openssl'] + [str(a) for a in args], input=kwargs.get('data'), capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, 'openssl %s failed (%d): %s' % (' '.join(str(a) for a in args), proc.returncode,
                                                                 proc.stderr.decode(errors='replace'))
    return proc.stdout


# ----------------------------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def shim():
    """Path of the shim, built when absent or older than its source."""
    if not os.path.exists(SHIM_LIB) or os.path.getmtime(SHIM_LIB) < os.path.getmtime(SHIM_SRC):
        proc = subprocess.run(['bash', SHIM_BUILD], capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, 'build.sh failed: %s%s' % (proc.stdout, proc.stderr)
    return SHIM_LIB


@pytest.fixture(scope='module')
def lab(tmp_path_factory, shim):
    """A fresh SoftHSM token and an openssl-made KEK; the child process generates and wraps the keys."""
    d = tmp_path_factory.mktemp('combined')
    (d / 'tokens').mkdir()
    conf = d / 'softhsm2.conf'
    conf.write_text('directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' % (d / 'tokens'))
    env = dict(os.environ, SOFTHSM2_CONF=str(conf), BYOK_SHIM_TARGET=SOFTHSM_LIB)
    env.pop('BYOK_SHIM_FIRMWARE', None)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (_collections_root(), env.get('PYTHONPATH')) if p)
    subprocess.run(['softhsm2-util', '--init-token', '--free', '--label', LABEL, '--pin', PIN, '--so-pin', '5678'],
                   env=env, check=True, capture_output=True, timeout=60)
    kek = d / 'kek.pem'
    openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:%d' % KEK_BITS, '-out', kek)
    results = {}
    for mode, lib in (('shim', shim), ('plain', SOFTHSM_LIB)):
        out = d / ('%s.json' % mode)
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), mode, lib, str(kek), str(out)],
                              env=env, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, 'worker %s failed:\n%s\n%s' % (mode, proc.stdout, proc.stderr)
        with open(str(out)) as f:
            results[mode] = json.load(f)
    results['kek'] = kek
    results['dir'] = d
    return results


def split(blob, kek_bits=KEK_BITS):
    n = kek_bits // 8
    return blob[:n], blob[n:]


def unwrap(lab, blob, name, aes_bits=256):
    """(plaintext, aes key) of a BYOK ciphertext, recovered with the openssl CLI only."""
    work = lab['dir']
    rsa_part, kwp_part = split(blob)
    (work / (name + '.rsa')).write_bytes(rsa_part)
    (work / (name + '.kwp')).write_bytes(kwp_part)
    aes = openssl('pkeyutl', '-decrypt', '-inkey', lab['kek'], '-in', work / (name + '.rsa'),
                  '-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha1', '-pkeyopt', 'rsa_mgf1_md:sha1')
    assert len(aes) == aes_bits // 8
    plain = openssl('enc', '-d', '-id-aes%d-wrap-pad' % aes_bits, '-K', aes.hex(), '-iv', 'A65959A6',
                    '-in', work / (name + '.kwp'))
    return plain, aes


def der_length(data):
    """Length of the DER element at the start of data (header included)."""
    assert data[0] == 0x30
    if data[1] < 0x80:
        return 2 + data[1]
    n = data[1] & 0x7f
    return 2 + n + int.from_bytes(data[2:2 + n], 'big')


def spki_fingerprint(lab, plaintext, name):
    path = lab['dir'] / (name + '.p8')
    path.write_bytes(plaintext)
    return hashlib.sha256(openssl('pkey', '-inform', 'DER', '-in', path, '-pubout', '-outform', 'DER')).hexdigest()


def kcv(aes_key):
    cipher = '-aes-%d-ecb' % (len(aes_key) * 8)
    return hashlib.sha256(openssl('enc', '-e', cipher, '-nopad', '-K', aes_key.hex(), data=b'\x00' * 16)[:16]).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------------------------------

def test_shim_adds_the_mechanism_and_keeps_the_manufacturer(lab):
    shim, plain = lab['shim'], lab['plain']
    assert shim['has_combined'] and not plain['has_combined']
    assert shim['has_two_step'] and plain['has_two_step']
    assert shim['info']['manufacturer'] == plain['info']['manufacturer'] == 'SoftHSM project'
    assert shim['info']['vendor'] == 'softhsm'
    assert shim['info']['library_version'] == plain['info']['library_version']
    assert shim['mechanism_info']['wrap'] and shim['mechanism_info']['max'] >= 4096


def test_auto_picks_combined_with_the_shim_and_two_step_without(lab):
    assert lab['shim']['auto'] == 'combined'
    assert lab['plain']['auto'] == 'two_step'
    assert 'CKM_RSA_AES_KEY_WRAP' in lab['plain']['combined_refused']


@pytest.mark.parametrize('method', ['combined', 'two_step'])
@pytest.mark.parametrize('name', ['rsa3072', 'ec256'])
def test_asymmetric_key_unwraps_to_the_hsm_public_key(lab, name, method):
    key = lab['shim']['keys'][name]
    blob = bytes.fromhex(key[method])
    assert len(blob) > KEK_BITS // 8 + 8
    plain, dummy = unwrap(lab, blob, '%s-%s' % (name, method))
    assert spki_fingerprint(lab, plain, '%s-%s' % (name, method)) == key['fingerprint']


@pytest.mark.parametrize('method', ['combined', 'two_step'])
def test_aes_key_unwraps_to_the_hsm_key(lab, method):
    key = lab['shim']['keys']['aes256']
    plain, dummy = unwrap(lab, bytes.fromhex(key[method]), 'aes256-' + method)
    assert len(plain) == 32  # raw key bytes, nothing appended
    assert kcv(plain) == key['kcv']


def test_combined_and_two_step_differ_only_in_randomness(lab):
    for name, key in lab['shim']['keys'].items():
        a, b = bytes.fromhex(key['combined']), bytes.fromhex(key['two_step'])
        assert len(a) == len(b), name
        assert a != b, name  # fresh AES key and OAEP seed each time


def test_softhsm_zero_pads_ec_p256_two_step(lab):
    plain, dummy = unwrap(lab, bytes.fromhex(lab['shim']['keys']['ec256']['two_step']), 'ec-pad')
    assert der_length(plain) == 67
    assert len(plain) == 72
    assert plain[67:] == b'\x00' * 5
    assert lab['shim']['zero_padding_quirk'] is True


def test_softhsm_zero_padding_also_in_the_combined_path(lab):
    plain, dummy = unwrap(lab, bytes.fromhex(lab['shim']['keys']['ec256']['combined']), 'ec-pad-c')
    assert (len(plain), plain[67:]) == (72, b'\x00' * 5)


def test_no_padding_for_a_pkcs8_length_multiple_of_8(lab):
    exact = lab['shim']['rsa_exact']
    assert exact['fingerprint'], 'no RSA-2048 key with a PKCS#8 length multiple of 8 in %d attempts' % exact['attempts']
    plain, dummy = unwrap(lab, bytes.fromhex(exact['two_step']), 'rsa-exact')
    assert len(plain) % 8 == 0
    assert der_length(plain) == len(plain)
    assert spki_fingerprint(lab, plain, 'rsa-exact') == exact['fingerprint']


def test_shim_checks_the_mechanism_parameters(lab):
    refused = lab['shim']['param_errors']
    assert refused == {'aes_bits_100': 'MechanismParamInvalid', 'oaep_sha256': 'MechanismParamInvalid',
                       'no_param': 'MechanismParamInvalid'}


def test_shim_honours_ulAESKeyBits_128(lab):
    plain, aes = unwrap(lab, bytes.fromhex(lab['shim']['aes128_wrap']), 'ec-aes128', aes_bits=128)
    assert len(aes) == 16
    assert spki_fingerprint(lab, plain, 'ec-aes128') == lab['shim']['keys']['ec256']['fingerprint']


def test_shim_destroys_the_session_aes_key(lab):
    assert lab['shim']['secret_keys_after'] == lab['shim']['secret_keys_before']


# ----------------------------------------------------------------------------------------------------------------
# the child process
# ----------------------------------------------------------------------------------------------------------------

def _worker(mode, lib_path, kek_path, out_path):  # pragma: no cover - runs in a child process
    import ctypes

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
    from pkcs11 import Attribute, ObjectClass
    from pkcs11 import exceptions as p11e

    from ansible_collections.byok.keyvault.plugins.module_utils import pkcs11_token as pt
    from ansible_collections.byok.keyvault.plugins.module_utils import pkcs11_wrap as pw
    from ansible_collections.byok.keyvault.plugins.module_utils import vendors

    with open(kek_path, 'rb') as f:
        kek_private = serialization.load_pem_private_key(f.read(), None)
    kek = kek_private.public_key()
    out = {}
    token = pt.HsmToken(lib_path, token_label=LABEL).open(PIN)
    with token:
        mechs = token.mechanisms
        out['info'] = token.info()
        out['has_combined'] = vendors.CKM_RSA_AES_KEY_WRAP in mechs
        out['has_two_step'] = vendors.CKM_AES_KEY_WRAP_PAD in mechs and vendors.CKM_RSA_PKCS_OAEP in mechs
        out['auto'] = token.wrap_path('EC', 'auto')['method']
        out['zero_padding_quirk'] = token.wrap_path('EC', 'auto')['zero_padded']
        if mode == 'plain':
            try:
                token.wrap_path('RSA', 'combined')
                out['combined_refused'] = ''
            except vendors.VendorError as exc:
                out['combined_refused'] = str(exc)
        else:
            info = token.token.slot.get_mechanism_info(pw.pkcs11_mechanism(CKM_RSA_AES_KEY_WRAP))
            out['mechanism_info'] = {'wrap': bool(int(info.flags) & 0x20000), 'min': info.min_key_length,
                                     'max': info.max_key_length}
            keys = {}
            specs = {'rsa3072': {'key_type': 'RSA', 'key_size': 3072, 'curve': None},
                     'ec256': {'key_type': 'EC', 'key_size': 256, 'curve': 'P-256'},
                     'aes256': {'key_type': 'oct', 'key_size': 256, 'curve': None}}
            for name, spec in specs.items():
                key = token.generate(spec, name)
                keys[name] = {'fingerprint': key.fingerprint, 'kcv': key.kcv,
                              'combined': token.wrap(key, kek, token.wrap_path(spec['key_type'], 'combined')).hex(),
                              'two_step': token.wrap(key, kek, token.wrap_path(spec['key_type'], 'two_step')).hex()}
            out['keys'] = keys

            # An RSA key whose PKCS#8 length is a multiple of 8 (no SoftHSM zero padding): search, bounded
            exact = {'fingerprint': None, 'attempts': 0}
            for attempt in range(RSA_EXACT_ATTEMPTS):
                key = token.generate({'key_type': 'RSA', 'key_size': 2048, 'curve': None}, 'rsa-exact-%d' % attempt)
                blob = token.wrap(key, kek, token.wrap_path('RSA', 'two_step'))
                n = kek.key_size // 8
                aes = kek_private.decrypt(blob[:n], padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None))
                plain = aes_key_unwrap_with_padding(aes, blob[n:])
                exact['attempts'] = attempt + 1
                if der_length(plain) == len(plain):
                    exact.update(fingerprint=key.fingerprint, two_step=blob.hex())
                    break
                token.destroy(key)
            out['rsa_exact'] = exact

            # The shim's own checks, and that it leaves no session AES key behind
            ec = token.find('ec256')

            def secret_keys():
                return len(list(token.session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})))

            out['secret_keys_before'] = secret_keys()
            kek_obj = token._import_kek(kek)
            try:
                errors = {}
                oaep_sha256 = pw._OaepParams(0x250, 0x2, pw.CKZ_DATA_SPECIFIED, None, 0)
                bad_sha256 = pw._RsaAesKeyWrapParams(256, ctypes.pointer(oaep_sha256))
                cases = {'no_param': b'\x00' * 4, 'oaep_sha256': bytes(bad_sha256)}
                with pw.rsa_aes_key_wrap_params(100) as params:
                    cases['aes_bits_100'] = params
                    for case, param in sorted(cases.items()):
                        try:
                            kek_obj.wrap_key(ec.private, mechanism=pw.pkcs11_mechanism(CKM_RSA_AES_KEY_WRAP),
                                             mechanism_param=param)
                            errors[case] = None
                        except p11e.PKCS11Error as exc:
                            errors[case] = type(exc).__name__
                out['param_errors'] = errors
                with pw.rsa_aes_key_wrap_params(128) as params:
                    out['aes128_wrap'] = kek_obj.wrap_key(ec.private, mechanism=pw.pkcs11_mechanism(CKM_RSA_AES_KEY_WRAP),
                                                          mechanism_param=params).hex()
            finally:
                kek_obj.destroy()
            out['secret_keys_after'] = secret_keys()
    with open(out_path, 'w') as f:
        json.dump(out, f)


if __name__ == '__main__':  # pragma: no cover
    _worker(*sys.argv[1:5])
