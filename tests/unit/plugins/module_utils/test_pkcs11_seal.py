# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sealing a target key on a real SoftHSM2 token (pkcs11_token.seal / sealed), and CKA_WRAP_WITH_TRUSTED at generation
where the vendor profile says the token supports trusted wrapping keys.
The PKCS#11 part runs in a child process (softhsm_child).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from softhsm_child import NEEDS_SOFTHSM, PIN, SOFTHSM_LIB, run_child

LABEL = 'seal'

pytestmark = NEEDS_SOFTHSM


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
    return run_child(tmp_path_factory, __file__, LABEL)


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
