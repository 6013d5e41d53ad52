# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sealing a target key on a real SoftHSM2 token (pkcs11_token.seal / sealed), and CKA_WRAP_WITH_TRUSTED at generation
where the vendor profile says the token supports trusted wrapping keys.

PKCS#11 runs in a child process (this file run as a script), as in test_pkcs11_combined.py: SoftHSM reads
SOFTHSM2_CONF once per process.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import sys

import pytest

SOFTHSM_LIB = '/usr/lib/softhsm/libsofthsm2.so'
PIN = '1234'
LABEL = 'seal'


def _missing():
    if not os.path.exists(SOFTHSM_LIB) or not shutil.which('softhsm2-util'):
        return 'SoftHSM2 is not installed (apt-get install softhsm2)'
    try:
        import pkcs11  # noqa: F401 pylint: disable=unused-import
    except ImportError:
        return 'python-pkcs11 is not installed'
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or '')


def child():
    """In the child process: generate, seal and look again; print what was seen as JSON."""
    from pkcs11 import Attribute, KeyType, ObjectClass
    from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
    from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_keys import seal, sealed
    from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_token import HsmToken

    out = {}
    spec = ki.validate_target('EC', None, 'P-256')
    token = HsmToken(SOFTHSM_LIB, LABEL, vendor='softhsm').open(PIN)
    with token:
        out['profile_default'] = token.profile['trusted_wrapping_keys']
        plain = token.generate(spec, 'plain')
        out['plain_wrap_with_trusted'] = bool(plain.private[Attribute.WRAP_WITH_TRUSTED])
        out['plain_sealed_before'] = sealed(plain)
        out['seal_confirmed'] = seal(token, plain)
        again = token.find('plain')
        out['after'] = {'extractable': again.extractable, 'sealed': sealed(again), 'diffs': again.matches(spec),
                        'as_dict_sealed': again.as_dict()['sealed']}
        token.profile['trusted_wrapping_keys'] = True
        trusted = token.generate(spec, 'trusted')
        out['trusted_wrap_with_trusted'] = bool(trusted.private[Attribute.WRAP_WITH_TRUSTED])
        # a key that was never extractable (made by another tool) is a difference, not a sealed key
        params = token.session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: ki.CURVES['P-256'][1]}, local=True)
        params.generate_keypair(label='born', store=True, public_template={Attribute.TOKEN: True},
                                private_template={Attribute.TOKEN: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
        born = token.find('born')
        out['born'] = {'sealed': sealed(born), 'diffs': born.matches(spec)}
        key = token.session.get_key(object_class=ObjectClass.PRIVATE_KEY, label='plain')
        out['objects'] = bool(key)
    print(json.dumps(out))


@pytest.fixture(scope='module')
def seen(tmp_path_factory):
    base = tmp_path_factory.mktemp('seal')
    (base / 'tokens').mkdir()
    conf = base / 'softhsm2.conf'
    conf.write_text('directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' % (base / 'tokens'))
    env = dict(os.environ, SOFTHSM2_CONF=str(conf), PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run(['softhsm2-util', '--init-token', '--free', '--label', LABEL, '--pin', PIN, '--so-pin', '5678'], env=env,
                   check=True, capture_output=True)
    proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_no_profile_asks_for_trusted_wrapping_by_default(seen):
    assert seen['profile_default'] is False and seen['plain_wrap_with_trusted'] is False


def test_a_profile_with_trusted_wrapping_keys_generates_wrap_with_trusted(seen):
    assert seen['trusted_wrap_with_trusted'] is True


def test_a_sealed_key_is_not_extractable_and_no_difference(seen):
    assert seen['plain_sealed_before'] is False and seen['seal_confirmed'] is True
    assert seen['after'] == {'extractable': False, 'sealed': True, 'diffs': [], 'as_dict_sealed': True}


def test_a_key_never_extractable_is_still_a_difference(seen):
    assert seen['born']['sealed'] is False
    assert seen['born']['diffs'] == ['CKA_EXTRACTABLE is false (the HSM cannot wrap it)']


if __name__ == '__main__':
    child()
