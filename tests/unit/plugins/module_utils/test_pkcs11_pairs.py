# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An EC key is its private key: on a real SoftHSM2 token (whose EC private keys carry no CKA_EC_POINT), a public
object under the label that is not the private key's own half is found out by a signature, not taken for the key's
identity; a true pair is described as before, and a private key that may not sign is not refused.  The PKCS#11 part
runs in a child process (softhsm_child).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from softhsm_child import NEEDS_SOFTHSM, PIN, SOFTHSM_LIB, run_child

LABEL = 'pairs'

pytestmark = NEEDS_SOFTHSM


def child():
    """In the child process: describe a true pair, a swapped private key and a key that may not sign; print as JSON."""
    from pkcs11 import Attribute, KeyType, ObjectClass
    from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
    from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_session import HsmError
    from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_token import HsmToken

    spec = dict(ki.validate_target('EC', None, 'P-256'), label='a', key_id=None)
    out = {}
    token = HsmToken(SOFTHSM_LIB, LABEL, vendor='softhsm').open(PIN)
    with token:
        made = token.generate(spec, 'true', bytes.fromhex('01'))
        out['true_pair'] = token.find('true', bytes.fromhex('01')).fingerprint == made.fingerprint
        out['private_has_point'] = token._attr(made.private, Attribute.EC_POINT) is not None

        # the private key of 'swapped' destroyed, and another key's private key given its label and id: its public
        # object now stands beside a private key it does not belong to
        first = token.generate(spec, 'swapped', bytes.fromhex('02'))
        other = token.generate(spec, 'other', bytes.fromhex('03'))
        first.private.destroy()
        other.private[Attribute.LABEL] = 'swapped'
        other.private[Attribute.ID] = bytes.fromhex('02')
        try:
            token.find('swapped', bytes.fromhex('02'))
            out['swapped'] = 'described'
        except HsmError as exc:
            out['swapped'] = str(exc)

        # a private key that may not sign proves nothing and is described from its public object, as before
        params = token.session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: ki.CURVES['P-256'][1]}, local=True)
        params.generate_keypair(label='nosign', id=bytes.fromhex('04'), store=True, public_template={Attribute.TOKEN: True},
                                private_template={Attribute.TOKEN: True, Attribute.SIGN: False, Attribute.EXTRACTABLE: True})
        nosign = token.find('nosign', bytes.fromhex('04'))
        out['nosign'] = nosign.fingerprint is not None
        out['nosign_can_sign'] = next(token.session.get_objects({Attribute.LABEL: 'nosign',
                                                                 Attribute.CLASS: ObjectClass.PRIVATE_KEY}))[Attribute.SIGN]
    print(json.dumps(out))


@pytest.fixture(scope='module')
def seen(tmp_path_factory):
    return run_child(tmp_path_factory, __file__, LABEL)


def test_a_true_pair_is_described_by_its_public_object(seen):
    assert seen['true_pair']
    assert not seen['private_has_point']  # SoftHSM: the public object is what the point comes from, so the proof runs


def test_a_public_object_beside_a_private_key_it_does_not_belong_to_is_refused(seen):
    assert 'is not the public half of its private key' in seen['swapped'], seen['swapped']
    assert "EC key 'swapped'" in seen['swapped']


def test_a_private_key_that_may_not_sign_is_described_as_before(seen):
    assert seen['nosign'] and seen['nosign_can_sign'] is False


if __name__ == '__main__':
    child()
