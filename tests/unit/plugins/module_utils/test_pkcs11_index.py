# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One listing of the token for a step over many keys (pkcs11_keys.index/indexed, hsm_backend.ensure_key's known), on a
real SoftHSM2 token: the index finds what the per-label search finds, a look in check mode searches nothing more, and a
key another run made after the listing is still found before anything is generated (never a second key of a label).
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
    print(json.dumps(out))


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


if __name__ == '__main__':
    child()
