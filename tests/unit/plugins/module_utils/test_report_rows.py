# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Report rows derived from what each step did: proofs, signature checks, stopped hosts, vault read failures, width."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.byok.keyvault.plugins.module_utils import fleet, report

URL = 'https://contoso.vault.azure.net'


def entry(name, vault='prod', **extra):
    e = {'host': 'hsm1', 'name': name, 'vault': vault, 'vault_url': URL, 'label': name, 'key_type': 'EC', 'key_size': None,
         'curve': 'P-256', 'key_ops': ['sign'], 'force': False}
    e.update(extra)
    return e


def test_an_aes_key_known_only_by_the_collections_tag_is_unverified_never_a_match():
    held = {'name': 'aes', 'exists': True, 'kid': URL + '/keys/aes/01', 'kcv': None, 'tags': {'byok-kcv': 'a9ec6d'}}
    enc = {'name': 'aes2', 'exists': True, 'kid': URL + '/keys/aes2/01', 'kcv': 'b1b2b3', 'tags': {'byok-kcv': 'b1b2b3'}}
    host = {'keys': [entry('aes', key_type='oct', key_size=256, curve=None), entry('aes2', key_type='oct', key_size=256, curve=None)],
            'vaults': ['prod']}
    state = {'vaults': [{'name': 'prod', 'keys': [held, enc]}]}
    keygen = {'keys': [{'label': 'aes', 'fingerprint': 'a9ec6d'}, {'label': 'aes2', 'fingerprint': 'b1b2b3'}]}
    work = fleet.decide(host, keygen, state, {'results': []})
    rows = report.host_rows(work, 'hsm1', keygen, vault_state=state)
    assert [r['result'] for r in rows] == ['in place', 'in place']
    assert rows[0]['proof'] == report.PROOF_TAG and rows[0]['match'] is None and report.check_mark(rows[0]) == 'unverified'
    assert rows[1]['proof'] == report.PROOF_VAULT_KCV and rows[1]['match'] is True and report.check_mark(rows[1]) == 'match'
    table = report.table(rows, 72)
    assert 'unverified' in table[1] and ' match ' not in table[1] and ' match ' in table[2]


def test_a_wrong_pin_keeps_the_vault_version_of_a_held_key_and_fails_only_the_missing_one():
    host = {'keys': [entry('held'), entry('new')], 'vaults': ['prod']}
    state = {'vaults': [{'name': 'prod', 'keys': [{'name': 'held', 'exists': True, 'kid': URL + '/keys/held/v1', 'fingerprint': 'f1'},
                                                  {'name': 'new', 'exists': False}]}]}
    keygen = {'failed': True, 'msg': 'hsm1: the user PIN is wrong'}
    rows = report.host_rows(None, 'hsm1', keygen, vault_state=state, host_plan=host, failure=keygen['msg'])
    held, new = rows
    assert held['result'] == 'not done' and held['kid'] == URL + '/keys/held/v1' and held['match'] is None, held
    assert new['result'] == 'failed' and 'PIN' in new['message'], new
    assert report.details(rows)[0].endswith(URL + '/keys/held/v1')


def test_a_vault_read_failure_marks_only_its_keys_with_its_own_message():
    host = {'keys': [entry('a'), entry('b', vault='dr'), entry('c', vault='dr2')], 'vaults': ['prod', 'dr', 'dr2']}
    state = {'failed': True, 'vaults': [
        {'name': 'prod', 'keys': [{'name': 'a', 'exists': True, 'kid': URL + '/keys/a/1', 'fingerprint': 'f'}]},
        {'name': 'dr', 'failed': True, 'msg': 'dr: forbidden', 'keys': [{'name': 'b', 'failed': True, 'msg': 'dr: forbidden'}]},
        {'name': 'dr2', 'failed': True, 'msg': 'dr2: unreachable', 'keys': [{'name': 'c', 'failed': True, 'msg': 'dr2: unreachable'}]}]}
    stop = 'vault dr could not be read: dr: forbidden; vault dr2 could not be read: dr2: unreachable'
    rows = dict((r['name'], r) for r in report.host_rows(None, 'hsm1', vault_state=state, host_plan=host, failure=stop))
    assert rows['b']['result'] == 'failed' and rows['b']['message'] == 'vault dr could not be read: dr: forbidden'
    assert rows['c']['result'] == 'failed' and rows['c']['message'] == 'vault dr2 could not be read: dr2: unreachable'
    assert rows['a']['result'] == 'not done' and rows['a']['kid'] == URL + '/keys/a/1'


def test_a_step_that_did_not_run_is_not_done_and_the_signature_says_what_happened():
    host = {'keys': [entry('k')], 'vaults': ['prod']}
    rows = report.host_rows(None, 'hsm1', host_plan=host, failure='the play stopped', verify_signature=True)
    assert rows[0]['result'] == 'not done' and 'the vault read did not run' in rows[0]['message']
    state = {'vaults': [{'name': 'prod', 'keys': [{'name': 'k', 'exists': False}]}]}
    keygen = {'keys': [{'label': 'k', 'fingerprint': 'f1'}]}
    keks = {'results': [{'item': {'name': 'prod'}, 'kid': URL + '/keys/kek/1', 'fingerprint': 'kf'}]}
    work = fleet.decide(host, keygen, state, keks)
    imports = {'vaults': [{'name': 'prod', 'keys': [{'name': 'k', 'changed': True, 'kid': URL + '/keys/k/2', 'fingerprint': 'f1',
                                                     'identity_source': 'vault-jwk',
                                                     'proof': {'method': 'signature', 'algorithm': 'ES256', 'verified': True}}]}]}
    row = report.host_rows(work, 'hsm1', keygen, imports, None, keks, state, host, None, True)[0]
    assert row['result'] == 'transferred' and row['signature'] == 'verified (ES256)' and row['proof'] == report.PROOF_JWK
    assert row['kek_kid'] == URL + '/keys/kek/1' and row['kek_fingerprint'] == 'kf'
    assert report.vaults_of([row]) == {'prod': {'url': URL, 'kek_kid': URL + '/keys/kek/1', 'kek_fingerprint': 'kf'}}
    row = report.host_rows(work, 'hsm1', keygen, imports, None, keks, state, host)[0]
    assert row['signature'] == 'not asked'
    wrapped = {'failed': True, 'msg': 'hsm1: wrap refused'}
    row = report.host_rows(work, 'hsm1', keygen, None, wrapped, keks, state, host, 'hsm1: wrap refused')[0]
    assert row['result'] == 'failed' and 'wrap refused' in row['message']


def test_outside_rows_do_not_fail_the_run_and_the_table_fits_its_width():
    inside = report.new_row(entry('a-very-long-key-name-that-would-not-fit-at-all'), 'hsm-with-a-long-name.example.com',
                            result='failed', message='x' * 200)
    outside = report.outside_rows({'hsm2': [{'name': 'b', 'vault': 'prod', 'key_type': 'EC', 'curve': 'P-256'}]})
    rows = [inside] + outside
    assert outside[0]['result'] == 'not done' and outside[0]['in_run'] is False
    assert report.not_done(rows) == [inside]
    lines = report.table(rows, 72)
    assert all(len(line) <= 72 for line in lines), lines
    assert len([line for line in lines if line.startswith('a-very')]) == 1
    assert "not in this run's --limit: 1" in lines[-1]
    wide = report.table(rows, 200)[0]
    assert 'PROOF' in wide and 'PROOF' not in lines[0]
