# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transfer role's steps over plain data, and the report rows they end in."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.byok.keyvault.plugins.module_utils import fleet, report

VAULT = {'name': 'prod', 'url': 'https://contoso.vault.azure.net', 'kind': 'premium', 'kek_name': 'byok-kek', 'kek_size': 4096}
DR = {'name': 'dr', 'url': 'https://contoso-dr.vault.azure.net', 'kind': 'premium', 'kek_name': 'byok-kek', 'kek_size': 4096}


def entry(name, **extra):
    e = {'host': 'hsm1', 'name': name, 'vault': 'prod', 'vault_url': VAULT['url'], 'label': name, 'key_type': 'RSA',
         'key_size': 3072, 'curve': None, 'key_ops': ['sign', 'verify'], 'tags': None, 'enabled': True, 'not_before': None,
         'expires_on': None, 'force': False}
    e.update(extra)
    return e


HOST = {'keys': [entry('app-rsa'), entry('app-ec', key_type='EC', key_size=256, curve='P-256')], 'vaults': ['prod'],
        'regenerate': 'fail'}
PLAN = {'hosts': {'hsm1': HOST}, 'vaults': [VAULT]}
KEK = {'results': [{'item': VAULT, 'kid': 'https://contoso.vault.azure.net/keys/byok-kek/01', 'public_key_pem': 'PEM',
                    'fingerprint': 'kf'}]}
KEYGEN = {'keys': [{'label': 'app-rsa', 'fingerprint': 'f1', 'key_size': 3072}, {'label': 'app-ec', 'fingerprint': 'f2'}],
          'token': {'label': 'tok', 'serial': '1'}}


def state(*keys, **vaults):
    """keyvault_key_info's result with vaults: prod holding keys (and other vaults as given)."""
    out = [{'name': 'prod', 'vault_url': VAULT['url'], 'changed': False, 'keys': list(keys)}]
    for name, held in vaults.items():
        out.append({'name': name, 'vault_url': 'https://%s.vault.azure.net' % name, 'changed': False, 'keys': held})
    return {'changed': False, 'vaults': out}


def test_a_fleet_in_place_needs_no_kek_and_moves_nothing():
    held = state({'name': 'APP-RSA', 'exists': True, 'fingerprint': 'f1', 'kid': 'k1'},
                 {'name': 'app-ec', 'exists': True, 'fingerprint': 'f2', 'kid': 'k2'})
    assert fleet.kek_vaults(PLAN, held) == []
    work = fleet.decide(HOST, KEYGEN, held, {'results': []})
    assert [k['action'] for k in work['keys']] == ['keep', 'keep'] and work['wrap_keys'] == [] and work['wrap_keks'] == []
    rows = report.host_rows(work, 'hsm1', KEYGEN)
    assert [r['result'] for r in rows] == ['in place', 'in place'] and all(r['match'] for r in rows)
    assert report.table(rows)[-1] == 'nothing to transfer: all 2 keys are already in their vaults'
    assert report.summary(rows[:1]) == 'nothing to transfer: the key is already in its vault'


def test_a_missing_key_moves_and_another_key_is_a_conflict_unless_forced():
    held = state({'name': 'app-rsa', 'exists': False}, {'name': 'app-ec', 'exists': True, 'fingerprint': 'other'})
    assert fleet.kek_vaults(PLAN, held) == [VAULT]
    work = fleet.decide(HOST, KEYGEN, held, KEK)
    assert [k['action'] for k in work['keys']] == ['import', 'conflict']
    kid = KEK['results'][0]['kid']
    assert work['wrap_keks'] == [{'kek_pem': 'PEM', 'kek_kid': kid, 'kek_fingerprint': 'kf'}]
    assert work['wrap_keys'] == [{'label': 'app-rsa', 'kek_kid': kid}]
    wrapped_key = {'label': 'app-rsa', 'kek_kid': kid, 'byok_content': 'Ynl0ZXM=', 'wrap_method': 'two_step'}
    wrapped = {'changed': True, 'keys': [wrapped_key]}
    out = fleet.outbox(work, wrapped)
    assert out == {'prod': [{'name': 'app-rsa', 'key_type': 'RSA', 'key_size': 3072, 'key_ops': ['sign', 'verify'],
                             'enabled': True, 'force': False, 'expected_fingerprint': 'f1', 'byok_content': 'Ynl0ZXM='}]}
    imports_in = fleet.imports_by_vault([{'byok_outbox': out}, {}], PLAN)
    assert imports_in == [{'name': 'prod', 'vault_url': VAULT['url'], 'vault_type': 'premium', 'keys': out['prod']}]
    imports = {'vaults': [{'name': 'prod', 'vault_url': VAULT['url'],
                           'keys': [{'name': 'app-rsa', 'changed': True, 'kid': 'k9', 'fingerprint': 'f1',
                                    'identity_source': 'vault-jwk'}]}]}
    rows = dict((r['name'], r) for r in report.host_rows(work, 'hsm1', KEYGEN, imports, wrapped, KEK))
    assert rows['app-rsa']['result'] == 'transferred' and rows['app-rsa']['match'] and rows['app-rsa']['wrap_method'] == 'two_step'
    assert rows['app-ec']['result'] == 'failed' and 'force: true' in rows['app-ec']['message']
    forced = dict(HOST, keys=[HOST['keys'][0], dict(HOST['keys'][1], force=True)])
    work = fleet.decide(forced, KEYGEN, held, KEK)
    assert work['keys'][1]['action'] == 'import' and work['keys'][1]['rotation'] is True


def test_unknown_outcome_is_never_failed_and_closing_message_names_each_key_once():
    held = state({'name': 'app-rsa', 'exists': False}, {'name': 'app-ec', 'exists': False})
    work = fleet.decide(HOST, KEYGEN, held, KEK)
    imports = {'failed': True, 'vaults': [{'name': 'prod', 'failed': True, 'keys': [
        {'name': 'app-rsa', 'failed': True, 'outcome_unknown': True, 'msg': 'outcome unknown: re-run to confirm'},
        {'name': 'app-ec', 'failed': True, 'msg': 'the identity may not import'}]}]}
    rows = report.host_rows(work, 'hsm1', KEYGEN, imports, None, KEK)
    assert [r['result'] for r in rows] == ['unknown', 'failed']
    closing = report.closing_message(rows, [], '/m.json')
    assert closing.startswith('2 keys of 2 did not move (hsm1/prod/app-rsa, hsm1/prod/app-ec)')
    assert 'the identity may not import' not in closing  # the reason is in the table, not repeated
    assert report.count(1, 'key') == '1 key'


def test_a_vault_that_cannot_be_read_stops_only_its_hosts():
    failed = {'failed': True, 'vaults': [{'name': 'prod', 'failed': True, 'msg': 'the identity may not get keys in ...',
                                          'keys': [{'name': 'app-rsa', 'failed': True, 'msg': '...'}]}]}
    assert fleet.kek_vaults(PLAN, failed) == []
    assert fleet.vault_problems(HOST, failed, {'results': []}) == ['vault prod could not be read: the identity may not get keys in ...']
    assert fleet.vault_problems({'vaults': ['other']}, failed, {'results': []}) == []


def test_check_mode_without_an_hsm_key_predicts_the_conflict():
    held = state({'name': 'app-rsa', 'exists': True, 'fingerprint': 'f1'})
    work = fleet.decide({'keys': [entry('app-rsa')], 'vaults': ['prod']}, {'keys': [{'label': 'app-rsa', 'fingerprint': None}]},
                        held, {'results': []})
    assert work['keys'][0]['action'] == 'conflict'


def test_a_stopped_host_reports_in_the_inventory_terms_the_user_wrote():
    rows = report.failed_rows(HOST['keys'], 'hsm1', "user_pin was refused by the token (CKR_PIN_INCORRECT); fix token_label")
    assert [r['result'] for r in rows] == ['failed', 'failed']
    assert rows[0]['message'] == "byok_user_pin was refused by the token (CKR_PIN_INCORRECT); fix byok_token_label"


def test_no_value_can_start_a_line_of_its_own_in_the_table():
    row = report.new_row(entry('app-rsa', label='x\nnext: 1  transferred'), 'hsm1', result='in place')
    lines = report.table([row])
    assert len(lines) == 3 and '\\n' in lines[1] and not any(line.startswith('next') for line in lines)


def test_a_step_that_could_not_run_at_all_stops_every_host_and_fails_every_key():
    """A module that fails before it gives per-vault results (its libraries missing, its arguments refused)."""
    # as the role registers it: with failed_when: false, Ansible sets failed to false
    crashed = {'failed': False, 'failed_when_result': False, 'changed': False,
               'msg': 'Failed to import the required Python library (azure-keyvault-keys)'}
    assert fleet.kek_vaults(PLAN, crashed) == []
    assert fleet.vault_problems(HOST, crashed, {'results': []}) == [
        'vault prod could not be read: Failed to import the required Python library (azure-keyvault-keys)']
    work = fleet.decide(HOST, KEYGEN, state({'name': 'app-rsa', 'exists': False}, {'name': 'app-ec', 'exists': False}), KEK)
    rows = report.host_rows(work, 'hsm1', KEYGEN, crashed, None, KEK)
    # the import step gave no per-key answer: some keys may have landed before it stopped, so never 'failed'
    assert [r['result'] for r in rows] == ['unknown', 'unknown']
    assert all('azure-keyvault-keys' in r['message'] and 're-run to confirm' in r['message'] for r in rows)


def test_one_label_for_two_vaults_is_wrapped_once_per_kek_and_each_blob_goes_to_its_vault():
    host = {'keys': [entry('app-ec', key_type='EC', curve='P-256'), entry('app-ec', vault='dr', key_type='EC', curve='P-256')],
            'vaults': ['dr', 'prod'], 'regenerate': 'fail'}
    keks = {'results': [dict(KEK['results'][0]), {'item': DR, 'kid': 'https://contoso-dr.vault.azure.net/keys/byok-kek/02',
                                                  'public_key_pem': 'PEM2', 'fingerprint': 'kf2'}]}
    held = state({'name': 'app-ec', 'exists': False}, dr=[{'name': 'app-ec', 'exists': False}])
    work = fleet.decide(host, {'keys': [{'label': 'app-ec', 'fingerprint': 'f2'}]}, held, keks)
    kids = [k['kid'] for k in keks['results']]
    assert sorted(k['kek_kid'] for k in work['wrap_keks']) == sorted(kids)
    assert work['wrap_keys'] == [{'label': 'app-ec', 'kek_kid': kids[0]}, {'label': 'app-ec', 'kek_kid': kids[1]}]
    wrapped = {'keys': [{'label': 'app-ec', 'kek_kid': kids[0], 'byok_content': 'UA=='},
                        {'label': 'app-ec', 'kek_kid': kids[1], 'byok_content': 'RA=='}]}
    out = fleet.outbox(work, wrapped)
    assert out['prod'][0]['byok_content'] == 'UA==' and out['dr'][0]['byok_content'] == 'RA=='


def test_a_fleet_wide_result_is_cut_per_host_and_decides_as_the_whole_would():
    other = {'keys': [entry('db-ec', host='hsm2', key_type='EC', curve='P-256')], 'vaults': ['prod'], 'regenerate': 'fail'}
    plan = {'hosts': {'hsm1': HOST, 'hsm2': other, 'hsm3': {'keys': [], 'vaults': []}}, 'vaults': [VAULT]}
    held = state({'name': 'app-rsa', 'exists': False}, {'name': 'APP-EC', 'exists': True, 'fingerprint': 'f2'},
                 {'name': 'db-ec', 'exists': False})
    cut = fleet.per_host(held, plan)
    assert [k['name'] for k in cut['hsm1']['vaults'][0]['keys']] == ['app-rsa', 'APP-EC']
    assert [k['name'] for k in cut['hsm2']['vaults'][0]['keys']] == ['db-ec']
    assert cut['hsm3']['vaults'] == []
    assert fleet.decide(HOST, KEYGEN, cut['hsm1'], KEK) == fleet.decide(HOST, KEYGEN, held, KEK)
    # a vault that failed keeps its message for each of its hosts; a step that failed as a whole is everyone's
    failed = {'failed': True, 'msg': 'x', 'vaults': [{'name': 'prod', 'failed': True, 'msg': 'no access', 'keys': []}]}
    assert fleet.vault_problems(HOST, fleet.per_host(failed, plan)['hsm2'], {'results': []}) == [
        'vault prod could not be read: no access']
    crashed = {'failed': False, 'failed_when_result': False, 'msg': 'no SDK'}
    assert fleet.per_host(crashed, plan)['hsm1'] is crashed
    assert fleet.vault_problems(HOST, fleet.per_host(crashed, plan)['hsm1'], {'results': []}) == [
        'vault prod could not be read: no SDK']
    # each host's part carries neither the fleet's message nor its module arguments
    read = dict(held, invocation={'module_args': {'vaults': ['every .byok of the fleet']}}, msg='fleet message')
    assert 'invocation' not in fleet.per_host(read, plan)['hsm1'] and 'msg' not in fleet.per_host(read, plan)['hsm1']
    skipped = {'skipped': True, 'changed': False}
    assert report.host_rows(fleet.decide(HOST, KEYGEN, held, KEK), 'hsm1', KEYGEN, fleet.per_host(skipped, plan)['hsm1'])


def test_import_rows_a_failure_hidden_by_failed_when_false_is_failed_not_in_place():
    entry = {'host': 'hsm1', 'vault': 'prod', 'name': 'k1', 'key_type': 'EC', 'curve': 'P-256'}
    hidden = {'item': entry, 'failed': False, 'failed_when_result': False, 'changed': False, 'msg': 'cannot read byok_file'}
    kept = {'item': entry, 'failed': False, 'changed': False, 'decision': 'keep', 'fingerprint': 'ab', 'expected_fingerprint': 'ab'}
    rows = report.import_rows([hidden, kept])
    assert [r['result'] for r in rows] == ['failed', 'in place'] and rows[0]['message'] == 'cannot read byok_file'
