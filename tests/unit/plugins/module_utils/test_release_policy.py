# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secure Key Release: the policy grammar and Azure's rules, checked before any vault call, and the bytes sent."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import json

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils import release_policy as skr

# Microsoft's default release policy of a confidential VM key (the shape its documentation shows)
CVM = {'version': '1.0.0', 'anyOf': [{'authority': 'https://sharedeus.eus.attest.azure.net', 'allOf': [
    {'claim': 'x-ms-isolation-tee.x-ms-attestation-type', 'equals': 'sevsnpvm'},
    {'claim': 'x-ms-isolation-tee.x-ms-compliance-status', 'equals': 'azure-compliant-cvm'}]}]}


def test_a_sound_policy_has_no_problem_and_every_operator_of_the_grammar_is_accepted():
    assert skr.shape_problems(CVM) == []
    doc = copy.deepcopy(CVM)
    doc['anyOf'][0]['allOf'] = [{'claim': 'c%d' % i, op: (True if op == 'exists' else 'v')} for i, op in enumerate(skr.OPERATORS)]
    doc['anyOf'][0]['allOf'].append({'anyOf': [{'claim': 'x', 'equals': 1}, {'claim': 'y', 'greater': 2}]})
    assert skr.shape_problems(doc) == []


@pytest.mark.parametrize('change, where, words', [
    (lambda d: d.update(version='2.0'), 'version', 'use "1.0.0"'),
    (lambda d: d.pop('anyOf'), 'anyOf', 'exactly one of anyOf or allOf'),
    (lambda d: d.update(allOf=d['anyOf']), 'anyOf', 'exactly one of anyOf or allOf'),
    (lambda d: d.update(anyOf=[]), 'anyOf', 'non-empty list of authorities'),
    (lambda d: d['anyOf'][0].update(authority='http://x.attest.azure.net'), 'anyOf[0].authority', 'https URL'),
    (lambda d: d['anyOf'][0].pop('allOf'), 'anyOf[0]', 'exactly one of allOf or anyOf'),
    (lambda d: d['anyOf'][0]['allOf'][1].pop('equals'), 'anyOf[0].allOf[1]', 'exactly one operator'),
    (lambda d: d['anyOf'][0]['allOf'][1].update(notEquals='x'), 'anyOf[0].allOf[1]', 'exactly one operator'),
    (lambda d: d['anyOf'][0]['allOf'][0].pop('claim'), 'anyOf[0].allOf[0].claim', 'is missing'),
    (lambda d: d['anyOf'][0]['allOf'][0].update(equal='x'), 'anyOf[0].allOf[0].equal', 'not a member of a claim condition'),
    (lambda d: d['anyOf'][0]['allOf'][0].update(equals=['a']), 'anyOf[0].allOf[0].equals', 'a string, a number or a boolean'),
    (lambda d: d.update(anyof=[]), 'anyof', 'not a member of a release policy'),
])
def test_each_break_of_the_grammar_is_found_where_it_is(change, where, words):
    doc = copy.deepcopy(CVM)
    change(doc)
    found = skr.shape_problems(doc)
    assert any(w == where and words in m for w, m in found), found


def test_the_policy_is_read_from_a_mapping_json_text_or_a_file(tmp_path):
    assert skr.load(CVM) is CVM
    assert skr.load(json.dumps(CVM)) == CVM
    path = tmp_path / 'cvm.json'
    path.write_text(json.dumps(CVM))
    assert skr.load(str(path), lambda p: open(p).read()) == CVM
    with pytest.raises(skr.PolicyError, match='cannot be read'):
        skr.load(str(tmp_path / 'missing.json'), lambda p: open(p).read())
    path.write_text('{"version": ')
    with pytest.raises(skr.PolicyError, match='is not JSON'):
        skr.load(str(path), lambda p: open(p).read())
    with pytest.raises(skr.PolicyError, match='not an object'):
        skr.load('[1]')
    with pytest.raises(skr.PolicyError, match='a list'):
        skr.load([CVM])


def test_azure_refusals_come_before_any_vault_call():
    assert skr.protection_problems('RSA', 'premium', True, CVM, False) == []
    assert skr.protection_problems('RSA', 'premium', False, None, False) == []
    (field, message), = skr.protection_problems('RSA', 'premium', True, None, False)
    assert field == 'release_policy' and skr.NEEDS_POLICY in message
    (field, message), = skr.protection_problems('EC', 'premium', False, CVM, False)
    assert field == 'release_policy' and skr.NOT_EXPORTABLE in message
    (field, message), = skr.protection_problems('EC', 'premium', False, None, True)
    assert field == 'release_policy_immutable'
    # the key types each vault flavour can release
    assert skr.protection_problems('oct', 'managed_hsm', True, CVM, False) == []
    (field, message), = skr.protection_problems('oct', 'premium', True, CVM, False)
    assert field == 'exportable' and 'RSA, EC' in message


def test_the_policy_goes_to_the_vault_as_one_canonical_json_document():
    shuffled = json.loads(json.dumps(CVM), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert skr.canonical(shuffled) == skr.canonical(CVM)
    wire = skr.wire(CVM, True)
    data = base64.urlsafe_b64decode(wire['data'] + '=' * (-len(wire['data']) % 4))
    assert json.loads(data.decode('utf-8')) == CVM and wire['immutable'] is True
    assert wire['contentType'] == 'application/json; charset=utf-8'
    assert skr.held(data, True) == {'policy': CVM, 'immutable': True}
    assert skr.held(b'not json', False)['policy'] is None
    assert skr.summary(skr.held(data, True)) == 'https://sharedeus.eus.attest.azure.net (immutable)'


def test_a_policy_the_vault_gives_back_with_text_values_and_a_trailing_slash_is_the_same_policy():
    stated = {'policy': {'version': '1.0.0', 'anyOf': [{'authority': 'https://a.attest.azure.net', 'allOf': [
        {'claim': 'x-ms-sevsnpvm-is-debuggable', 'equals': False}, {'claim': 'svn', 'greaterOrEquals': 2}]}]},
        'immutable': False}
    held = {'policy': {'version': '1.0.0', 'anyOf': [{'authority': 'https://a.attest.azure.net/', 'allOf': [
        {'claim': 'x-ms-sevsnpvm-is-debuggable', 'equals': 'false'}, {'claim': 'svn', 'greaterOrEquals': '2'}]}]},
        'immutable': False}
    assert skr.same(stated, held) and skr.same(None, None) and not skr.same(stated, None)
    assert not skr.same(stated, dict(held, immutable=True))
    other = {'policy': dict(held['policy'], anyOf=[dict(held['policy']['anyOf'][0], authority='https://b.attest.azure.net')]),
             'immutable': False}
    assert not skr.same(stated, other)


def test_the_differences_of_two_policies_name_the_place_and_both_values():
    a = {'policy': {'version': '1.0.0', 'anyOf': [{'authority': 'https://a', 'allOf': [{'claim': 'c', 'equals': 'sevsnpvm'}]}]},
         'immutable': False}
    b = {'policy': {'version': '1.0.0', 'anyOf': [{'authority': 'https://a', 'allOf': [{'claim': 'c', 'equals': 'tdxvm'}]}]},
         'immutable': False}
    assert skr.differences(a, b) == 'anyOf[0].allOf[0].equals sevsnpvm -> tdxvm'
    assert skr.differences(a, dict(a, immutable=True)) == 'immutable false -> true'
    assert skr.differences(None, a) == 'none -> https://a'
