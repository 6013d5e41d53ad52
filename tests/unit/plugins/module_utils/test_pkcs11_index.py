# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One listing of the token for a step over many keys (pkcs11_keys.index/indexed, hsm_backend.ensure_key's known), on a
real SoftHSM2 token: the index finds what the per-label search finds, a look in check mode searches nothing more, and a
key another run made after the listing is still found before anything is generated (never a second key of a label).
And what a listing finds of an EC key is its private key's: a public object beside it is the key's only once the
private key's signature verifies with it.
The PKCS#11 part runs in a child process (softhsm_child).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from softhsm_child import NEEDS_SOFTHSM, PIN, SOFTHSM_LIB, run_child

LABEL = 'index'

pytestmark = NEEDS_SOFTHSM


def child():
    """In the child process: list, look and generate with and without an index; print what was seen as JSON."""
    from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
    from ansible_collections.byok.keyvault.plugins.module_utils.hsm_backend import ensure_key
    from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_token import HsmToken

    spec = dict(ki.validate_target('EC', None, 'P-256'), label='a', key_id=None)
    out = {}
    token = HsmToken(SOFTHSM_LIB, LABEL, vendor='softhsm').open(PIN)
    with token:
        token.generate(spec, 'a')
        token.generate(spec, 'b', bytes.fromhex('0b'))
        index = token.index()
        out['labels'] = sorted(index)
        out['same'] = all(sorted(o.handle for o in token.indexed(index, lbl)) == sorted(o.handle for o in token.labelled(lbl))
                          for lbl in ('a', 'b', 'none'))
        out['by_id'] = len(token.indexed(index, 'b', bytes.fromhex('0b'))), len(token.indexed(index, 'b', bytes.fromhex('0c')))

        searched = []
        real = token.labelled
        token.labelled = lambda *args, **kwargs: searched.append(args) or real(*args, **kwargs)
        look = ensure_key(token, spec, 'fail', True, known=token.indexed(index, 'a'))
        absent = ensure_key(token, dict(spec, label='c'), 'fail', True, known=token.indexed(index, 'c'))
        out['check_mode'] = [look['action'], absent['action'], len(searched)]

        # another run makes 'd' after this run listed the token: the listing says nothing of it, the search under the
        # lock finds it, and it is kept, not generated a second time
        token.generate(spec, 'd')
        made = ensure_key(token, dict(spec, label='d'), 'fail', False, known=token.indexed(index, 'd'))
        out['late'] = [made['action'], len(searched), len(token.labelled('d'))]
        out['found_is_the_key'] = made['found'].fingerprint == made['key']['fingerprint']

        # an entry that gives an id the token's key of that label does not have: named, never taken for no key
        from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_session import HsmError
        wrong_id = []
        for check_mode in (True, False):
            try:
                ensure_key(token, dict(spec, label='b', key_id=bytes.fromhex('aa')), 'fail', check_mode,
                           known=token.indexed(index, 'b', bytes.fromhex('aa')))
                wrong_id.append('no error')
            except HsmError as exc:
                wrong_id.append(str(exc))
        out['wrong_id'] = wrong_id
        out['b_keys'] = len(token.labelled('b'))
        out['pairs'] = pairs(token, ki.validate_target('EC', None, 'P-256'), HsmError)
    print(json.dumps(out))


def pairs(token, target, refusal):
    """An EC key is its private key (SoftHSM's EC private keys carry no CKA_EC_POINT): a true pair, a public object
    beside a private key of another pair (one of the two replaced), and a private key that may not sign."""
    from pkcs11 import Attribute, KeyType, ObjectClass
    from ansible_collections.byok.keyvault.plugins.module_utils import key_identity
    spec = dict(target, label='p', key_id=None)
    seen = {}
    made = token.generate(spec, 'true', bytes.fromhex('01'))
    seen['true_pair'] = token.find('true', bytes.fromhex('01')).fingerprint == made.fingerprint
    seen['private_has_point'] = token._attr(made.private, Attribute.EC_POINT) is not None
    # the private key of 'swapped' destroyed, and another pair's private key given its label and id
    first, other = token.generate(spec, 'swapped', bytes.fromhex('02')), token.generate(spec, 'other', bytes.fromhex('03'))
    first.private.destroy()
    other.private[Attribute.LABEL] = 'swapped'
    other.private[Attribute.ID] = bytes.fromhex('02')
    try:
        seen['swapped'] = 'described as %s' % token.find('swapped', bytes.fromhex('02')).fingerprint
    except refusal as exc:
        seen['swapped'] = str(exc)
    params = token.session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: key_identity.CURVES['P-256'][1]},
                                                    local=True)
    params.generate_keypair(label='nosign', id=bytes.fromhex('04'), store=True, public_template={Attribute.TOKEN: True},
                            private_template={Attribute.TOKEN: True, Attribute.SIGN: False, Attribute.EXTRACTABLE: True})
    seen['nosign'] = token.find('nosign', bytes.fromhex('04')).fingerprint is not None
    seen['nosign_can_sign'] = next(token.session.get_objects({Attribute.LABEL: 'nosign',
                                                              Attribute.CLASS: ObjectClass.PRIVATE_KEY}))[Attribute.SIGN]
    return seen


@pytest.fixture(scope='module')
def seen(tmp_path_factory):
    return run_child(tmp_path_factory, __file__, LABEL)


def test_the_index_finds_what_the_search_finds(seen):
    assert seen['labels'] == ['a', 'b'] and seen['same'] and seen['by_id'] == [2, 0]


def test_a_look_in_check_mode_searches_nothing_more(seen):
    assert seen['check_mode'] == ['keep', 'generate', 0]


def test_a_key_made_after_the_listing_is_found_before_anything_is_generated(seen):
    assert seen['late'] == ['keep', 1, 2], seen['late']  # one search, one private and one public object: no second key
    assert seen['found_is_the_key']


def test_an_id_the_key_of_its_label_does_not_have_is_named_and_nothing_is_generated(seen):
    for message in seen['wrong_id']:
        assert message.startswith("key 'b' on token 'index' has id 0b, not aa as its entry gives; give id: 0b"), seen['wrong_id']
    assert seen['b_keys'] == 2  # still one key pair under the label


def test_an_ec_key_is_described_by_its_public_object_once_the_private_key_signs_for_it(seen):
    assert seen['pairs']['true_pair']
    assert not seen['pairs']['private_has_point']  # SoftHSM: the point comes from the public object, so the proof runs


def test_a_public_object_beside_a_private_key_it_does_not_belong_to_is_refused(seen):
    message = seen['pairs']['swapped']
    assert "EC key 'swapped'" in message and 'is not the public half of its private key' in message, message


def test_a_private_key_that_may_not_sign_is_described_as_before(seen):
    assert seen['pairs']['nosign'] and seen['pairs']['nosign_can_sign'] is False


if __name__ == '__main__':
    child()
