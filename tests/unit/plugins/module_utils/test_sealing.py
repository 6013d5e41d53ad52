# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which HSM keys a host seals after the transfer, and what its report rows say (module_utils/sealing.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.byok.keyvault.plugins.module_utils.sealing import seal_items, sealed_rows

PLAN = {'keys': [{'label': 'a', 'id': '0a'}, {'label': 'b'}, {'label': 'c'}]}


def row(label, result, match=True, name=None):
    return {'label': label, 'name': name or label, 'result': result, 'match': match, 'hsm_fingerprint': 'fp-' + label,
            'message': ''}


def test_only_keys_every_vault_holds_are_sealed():
    rows = [row('a', 'transferred'), row('a', 'in place', name='a2'),   # two vaults, both hold it
            row('b', 'transferred'), row('b', 'failed', match=False, name='b2'),  # one vault does not
            row('c', 'transferred', match=False)]                          # read back another key
    assert seal_items(rows, PLAN) == [{'label': 'a', 'fingerprint': 'fp-a', 'id': '0a'}]


def test_a_key_hsm_keygen_found_sealed_is_not_sealed_again():
    rows = [row('a', 'in place'), row('b', 'in place')]
    keygen = {'keys': [{'label': 'a', 'sealed': True}, {'label': 'b', 'sealed': False}]}
    assert [i['label'] for i in seal_items(rows, PLAN, keygen)] == ['b']
    out = sealed_rows(rows, keygen, {'skipped': True})
    assert out[0]['hsm_sealed'] is True and out[0]['message'] == 'HSM key sealed (by an earlier run)'


def test_check_mode_counts_keys_the_run_would_transfer():
    rows = [row('a', 'would transfer', match=False)]
    assert seal_items(rows, PLAN) == []
    assert seal_items(rows, PLAN, check_mode=True) == [{'label': 'a', 'fingerprint': 'fp-a', 'id': '0a'}]
    out = sealed_rows(rows, None, {'keys': [{'label': 'a', 'action': 'seal', 'changed': True, 'sealed': False}]}, True)
    assert out[0]['hsm_sealed'] is False and out[0]['message'] == 'HSM key would be sealed'


def test_rows_say_what_the_seal_did_and_a_failed_seal_fails_the_row():
    rows = [row('a', 'transferred'), row('b', 'in place'), row('c', 'failed', match=False)]
    sealed = {'failed': True, 'msg': '1 of 2 keys failed', 'keys': [
        {'label': 'a', 'action': 'seal', 'changed': True, 'sealed': True},
        {'label': 'b', 'failed': True, 'msg': 'PKCS#11 seal failed: check user_pin'}]}
    out = sealed_rows(rows, None, sealed)
    assert [(r['result'], r['hsm_sealed']) for r in out] == [('transferred', True), ('failed', False), ('failed', False)]
    assert out[0]['message'] == 'HSM key sealed (CKA_EXTRACTABLE false)'
    assert out[1]['message'] == ('the vault holds the key, but the HSM key was not sealed: PKCS#11 seal failed: check '
                                 'byok_user_pin; run again to seal it')
    assert out[2]['message'] == ''
    assert rows[1]['result'] == 'in place'  # the input is not changed


def test_a_seal_step_that_failed_as_a_whole_fails_every_row_it_was_for():
    rows = [row('a', 'transferred'), row('b', 'in place', match=False)]
    out = sealed_rows(rows, None, {'failed': True, 'msg': 'login failed'})
    assert out[0]['result'] == 'failed' and 'not sealed: login failed' in out[0]['message']
    assert out[1]['result'] == 'in place' and out[1]['hsm_sealed'] is False
