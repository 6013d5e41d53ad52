# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The key record (module_utils/record.py): each step's part, and the report row derived from what each step did."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.byok.keyvault.plugins.module_utils import record, report

URL = 'https://contoso.vault.azure.net'
DR_URL = 'https://contoso-dr.vault.azure.net'
KID = URL + '/keys/byok-kek/01'


def rec(name, host='hsm1', vault='prod', **extra):
    e = {'host': host, 'name': name, 'vault': vault, 'vault_url': URL if vault == 'prod' else DR_URL, 'vault_kind': 'premium',
         'label': name, 'key_type': 'EC', 'key_size': None, 'curve': 'P-256', 'key_ops': ['sign', 'verify'], 'tags': None,
         'enabled': True, 'not_before': None, 'expires_on': None, 'force': False, 'kek_name': 'byok-kek', 'kek_size': 4096,
         'verify_signature': False}
    e.update(extra)
    return record.new(e)


def read(records, held, vault='prod'):
    """The read step as byok_vault_step gives it: one result per vault, each with its keys' look-ups (a version with a
    fingerprint and no tags given carries the identity tag the collection writes at import)."""
    held = [dict(h, tags={'byok-fingerprint': h['fingerprint']}) if h.get('exists') and h.get('fingerprint') and 'tags' not in h
            else h for h in held]
    return record.note_reads(records, [{'name': vault, 'keys': held}])


def hsm(records, fingerprints, name='keygen', **facts):
    results = dict((label, dict({'action': 'keep', 'changed': False, 'fingerprint': fp, 'sealed': False}, **facts))
                   for label, fp in fingerprints.items())
    record.note_keys(records, results, name, {'label': 'tok', 'serial': '1'})
    return record.decide(records)


def kek(records, vault='prod', kid=KID):
    return record.note_keks(records, [{'name': vault, 'kid': kid, 'fingerprint': 'kf', 'public_key_pem': 'PEM',
                                       'kek_name': 'byok-kek'}])


def results(rows):
    return [r['result'] for r in rows]


def test_a_fleet_in_place_needs_no_kek_moves_nothing_and_says_so():
    records = [rec('app-rsa', key_type='RSA', key_size=3072, curve=None), rec('app-ec')]
    read(records, [{'name': 'APP-RSA', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': 'k1'},
                   {'name': 'app-ec', 'exists': True, 'fingerprint': ('f2' * 32), 'kid': 'k2'}])
    assert hsm(records, {'app-rsa': ('f1' * 32), 'app-ec': ('f2' * 32)}, 'contact') == []
    assert record.kek_requests(records) == [] and record.wrap_work(records) == []
    rows = record.rows(records)
    assert results(rows) == ['in place', 'in place'] and all(r['match'] for r in rows)
    assert report.table(rows)[-1] == 'nothing to transfer: all 2 keys are already in their vaults'


def test_a_missing_key_moves_under_its_kek_and_another_key_is_a_conflict_unless_forced():
    records = [rec('app-rsa', key_type='RSA', key_size=3072, curve=None), rec('app-ec')]
    read(records, [{'name': 'app-rsa', 'exists': False}, {'name': 'app-ec', 'exists': True, 'fingerprint': 'other', 'kid': 'k2'}])
    assert hsm(records, {'app-rsa': ('f1' * 32), 'app-ec': ('f2' * 32)}) == ['prod']
    assert [record.action(r) for r in records] == ['import', 'conflict']
    assert record.kek_requests(records) == [{'name': 'prod', 'vault_url': URL, 'vault_type': 'premium', 'kek_name': 'byok-kek',
                                             'kek_size': 4096, 'kek_expires_on': None}]
    kek(records)
    assert [(label, kid) for label, _id, k in record.wrap_work(records) for kid in [k['kid']]] == [('app-rsa', KID)]
    record.note_wraps(records, {('app-rsa', KID): {'byok_content': 'Ynl0ZXM=', 'wrap_method': 'two_step',
                                                   'wrap_mechanism': 'CKM_AES_KEY_WRAP_KWP (0x210B) + CKM_RSA_PKCS_OAEP'}})
    requests = record.import_requests(records)
    assert requests == [{'name': 'prod', 'vault_url': URL, 'vault_type': 'premium', 'keys': [
        {'name': 'app-rsa', 'key_type': 'RSA', 'key_size': 3072, 'key_ops': ['sign', 'verify'], 'enabled': True, 'force': False,
         'expected_fingerprint': ('f1' * 32), 'byok_content': 'Ynl0ZXM='}]}]
    record.note_imports(records, [{'name': 'prod', 'keys': [{'name': 'app-rsa', 'changed': True, 'kid': URL + '/keys/app-rsa/9',
                                                             'fingerprint': ('f1' * 32), 'identity_source': 'vault-jwk'}]}])
    assert 'byok_content' not in record.step(records[0], 'wrap')  # the vault has it: the record does not carry it on
    rows = dict((r['name'], r) for r in record.rows(records))
    assert rows['app-rsa']['result'] == 'transferred' and rows['app-rsa']['match'] and rows['app-rsa']['wrap_method'] == 'two_step'
    assert rows['app-rsa']['kek_kid'] == KID and rows['app-rsa']['kek_fingerprint'] == 'kf'
    assert rows['app-rsa']['wrap_mechanism'] == 'CKM_AES_KEY_WRAP_KWP (0x210B) + CKM_RSA_PKCS_OAEP', rows['app-rsa']
    assert rows['app-ec']['result'] == 'failed' and 'force: true' in rows['app-ec']['message']
    forced = [rec('app-ec', force=True)]
    read(forced, [{'name': 'app-ec', 'exists': True, 'fingerprint': 'other', 'kid': 'k2'}])
    hsm(forced, {'app-ec': ('f2' * 32)})
    assert record.action(forced[0]) == 'import' and record.step(forced[0], 'decide')['rotation'] is True


def test_one_label_for_two_vaults_is_wrapped_once_per_kek_and_each_blob_goes_to_its_vault():
    records = [rec('app-ec'), rec('app-ec', vault='dr')]
    read(records, [{'name': 'app-ec', 'exists': False}])
    read(records[1:], [{'name': 'app-ec', 'exists': False}], vault='dr')
    assert record.hsm_keys(records) == [{'label': 'app-ec', 'key_type': 'EC', 'key_size': None, 'curve': 'P-256'}]
    assert hsm(records, {'app-ec': ('f2' * 32)}) == ['prod', 'dr']
    kek(records)
    kek(records, 'dr', DR_URL + '/keys/byok-kek/02')
    assert [k['kid'] for _l, _i, k in record.wrap_work(records)] == [KID, DR_URL + '/keys/byok-kek/02']
    record.note_wraps(records, {('app-ec', KID): {'byok_content': 'UA=='}, ('app-ec', DR_URL + '/keys/byok-kek/02'): {'byok_content': 'RA=='}})
    requests = dict((v['name'], v['keys'][0]['byok_content']) for v in record.import_requests(records))
    assert requests == {'prod': 'UA==', 'dr': 'RA=='}


def test_a_vault_that_cannot_be_read_fails_its_own_keys_only_and_stops_the_hsm_step():
    records = [rec('a'), rec('b', vault='dr')]
    broken = {'name': 'dr', 'failed': True, 'msg': 'dr: forbidden', 'keys': [{'name': 'b', 'failed': True, 'msg': 'dr: forbidden'}]}
    record.note_reads(records, [{'name': 'prod', 'keys': [{'name': 'a', 'exists': True, 'kid': URL + '/keys/a/1', 'fingerprint': 'f'}]},
                                broken])
    assert record.blocking(records) == ['vault dr could not be read: dr: forbidden']
    record.stopped(records, 'vault dr could not be read: dr: forbidden', None, 'Contact the HSM')
    rows = dict((r['name'], r) for r in record.rows(records))
    assert rows['b']['result'] == 'failed' and rows['b']['message'] == 'vault dr could not be read: dr: forbidden'
    assert rows['a']['result'] == 'not done' and rows['a']['kid'] == URL + '/keys/a/1' and rows['a']['match'] is None
    assert 'vault prod could not be read' not in str(rows)
    # the module's option is named as the variable the user wrote for that vault
    far = rec('c', vault='dr')
    record.note_reads([far], [{'name': 'dr', 'failed': True, 'msg': 'x is unreachable; check vault_url, DNS, proxy'}])
    assert record.row(far)['message'] == 'vault dr could not be read: x is unreachable; check byok_vaults.dr.url, DNS, proxy'


def test_a_wrong_pin_keeps_the_vault_version_of_a_held_key_and_fails_only_the_missing_one():
    records = [rec('held'), rec('new')]
    read(records, [{'name': 'held', 'exists': True, 'kid': URL + '/keys/held/v1', 'fingerprint': ('f1' * 32)}, {'name': 'new', 'exists': False}])
    for r in records:
        record.fail(r, 'contact', "user_pin was refused by the token (CKR_PIN_INCORRECT); fix token_label")
    held, new = record.rows(record.stopped(records, 'user_pin was refused', None, 'Contact the HSM'))
    assert held['result'] == 'not done' and held['kid'] == URL + '/keys/held/v1' and held['match'] is None, held
    assert new['result'] == 'failed', new
    # said in the words of the inventory
    assert new['message'] == "the HSM step failed: byok_user_pin was refused by the token (CKR_PIN_INCORRECT); fix byok_token_label"


def test_a_step_that_did_not_run_is_not_done_never_a_success():
    records = [rec('k', verify_signature=True)]
    row = record.row(record.stopped(record.copies(records), 'the play stopped', None, 'x')[0])
    assert row['result'] == 'not done' and 'the vault read did not run' in row['message'] and row['signature'] == 'not done'
    read(records, [{'name': 'k', 'exists': False}])
    hsm(records, {'k': ('f1' * 32)}, 'contact')
    assert record.row(records[0])['result'] == 'not done'  # decided to move, nothing more ran
    kek(records)
    record.note_wraps(records, {('k', KID): {'failed': True, 'msg': 'wrap refused'}})
    assert record.row(records[0])['result'] == 'failed' and 'the wrap failed: wrap refused' in record.row(records[0])['message']
    assert record.import_requests(records) == []  # nothing wrapped: nothing to import
    assert record.import_requests(records, check_mode=True) == []  # and check mode does not promise it either


def test_a_key_kept_as_it_is_is_imported_as_it_is():
    """byok_regenerate: never keeps an HSM key that differs from its entry (a P-256 key where the entry says P-384):
    its import declares the key the .byok holds, not the entry's, which the vault would refuse after the wrap."""
    records = [rec('k', key_type='EC', curve='P-384', key_size=384)]
    read(records, [{'name': 'k', 'exists': False}])
    hsm(records, {'k': ('f1' * 32)}, key_type='EC', curve='P-256', key_size=256)
    kek(records)
    record.note_wraps(records, {('k', KID): {'byok_content': 'QQ=='}})
    item = record.import_requests(records)[0]['keys'][0]
    assert item['curve'] == 'P-256' and item['key_type'] == 'EC' and 'key_size' not in item, item
    assert record.row(records[0])['curve'] == 'P-256'


def test_an_import_that_failed_as_a_whole_leaves_each_outcome_unknown():
    records = [rec('a'), rec('b')]
    read(records, [{'name': 'a', 'exists': False}, {'name': 'b', 'exists': False}])
    hsm(records, {'a': ('f1' * 32), 'b': ('f2' * 32)})
    kek(records)
    record.note_wraps(records, {('a', KID): {'byok_content': 'QQ=='}, ('b', KID): {'byok_content': 'Qg=='}})
    record.stopped(records, 'Failed to import the required Python library (azure-keyvault-keys)', 'import', 'Import')
    rows = record.rows(records)
    assert results(rows) == ['unknown', 'unknown']
    assert all('azure-keyvault-keys' in r['message'] and 're-run to confirm' in r['message'] for r in rows)
    closing = report.closing_message(rows, [], '/m.json')
    assert closing.startswith('2 keys of 2 did not move (hsm1/prod/a, hsm1/prod/b); 2 with an unknown outcome')


def test_a_stopped_host_is_not_imported_even_when_its_keys_were_wrapped():
    records = [rec('a')]
    read(records, [{'name': 'a', 'exists': False}])
    hsm(records, {'a': ('f1' * 32)})
    kek(records)
    record.note_wraps(records, {('a', KID): {'byok_content': 'QQ=='}})
    assert record.import_requests(records)
    record.stopped(records, 'a later task failed', None, 'Seal')
    assert record.import_requests(records) == []
    assert record.row(records[0])['result'] == 'not done'


def test_an_aes_key_known_only_by_the_collections_tag_is_unverified_never_a_match():
    records = [rec('aes', key_type='oct', key_size=256, curve=None), rec('aes2', key_type='oct', key_size=256, curve=None)]
    read(records, [{'name': 'aes', 'exists': True, 'kid': URL + '/keys/aes/01', 'kcv': None, 'tags': {'byok-kcv': ('a9' * 32)}},
                   {'name': 'aes2', 'exists': True, 'kid': URL + '/keys/aes2/01', 'kcv': ('b1' * 32), 'tags': {'byok-kcv': ('b1' * 32)}}])
    hsm(records, {'aes': ('a9' * 32), 'aes2': ('b1' * 32)})
    rows = record.rows(records)
    assert results(rows) == ['in place', 'in place']
    assert rows[0]['proof'] == report.PROOF_TAG and rows[0]['match'] is None and report.check_mark(rows[0]) == 'unverified'
    assert rows[1]['proof'] == report.PROOF_VAULT_KCV and rows[1]['match'] is True


def test_check_mode_predicts_the_conflict_and_a_rotation_reads_as_one():
    records = [rec('app-ec')]
    read(records, [{'name': 'app-ec', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': 'k1'}])
    hsm(records, {'app-ec': None}, 'contact', action='generate')
    assert record.action(records[0]) == 'conflict'
    forced = [rec('app-ec', force=True)]
    read(forced, [{'name': 'app-ec', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': 'k1'}])
    hsm(forced, {'app-ec': None}, 'contact', action='generate')
    kek(forced, kid=None)
    record.note_imports(forced, [{'name': 'prod', 'keys': [{'name': 'app-ec', 'changed': True, 'kid': None}]}])
    row = record.row(forced[0])
    assert row['result'] == 'would rotate' and row['message'] == 'new version of app-ec'


def signed_import(proof):
    """A key imported with byok_verify_signature, the import's proof as given."""
    records = [rec('k', verify_signature=True)]
    read(records, [{'name': 'k', 'exists': False}])
    hsm(records, {'k': ('f1' * 32)})
    kek(records)
    record.note_wraps(records, {('k', KID): {'byok_content': 'QQ=='}})
    record.note_imports(records, [{'name': 'prod', 'keys': [{'name': 'k', 'changed': True, 'kid': URL + '/keys/k/2', 'fingerprint': ('f1' * 32),
                                                             'identity_source': 'vault-jwk', 'proof': proof}]}])
    return records[0]


def test_the_signature_check_is_in_the_row():
    r = signed_import({'method': 'signature', 'algorithm': 'ES256', 'verified': True})
    row = record.row(r)
    assert row['result'] == 'transferred' and row['signature'] == 'verified (ES256)' and row['proof'] == report.PROOF_JWK
    r['verify_signature'] = False
    assert record.row(r)['signature'] == 'not asked'


def test_a_failed_signature_check_keeps_the_imported_version_and_fails_the_run():
    """The import happened and the vault holds the version: the row keeps it (kid, fingerprint) and says the signature
    failed; the run still fails, as the proof asked for is missing."""
    row = record.row(signed_import({'method': 'signature', 'verified': False, 'error': 'the key itself does not allow it now'}))
    assert row['result'] == 'transferred' and row['kid'] == URL + '/keys/k/2' and row['vault_fingerprint'] == ('f1' * 32), row
    assert row['signature'] == 'failed: the key itself does not allow it now', row
    assert report.unproven([row]) == [row] and report.not_done([row]) == []
    assert report.closing_message([row], [], None).startswith('1 key moved, but the signature check asked for failed (hsm1/prod/k)')


def sealable(*specs):
    """Records of one host: (label, name, vault fingerprint or None for not in the vault)."""
    out = []
    for label, name, vault_fp in specs:
        r = rec(name, label=label)
        read([r], [{'name': name, 'exists': vault_fp is not None, 'fingerprint': vault_fp, 'kid': URL + '/keys/%s/1' % name}])
        hsm([r], {label: 'fp-' + label})
        out.append(r)
    return out


def test_only_keys_every_vault_holds_are_sealed():
    records = sealable(('a', 'a', 'fp-a'), ('a', 'a2', 'fp-a'),  # two vaults, both hold it
                       ('b', 'b', 'fp-b'), ('b', 'b2', None),    # one vault does not
                       ('c', 'c', 'other'))                      # holds another key
    assert record.seal_items(records) == [{'label': 'a', 'fingerprint': 'fp-a'}]
    record.note_seals(records, {'a': {'action': 'seal', 'changed': True, 'sealed': True}})
    rows = record.rows(records)
    assert [(r['result'], r['hsm_sealed']) for r in rows][:2] == [('in place', True), ('in place', True)]
    assert rows[0]['message'] == 'HSM key sealed (CKA_EXTRACTABLE false)'
    assert rows[2]['message'] == record.NOT_EVERY_VAULT and rows[3]['result'] == 'not done' and not rows[3]['hsm_sealed']


def test_a_key_found_sealed_is_not_sealed_again_and_a_failed_seal_fails_the_row():
    records = sealable(('a', 'a', 'fp-a'), ('b', 'b', 'fp-b'))
    record.note_keys(records[:1], {'a': {'action': 'keep', 'fingerprint': 'fp-a', 'sealed': True}}, 'keygen')
    assert [i['label'] for i in record.seal_items(records)] == ['b']
    record.note_seals(records, {'b': {'failed': True, 'msg': 'PKCS#11 seal failed: check user_pin'}})
    rows = record.rows(records)
    assert rows[0]['hsm_sealed'] is True and rows[0]['message'] == 'HSM key sealed (by an earlier run)'
    assert rows[1]['result'] == 'failed' and rows[1]['message'] == (
        'the vault holds the key, but the HSM key was not sealed: PKCS#11 seal failed: check byok_user_pin; run again to seal it')


def test_a_host_takes_its_records_from_its_newest_step():
    plan = {'records': [rec('a'), rec('b', host='hsm2')], 'started': '2026-01-01T00:00:00Z'}
    contact = {'records': [dict(rec('a'), steps={'contact': {'failed': False}})]}
    hv = {'inventory_hostname': 'hsm1', 'byok_plan': plan, 'byok_contact': contact, 'byok_kek': {'skipped': True}}
    assert [sorted(r['steps']) for r in record.latest(hv)] == [['contact']]
    assert record.latest({'inventory_hostname': 'hsm2', 'byok_plan': plan})[0]['name'] == 'b'
    assert record.latest({'inventory_hostname': 'hsm3'}) == []
    report_ = record.report_of([hv, {'inventory_hostname': 'hsm9'}])
    assert report_['silent'] == ['hsm9'] and report_['started'] == plan['started'] and report_['failed'] is True
    assert record.step_of({'args': {'step': 'import'}}) == 'import' and record.step_of({'args': {}}) is None


def in_place(**stated):
    """A key in place whose vault version has tags {owner: a, byok-fingerprint: f1}, enabled, ops [sign, verify]."""
    r = rec('k', stated=sorted(stated), **stated)
    read([r], [{'name': 'k', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': URL + '/keys/k/v1', 'version': 'v1', 'enabled': True,
                'tags': {'owner': 'a', 'byok-fingerprint': ('f1' * 32)}, 'key_ops': ['verify', 'sign'], 'not_before': None,
                'expires_on': '2027-01-01T00:00:00+00:00'}])
    hsm([r], {'k': ('f1' * 32)})
    return r


def test_only_the_stated_attributes_that_differ_are_updated_in_place():
    assert record.attribute_changes(in_place()) == {}  # nothing stated: nothing to keep
    # the same values, written differently, are no change
    assert record.attribute_changes(in_place(enabled=True, key_ops=['sign', 'verify'], expires_on='2027-01-01T00:00:00Z',
                                             tags={'owner': 'a'})) == {}
    r = in_place(enabled=False, tags={'owner': 'b'}, key_ops=['verify'], not_before='2026-12-01T00:00:00Z')
    changes = record.attribute_changes(r)
    assert changes == {'enabled': [True, False], 'tags': [{'owner': 'a', 'byok-fingerprint': ('f1' * 32)}, {'owner': 'b', 'byok-fingerprint': ('f1' * 32)}],
                       'key_ops': [['verify', 'sign'], ['verify']], 'not_before': [None, '2026-12-01T00:00:00Z']}
    assert record.update_requests([r]) == [{'name': 'prod', 'vault_url': URL, 'vault_type': 'premium',
                                            'keys': [{'name': 'k', 'version': 'v1', 'changes': changes, 'disabled': False,
                                                      'expected': ('f1' * 32), 'key_type': 'EC', 'key_size': None}]}]
    record.note_updates([r], [{'name': 'prod', 'keys': [{'name': 'k', 'changes': changes, 'changed': True}]}])
    row = record.row(r)
    assert row['result'] == 'updated' and 'enabled true -> false' in row['message'] and 'tags set owner=b' in row['message']
    assert row['message'].index('enabled') < row['message'].index('tags')


def test_append_tags_false_keeps_only_the_stated_tags_and_the_identity_tag():
    r = in_place(tags={'team': 'x'}, append_tags=False)
    r['stated'] = ['tags']
    assert record.attribute_changes(r)['tags'][1] == {'team': 'x', 'byok-fingerprint': ('f1' * 32)}
    assert 'removed owner' in record.changes_text(record.attribute_changes(r))


def test_a_disabled_key_known_only_by_its_tag_is_in_place_only_where_the_inventory_disables_it():
    """A tag proves nothing (anyone allowed to tag a key can copy it from a manifest): a disabled version it alone
    speaks for is "cannot be compared" (not done: the run fails), unless the inventory states the key disabled; then
    it is in place, unverified."""
    r = rec('k')
    read([r], [{'name': 'k', 'exists': True, 'disabled': True, 'enabled': False, 'fingerprint': None, 'key_ops': None,
                'kid': URL + '/keys/k/v1', 'version': 'v1', 'tags': {'byok-fingerprint': ('f1' * 32)}}])
    hsm([r], {'k': ('f1' * 32)})
    assert record.action(r) == 'keep' and record.attribute_changes(r) == {}
    row = record.row(r)
    assert row['result'] == 'not done' and row['proof'] == report.PROOF_TAG, row
    assert row['message'].startswith("cannot be compared: only the collection's identity tag says") and row['kid'], row
    assert report.not_done([row]) == [row]
    r['stated'], r['enabled'] = ['enabled'], False
    row = record.row(r)
    assert row['result'] == 'in place' and row['proof'] == report.PROOF_TAG and report.check_mark(row) == 'unverified', row
    r['stated'], r['enabled'] = [], True
    r['stated'], r['enabled'] = ['enabled', 'key_ops'], True
    assert record.attribute_changes(r) == {'enabled': [False, True]}  # a disabled version shows no operations
    other = rec('k')
    read([other], [{'name': 'k', 'exists': True, 'disabled': True, 'enabled': False, 'tags': {'byok-fingerprint': ('f9' * 32)}}])
    hsm([other], {'k': ('f1' * 32)})
    assert record.action(other) == 'conflict'  # another key recorded under that name: never taken for the HSM key


def test_a_failed_update_fails_the_row_and_a_stopped_host_is_not_updated():
    r = in_place(enabled=False)
    record.note_updates([r], [{'name': 'prod', 'keys': [{'name': 'k', 'failed': True, 'msg': 'no update permission'}]}])
    row = record.row(r)
    assert row['result'] == 'failed' and 'could not be updated (enabled true -> false): no update permission' in row['message']
    s = in_place(enabled=False)
    record.stopped([s], 'later task failed', None, 'x')
    assert record.update_requests([s]) == []
    assert record.row(s)['result'] == 'not done' and 'were not updated' in record.row(s)['message']


def test_an_absent_key_is_deleted_only_when_the_vault_holds_the_hsm_key_and_never_generated():
    gone, held, other = rec('gone', state='absent'), rec('held', state='absent'), rec('other', state='absent')
    records = [gone, held, other]
    read(records, [{'name': 'gone', 'exists': False}, {'name': 'held', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': 'k1'},
                   {'name': 'other', 'exists': True, 'fingerprint': ('f9' * 32), 'kid': 'k9'}])
    assert record.hsm_keys(records) == [] and len(record.hsm_keys(records, contact=True)) == 3
    assert hsm(records, {'gone': ('f0' * 32), 'held': ('f1' * 32), 'other': ('f2' * 32)}, 'contact') == []  # no KEK for a deletion
    assert [record.action(r) for r in records] == ['absent', 'delete', 'conflict']
    assert record.removal_requests(records) == [{'name': 'prod', 'vault_url': URL, 'vault_type': 'premium',
                                                 'keys': [{'name': 'held', 'action': 'delete', 'version': None}]}]
    record.note_removals(records, [{'name': 'prod', 'keys': [{'name': 'held', 'changed': True}]}])
    rows = dict((r['name'], r) for r in record.rows(records))
    assert rows['gone']['result'] == 'absent' and rows['held']['result'] == 'deleted' and rows['other']['result'] == 'failed'
    assert 'HSM key is kept' in rows['held']['message'] and record.seal_items(records) == []
    # the HSM holds no key under the label of a retired entry: no advice to generate and import a new key
    lost = rec('lost', state='absent', force=True)
    read([lost], [{'name': 'lost', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': 'k1'}])
    hsm([lost], {'lost': None}, 'contact')
    row = record.row(lost)
    assert row['result'] == 'failed' and row['message'].startswith('vault key lost is not deleted: the HSM holds no key'), row
    assert 'force' not in row['message'], row


def test_a_key_listed_again_is_recovered_when_the_vault_holds_it_soft_deleted():
    back, taken = rec('back'), rec('taken')
    records = [back, taken]
    read(records, [{'name': 'back', 'exists': False, 'deleted': True, 'deleted_fingerprint': ('f1' * 32)},
                   {'name': 'taken', 'exists': False, 'deleted': True, 'deleted_fingerprint': ('f9' * 32)}])
    assert hsm(records, {'back': ('f1' * 32), 'taken': ('f2' * 32)}, 'contact') == []  # nothing is imported: no KEK
    assert [record.action(r) for r in records] == ['recover', 'conflict']
    record.note_removals(records, [{'name': 'prod', 'keys': [{'name': 'back', 'changed': True, 'kid': URL + '/keys/back/v1'}]}],
                         check_mode=True)
    rows = record.rows(records)
    assert rows[0]['result'] == 'would recover' and rows[1]['result'] == 'failed' and 'soft-deleted' in rows[1]['message']


# -- Secure Key Release on a key in place: the policy kept as stated, what the vault never changes reported -----------
POLICY = {'version': '1.0.0', 'anyOf': [{'authority': 'https://a.attest.azure.net', 'allOf': [{'claim': 'c', 'equals': 'v'}]}]}


def in_place_exportable(held_policy, held_exportable=True, **stated):
    r = rec('k', stated=sorted(stated), **stated)
    read([r], [{'name': 'k', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': URL + '/keys/k/v1', 'version': 'v1', 'enabled': True,
                'tags': {'byok-fingerprint': ('f1' * 32)}, 'key_ops': ['sign'], 'exportable': held_exportable,
                'release_policy': held_policy}])
    hsm([r], {'k': ('f1' * 32)})
    return r


def test_a_changed_release_policy_is_updated_in_place_and_the_same_one_is_no_change():
    other = dict(POLICY, anyOf=[dict(POLICY['anyOf'][0], authority='https://b.attest.azure.net')])
    same = in_place_exportable({'policy': POLICY, 'immutable': False}, exportable=True, release_policy=POLICY)
    assert record.attribute_changes(same) == {} and record.unchangeable(same) is None
    r = in_place_exportable({'policy': POLICY, 'immutable': False}, exportable=True, release_policy=other,
                            release_policy_immutable=True)
    changes = record.attribute_changes(r)
    assert changes == {'release_policy': [{'policy': POLICY, 'immutable': False}, {'policy': other, 'immutable': True}]}
    assert record.unchangeable(r) is None
    record.note_updates([r], [{'name': 'prod', 'keys': [{'name': 'k', 'changes': changes, 'changed': True}]}])
    row = record.row(r)
    assert row['result'] == 'updated'
    assert ('release policy anyOf[0].authority https://a.attest.azure.net -> https://b.attest.azure.net; immutable false -> '
            'true') in row['message'], row


def test_an_immutable_policy_or_the_exportable_state_is_reported_never_updated():
    other = dict(POLICY, version='1.0.0', anyOf=[dict(POLICY['anyOf'][0], authority='https://b.attest.azure.net')])
    r = in_place_exportable({'policy': POLICY, 'immutable': True}, exportable=True, release_policy=other)
    record.note_unchangeable([r])
    assert record.update_requests([r]) == []
    row = record.row(r)
    assert row['result'] == 'failed' and 'AKV.SKR.1011' in row['message'] and 'nothing was changed' in row['message'], row
    r = in_place_exportable(None, held_exportable=False, exportable=True, release_policy=POLICY)
    record.note_unchangeable([r])
    assert record.update_requests([r]) == []
    assert 'AKV.SKR.1014' in record.row(r)['message']
    # not stated, exportable is false (its default): an exportable version is reported, never taken as the inventory's
    r = in_place_exportable({'policy': POLICY, 'immutable': True})
    assert 'is exportable and the inventory says exportable: false' in record.unchangeable(r)
    assert record.attribute_changes(r) == {}
    r = in_place_exportable(None, held_exportable=False)
    assert record.unchangeable(r) is None and record.attribute_changes(r) == {}


def test_the_identity_tag_is_restored_on_a_version_the_vault_proved_never_on_the_tags_word():
    """A portal edit that replaces the tags drops the identity tag: the next update (here: disabling the key) writes it
    back, as it is the only thing that tells a disabled version apart later."""
    r = rec('k', enabled=False, stated=['enabled'])
    read([r], [{'name': 'k', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': URL + '/keys/k/v1', 'version': 'v1', 'enabled': True,
                'tags': {'owner': 'b'}}])
    hsm([r], {'k': ('f1' * 32)})
    assert record.attribute_changes(r) == {'enabled': [True, False], 'tags': [{'owner': 'b'}, {'owner': 'b', 'byok-fingerprint': ('f1' * 32)}]}
    wrong = rec('k')
    read([wrong], [{'name': 'k', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': URL + '/keys/k/v1', 'version': 'v1',
                    'enabled': True, 'tags': {'byok-fingerprint': ('f9' * 32)}}])
    hsm([wrong], {'k': ('f1' * 32)})
    assert record.attribute_changes(wrong) == {'tags': [{'byok-fingerprint': ('f9' * 32)}, {'byok-fingerprint': ('f1' * 32)}]}
    full = rec('k')
    fifteen = dict(('t%d' % i, 'v') for i in range(15))
    read([full], [{'name': 'k', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': URL + '/keys/k/v1', 'version': 'v1',
                   'enabled': True, 'tags': fifteen}])
    hsm([full], {'k': ('f1' * 32)})
    assert record.attribute_changes(full) == {} and record.unchangeable(full) is None  # no room: the user's tags stay
    disabled = rec('k', enabled=False, stated=['enabled'])
    read([disabled], [{'name': 'k', 'exists': True, 'disabled': True, 'enabled': False, 'kid': URL + '/keys/k/v1',
                       'version': 'v1', 'tags': {'byok-fingerprint': ('f1' * 32)}}])
    hsm([disabled], {'k': ('f1' * 32)})
    assert record.attribute_changes(disabled) == {}


# -- rotation by cryptoperiod: the generation the vault holds, or the next one when its period is over ---------------
def rotating(created_on, generations, vault_fp=('f1' * 32), now='2026-12-01T00:00:00+00:00'):
    import datetime
    r = rec('k', rotate_after='P365D')
    record.note_reads([r], [{'name': 'prod', 'keys': [{'name': 'k', 'exists': True, 'fingerprint': vault_fp, 'version': 'v1',
                                                       'kid': URL + '/keys/k/v1', 'created_on': created_on}]}],
                      now=datetime.datetime.fromisoformat(now))
    record.choose_generations([r], {'k': generations})
    return r


def test_a_version_over_its_period_moves_to_the_next_generation_once():
    r = rotating('2025-11-01T00:00:00+00:00', {1: ('f1' * 32)})
    assert r['label'] == 'k.r2' and r['rotating'] and r['base_label'] == 'k'
    hsm([r], {'k.r2': ('f2' * 32)})
    assert record.action(r) == 'import' and 'created 2025-11-01, older than P365D' in record.step(r, 'decide')['reason']
    assert record.import_requests([r], check_mode=True)[0]['keys'][0]['if_current_version'] == 'v1'
    # a younger version stays; the vault holding generation 2 is generation 2 (its label), not due
    r = rotating('2026-06-01T00:00:00+00:00', {1: ('f1' * 32)})
    assert r['label'] == 'k' and not r['rotating']
    r = rotating('2026-06-01T00:00:00+00:00', {1: ('f0' * 32), 2: ('f1' * 32)})
    assert r['label'] == 'k.r2' and not r['rotating']
    hsm([r], {'k.r2': ('f1' * 32)})
    assert record.action(r) == 'keep'
    # generation 3 is the next one after 2, and one the token already holds (a re-run after a failed import) is it
    r = rotating('2025-06-01T00:00:00+00:00', {1: ('f0' * 32), 2: ('f1' * 32), 3: ('f3' * 32)})
    assert r['label'] == 'k.r3' and r['rotating'] and r['id'] is None
    # the vault holds none of the generations: not a rotation (a conflict unless force, as without rotate_after)
    r = rotating('2025-06-01T00:00:00+00:00', {1: ('f0' * 32), 2: ('f2' * 32)}, vault_fp='other')
    assert r['label'] == 'k.r2' and not r['rotating']
    hsm([r], {'k.r2': ('f2' * 32)})
    assert record.action(r) == 'conflict'


def test_a_rotation_never_takes_again_a_generation_that_was_in_service():
    """The vault was rolled back to generation 1 while the token holds 2 and 3 (both were in service): the rotation goes
    to 4, and the audit names the rollback; a token holding only 2 (a rotation whose import did not land) takes 2."""
    r = rotating('2025-06-01T00:00:00+00:00', {1: ('f1' * 32), 2: ('f2' * 32), 3: ('f3' * 32)})
    assert r['label'] == 'k.r4' and r['rotating'], r['label']
    young = rotating('2026-11-01T00:00:00+00:00', {1: ('f1' * 32), 2: ('f2' * 32), 3: ('f3' * 32)})
    assert young['label'] == 'k' and not young['rotating'] and young['newer_generations'] == 3
    hsm([young], {'k': ('f1' * 32)})
    from ansible_collections.byok.keyvault.plugins.module_utils import audit
    import datetime
    findings = audit.key_row(young, datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc))['findings']
    assert any('the token holds newer generations up to k.r3' in f for f in findings), findings
    r = rotating('2025-06-01T00:00:00+00:00', {1: ('f1' * 32), 2: ('f2' * 32)})
    assert r['label'] == 'k.r2' and r['rotating']
    # one step back: the token holds only 2, but an older version of the key held it (the vault's history): 3
    r = rec('k', rotate_after='P365D')
    import datetime
    record.note_reads([r], [{'name': 'prod', 'keys': [{'name': 'k', 'exists': True, 'fingerprint': ('f1' * 32), 'version': 'v3',
                                                       'kid': URL + '/keys/k/v3', 'created_on': '2025-06-01T00:00:00+00:00'}]}],
                      now=datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc))
    assert record.history_requests([r]) == [{'name': 'prod', 'vault_url': URL, 'vault_type': 'premium', 'names': ['k']}]
    record.note_history([r], [{'name': 'prod', 'keys': [{'name': 'k', 'earlier_identities': [('f1' * 32), ('F2' * 32)]}]}])
    record.choose_generations([r], {'k': {1: ('f1' * 32), 2: ('f2' * 32)}})
    assert r['label'] == 'k.r3' and r['rotating'], r['label']


def test_a_rotating_key_listed_again_recovers_the_generation_its_vault_holds_soft_deleted():
    r = rec('k', rotate_after='P365D')
    read([r], [{'name': 'k', 'exists': False, 'deleted': True, 'deleted_fingerprint': ('f1' * 32)}])
    record.choose_generations([r], {'k': {1: ('f1' * 32), 2: ('f2' * 32)}})
    assert r['label'] == 'k' and not r['rotating']
    hsm([r], {'k': ('f1' * 32)})
    assert record.action(r) == 'recover', record.step(r, 'decide')


# -- destroy_hsm_key: only after the vault confirmed the deletion, never a label another entry needs ------------------
def retired(delete_outcome, **extra):
    r = rec('k', state='absent', destroy_hsm_key=True, **extra)
    read([r], [{'name': 'k', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': URL + '/keys/k/v1', 'version': 'v1'}])
    hsm([r], {'k': ('f1' * 32)}, 'contact')
    if delete_outcome is not None:
        record.note_removals([r], [{'name': 'prod', 'keys': [dict({'name': 'k'}, **delete_outcome)]}])
    return r


def test_the_hsm_key_is_destroyed_only_after_the_vault_deleted_the_key():
    assert record.destroy_items([retired({'changed': True})]) == [{'label': 'k', 'fingerprint': ('f1' * 32)}]
    assert record.destroy_items([retired({'failed': True, 'msg': '403'})]) == []
    assert record.destroy_items([retired(None)]) == []  # the vault step did not run
    # a label another entry of the host still uses is never destroyed
    keeper = rec('k2', label='k')
    assert record.destroy_items([retired({'changed': True}), keeper]) == []
    r = retired({'changed': True})
    record.note_destroys([r], {'k': {'action': 'remove', 'changed': True}})
    assert record.row(r)['result'] == 'deleted' and 'HSM key k destroyed' in record.row(r)['message']
    r = retired({'changed': True})
    record.note_destroys([r], {'k': {'failed': True, 'msg': 'CKR_ACTION_PROHIBITED'}})
    assert record.row(r)['result'] == 'failed' and 'could not be destroyed' in record.row(r)['message']


def gone_from_vault(held):
    """A key retired with destroy_hsm_key whose name the vault holds no current version of."""
    r = rec('k', state='absent', destroy_hsm_key=True)
    read([r], [dict({'name': 'k', 'exists': False}, **held)])
    hsm([r], {'k': ('f1' * 32)}, 'contact')
    return r


def test_a_name_the_vault_holds_nothing_under_does_not_let_the_hsm_key_go():
    """A retirement entry with a wrong name (or vault) finds no key: that proves nothing about the vault key that holds
    the HSM key, which must not be destroyed; a name the vault holds soft-deleted as this HSM key (deleted by an earlier
    run) does let it go."""
    typo = gone_from_vault({})
    assert record.action(typo) == 'absent' and record.destroy_items([typo]) == []
    message = record.row(typo)['message']
    assert 'HSM key not destroyed: the vault holds no key named k, current or soft-deleted, that is this HSM key' in message
    other = gone_from_vault({'deleted': True, 'deleted_fingerprint': ('f9' * 32)})
    assert record.destroy_items([other]) == []
    earlier = gone_from_vault({'deleted': True, 'deleted_fingerprint': ('F1' * 32)})
    assert record.destroy_items([earlier]) == [{'label': 'k', 'fingerprint': ('f1' * 32)}]


def test_the_finish_step_runs_on_the_hosts_with_a_key_to_destroy_and_its_failure_is_the_keys_own():
    gone, kept = retired({'changed': True}), dict(retired({'failed': True, 'msg': '403'}), host='hsm2')
    assert record.destroy_hosts([gone, kept]) == ['hsm1']
    # the finish task failed as a whole (its module gave no records): the key to destroy says so, not the other
    other = rec('app')
    record.stopped([gone, other], 'token not present', failed_step=record.step_of({'args': {'step': 'finish'}}))
    assert record.step(gone, 'destroy')['failed'] and record.step(other, 'destroy') is None
    assert record.row(gone)['result'] == 'failed'


def two_vaults(created, fps, generations, **extra):
    """One rotating label into two vaults: created and fps per vault ('prod', 'dr')."""
    import datetime
    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    records = [rec('k', vault=v, rotate_after='P365D', **extra) for v in ('prod', 'dr')]
    for r, v in zip(records, ('prod', 'dr')):
        record.note_reads([r], [{'name': v, 'keys': [{'name': 'k', 'exists': True, 'fingerprint': fps[v], 'version': v + '1',
                                                      'kid': 'x', 'created_on': created[v]}]}], now=now)
    record.choose_generations(records, {'k': generations})
    return dict((r['vault'], r) for r in records)


def test_one_label_in_two_vaults_rotates_together_and_a_vault_behind_catches_up():
    old, young = '2025-06-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00'
    both = two_vaults({'prod': old, 'dr': young}, {'prod': ('f1' * 32), 'dr': ('f1' * 32)}, {1: ('f1' * 32)})
    assert [both[v]['label'] for v in ('prod', 'dr')] == ['k.r2', 'k.r2'] and all(r['rotating'] for r in both.values())
    behind = two_vaults({'prod': young, 'dr': young}, {'prod': ('f2' * 32), 'dr': ('f1' * 32)}, {1: ('f1' * 32), 2: ('f2' * 32)})
    assert behind['prod']['label'] == 'k.r2' and not behind['prod']['rotating']
    assert behind['dr']['label'] == 'k.r2' and behind['dr']['rotating']
    assert 'holds its generation 2' in record.step(behind['dr'], 'read')['rotation_reason']
    # a disabled key (or one the inventory keeps disabled) is out of use: not rotated
    kept = two_vaults({'prod': old, 'dr': old}, {'prod': ('f1' * 32), 'dr': ('f1' * 32)}, {1: ('f1' * 32)}, enabled=False)
    assert not any(r['rotating'] for r in kept.values())


def test_a_rotated_key_listed_absent_stands_for_the_generation_its_vault_holds():
    r = rec('k', state='absent', rotate_after='P1Y')
    read([r], [{'name': 'k', 'exists': True, 'fingerprint': ('f2' * 32), 'kid': 'x', 'version': 'v2',
                'created_on': '2025-01-01T00:00:00+00:00'}])
    record.choose_generations([r], {'k': {1: ('f1' * 32), 2: ('f2' * 32)}})
    assert r['label'] == 'k.r2' and not r['rotating']
    hsm([r], {'k.r2': ('f2' * 32)}, 'contact')
    assert record.action(r) == 'delete'


def test_a_key_destroyed_in_the_hsm_and_soft_deleted_in_the_vault_says_what_to_do_not_force():
    r = rec('k')
    read([r], [{'name': 'k', 'exists': False, 'deleted': True, 'deleted_fingerprint': ('f1' * 32)}])
    hsm([r], {'k': None}, 'contact', action='generate')
    row = record.row(r)
    assert row['result'] == 'failed' and 'the HSM holds no key labelled k (destroyed?)' in row['message'], row
    assert 'az keyvault key purge' in row['message'] and 'Set force' not in row['message']


def test_the_transfer_roles_documentation_names_the_registers_the_records_are_read_from():
    """The role's description tells which variables hold the records: the ones latest() reads (the plan's apart)."""
    import os
    import re

    import yaml

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    with open(os.path.join(root, 'roles', 'transfer', 'meta', 'argument_specs.yml')) as handle:
        description = ' '.join(yaml.safe_load(handle)['argument_specs']['main']['description'])
    sentence = re.search(r'Carries one key record.*?from which', description).group(0)
    assert set(re.findall(r'C\((byok_\w+)\)', sentence)) == set(record.REGISTERS) - {'byok_plan'}


def test_an_import_that_made_a_version_of_another_key_is_failed_with_that_version():
    """The vault answered with a version that is not the HSM key (vault_backend.foreign_version disabled it): the row is
    failed, and names that version's kid, so that the manifest says where it is."""
    records = [rec('app-ec')]
    read(records, [{'name': 'app-ec', 'exists': False}])
    hsm(records, {'app-ec': ('f2' * 32)})
    kek(records)
    record.note_wraps(records, {('app-ec', KID): {'byok_content': 'Ynl0ZXM=', 'wrap_method': 'two_step'}})
    kid = URL + '/keys/app-ec/7'
    record.note_imports(records, [{'name': 'prod', 'keys': [{'name': 'app-ec', 'changed': False, 'failed': True, 'kid': kid,
                                                             'msg': 'vault key app-ec version 7 does not match the HSM key'}]}])
    row = record.rows(records)[0]
    assert row['result'] == 'failed' and row['kid'] == kid and 'does not match' in row['message'], row


def test_a_key_someone_else_deleted_before_the_run_did_is_absent_not_deleted_by_the_run():
    r = rec('k', state='absent')
    read([r], [{'name': 'k', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': URL + '/keys/k/v1', 'version': 'v1'}])
    hsm([r], {'k': ('f1' * 32)}, 'contact')
    assert record.removal_requests([r])[0]['keys'] == [{'name': 'k', 'action': 'delete', 'version': 'v1'}]
    record.note_removals([r], [{'name': 'prod', 'keys': [{'name': 'k', 'changed': False, 'gone': True}]}])
    row = record.row(r)
    assert row['result'] == 'absent' and 'deleted meanwhile by someone else' in row['message'], row


def test_a_disabled_key_deleted_says_its_identity_was_only_the_tag():
    r = rec('k', state='absent')
    read([r], [{'name': 'k', 'exists': True, 'disabled': True, 'fingerprint': None, 'tags': {'byok-fingerprint': ('f1' * 32)},
                'kid': URL + '/keys/k/v1', 'version': 'v1'}])
    hsm([r], {'k': ('f1' * 32)}, 'contact')
    assert record.action(r) == 'delete', record.step(r, 'decide')
    record.note_removals([r], [{'name': 'prod', 'keys': [{'name': 'k', 'changed': True}]}])
    row = record.row(r)
    assert row['result'] == 'deleted' and "only the collection's own identity tag" in row['message'], row


def test_the_details_never_show_a_tag_as_what_the_vault_holds():
    rows = [dict(report.new_row({'name': 'k', 'key_type': 'EC', 'hsm_fingerprint': ('f1' * 32), 'vault_fingerprint': ('f1' * 32),
                                 'vault_kid': URL + '/keys/k/v1'}, 'hsm1', identity_source=report.SOURCE_KCV_TAG),
                 result='in place')]
    assert rows[0]['proof'] == report.PROOF_TAG, rows
    lines = report.details(rows)
    assert "    vault sha256 not readable; the collection's own tag says %s" % ('f1' * 32) in lines, lines
    assert any(line.startswith('unverified: what the vault holds could not be read') for line in report.table(rows)), rows


def test_an_update_whose_answer_was_lost_is_unknown_not_failed():
    r = in_place(enabled=False)
    changes = record.attribute_changes(r)
    record.note_updates([r], [{'name': 'prod', 'keys': [{'name': 'k', 'failed': True, 'outcome_unknown': True, 'changes': changes,
                                                         'msg': 'https://x is unreachable during update of key k'}]}])
    row = record.row(r)
    assert row['result'] == 'unknown' and 'may or may not be applied: run again to confirm' in row['message'], row


def test_a_conflict_that_is_no_comparison_says_what_is_missing_not_that_the_keys_differ():
    no_hsm_key = rec('a')
    read([no_hsm_key], [{'name': 'a', 'exists': True, 'fingerprint': ('f9' * 32), 'kid': 'k9'}])
    hsm([no_hsm_key], {'a': None}, 'contact', action='generate', changed=True)
    assert record.action(no_hsm_key) == 'conflict'
    message = record.row(no_hsm_key)['message']
    assert message.startswith('vault key a exists and the HSM holds no key labelled a; nothing was generated'), message
    untagged = rec('b')
    read([untagged], [{'name': 'b', 'exists': True, 'disabled': True, 'fingerprint': None, 'tags': {}, 'kid': 'k8'}])
    hsm([untagged], {'b': ('f2' * 32)}, 'contact')
    message = record.row(untagged)['message']
    assert message.startswith('vault key b cannot be compared with HSM key b'), message
    assert 'is not HSM key' not in message, message


def test_a_key_another_host_on_the_same_token_still_needs_is_not_sealed():
    """hsmA holds shared-x in its vault; hsmB, on the same token, has still to send it to another vault: sealing it now
    would make it impossible to wrap for hsmB."""
    mine = sealable(('shared-x', 'x', 'fp-shared-x'))[0]
    theirs = sealable(('shared-x', 'x2', None))[0]
    theirs['host'] = 'hsm2'
    assert record.seal_items([mine]) == [{'label': 'shared-x', 'fingerprint': 'fp-shared-x'}]  # as hsm1 alone sees it
    record.hold_shared_token_keys([mine, theirs])  # note_keys gave both the token {'label': 'tok', 'serial': '1'}
    assert record.seal_items([mine]) == [], mine.get('seal_held')
    other_token = sealable(('shared-x', 'x', 'fp-shared-x'))[0]
    elsewhere = dict(sealable(('shared-x', 'x2', None))[0], host='hsm2', token={'label': 'tok', 'serial': '2'})
    record.hold_shared_token_keys([other_token, elsewhere])
    assert record.seal_items([other_token]) == [{'label': 'shared-x', 'fingerprint': 'fp-shared-x'}]


def test_a_key_a_host_outside_the_limit_lists_on_the_same_token_is_neither_sealed_nor_destroyed():
    """With --limit hsm1, hsm2 is not in the run, so no record of it reaches the import step; the plan noted it on hsm1's
    record (token_users_outside), and that is enough to hold the seal and the destruction, and the row says why."""
    mine = sealable(('shared-x', 'x', 'fp-shared-x'))[0]
    mine['token_users_outside'] = ['hsm2']
    assert record.seal_items([mine]) == [{'label': 'shared-x', 'fingerprint': 'fp-shared-x'}]  # without the hold
    record.hold_shared_token_keys([mine])
    assert record.seal_items([mine]) == []
    record.note_seals([mine], {})
    assert "hsm2, outside this run's --limit, on the same token, still lists it" in record.row(mine)['message'], record.row(mine)
    gone = retired({'changed': True}, token_users_outside=['hsm2'])
    record.hold_shared_token_keys([gone])
    assert record.destroy_items([gone]) == [], gone


def test_a_key_another_host_on_the_same_token_still_uses_is_not_destroyed():
    mine = retired({'changed': True})
    assert record.destroy_items([mine]) == [{'label': 'k', 'fingerprint': ('f1' * 32)}]  # as hsm1 alone sees it
    theirs = dict(rec('k2', label='k'), host='hsm2', token=mine['token'])
    record.hold_shared_token_keys([mine, theirs])
    assert record.destroy_items([mine]) == [], mine


def test_a_disabled_version_that_showed_another_key_when_enabled_is_reported_with_what_the_vault_showed():
    r = rec('k', enabled=True, stated=['enabled'])
    read([r], [{'name': 'k', 'exists': True, 'disabled': True, 'enabled': False, 'kid': URL + '/keys/k/v1', 'version': 'v1',
                'tags': {'byok-fingerprint': ('f1' * 32)}}])
    hsm([r], {'k': ('f1' * 32)})
    changes = record.attribute_changes(r)
    record.note_updates([r], [{'name': 'prod', 'keys': [{'name': 'k', 'failed': True, 'changes': changes,
                                                         'vault_identity': ('f9' * 32), 'msg': 'not the HSM key (f9, not f1)'}]}])
    row = record.row(r)
    assert row['result'] == 'failed' and row['message'].startswith('none of its attributes was updated'), row
    assert row['vault_fingerprint'] == ('f9' * 32) and not row['match'], row


def test_tags_the_vault_would_refuse_after_the_merge_are_reported_not_sent():
    """append_tags adds the stated tags to the vault's: 15 at most, or the Update Key fails (and check mode said would
    update)."""
    held = dict(('t%d' % i, 'v') for i in range(13))
    held['byok-fingerprint'] = ('f1' * 32)
    r = rec('k', tags={'a': '1', 'b': '2'}, stated=['tags'])
    read([r], [{'name': 'k', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': URL + '/keys/k/v1', 'version': 'v1', 'enabled': True,
                'tags': held}])
    hsm([r], {'k': ('f1' * 32)})
    assert 'would hold 16 tags after the update' in record.unchangeable(r)
    record.note_unchangeable([r])
    assert record.update_requests([r]) == [] and record.row(r)['result'] == 'failed'


def test_a_recovered_version_gets_the_stated_attributes_in_the_same_run():
    """Retired while disabled, listed again with enabled: true: recovered and enabled in one run, not left disabled until
    the next one (nor, the other way round, put back into use when the inventory says enabled: false)."""
    r = rec('k', enabled=True, tags={'owner': 'q'}, stated=['enabled', 'tags'])
    read([r], [{'name': 'k', 'exists': False, 'deleted': True, 'deleted_fingerprint': ('f1' * 32)}])
    hsm([r], {'k': ('f1' * 32)}, 'contact')
    assert record.action(r) == 'recover' and record.attribute_changes(r) == {}  # nothing known of it before the recovery
    held = {'exists': True, 'version': 'v7', 'enabled': False, 'disabled': True, 'tags': {'byok-fingerprint': ('f1' * 32)},
            'key_ops': None, 'fingerprint': ('f1' * 32)}
    record.note_removals([r], [{'name': 'prod', 'keys': [{'name': 'k', 'changed': True, 'kid': URL + '/keys/k/v7', 'held': held}]}])
    changes = record.attribute_changes(r)
    assert changes == {'enabled': [False, True], 'tags': [{'byok-fingerprint': ('f1' * 32)}, {'byok-fingerprint': ('f1' * 32), 'owner': 'q'}]}
    (entry,) = record.update_requests([r])
    assert entry['keys'][0]['version'] == 'v7' and entry['keys'][0]['disabled']
    record.note_updates([r], [{'name': 'prod', 'keys': [{'name': 'k', 'changes': changes, 'changed': True}]}])
    row = record.row(r)
    assert row['result'] == 'recovered' and 'its attributes updated: enabled false -> true' in row['message'], row
    assert row['vault_fingerprint'] == ('f1' * 32) and row['match'] and row['proof'] == report.PROOF_JWK, row


def test_a_key_in_place_is_signed_each_run_when_the_signature_is_asked_for():
    """A signature that failed after the import is asked for again by the next run, where the key is in place."""
    r = rec('k', verify_signature=True)
    read([r], [{'name': 'k', 'exists': True, 'fingerprint': ('f1' * 32), 'kid': URL + '/keys/k/v1', 'version': 'v1', 'enabled': True,
                'key_ops': ['sign', 'verify']}])
    hsm([r], {'k': ('f1' * 32)})
    assert record.proof_requests([r]) == [{'name': 'prod', 'vault_url': URL, 'vault_type': 'premium',
                                           'keys': [{'name': 'k', 'version': 'v1', 'key_type': 'EC'}]}]
    signed = {'method': 'signature', 'verified': True, 'algorithm': 'ES256'}
    record.note_proofs([r], [{'name': 'prod', 'keys': [{'name': 'k', 'proof': signed}]}])
    assert record.row(r)['signature'] == 'verified (ES256)'
    record.note_proofs([r], [{'name': 'prod', 'keys': [{'name': 'k', 'failed': True, 'msg': 'unreachable'}]}])
    row = record.row(r)
    assert row['result'] == 'in place' and row['signature'] == 'failed: unreachable' and report.unproven([row]) == [row]
    r['verify_signature'] = False
    assert record.proof_requests([r]) == []


def test_the_keks_deleted_after_the_run_are_said():
    assert report.kek_lines([{'name': 'prod', 'kek_name': 'k', 'deleted': True, 'purged': True},
                             {'name': 'dr', 'kek_name': 'k', 'deleted': True, 'purged': False, 'purge_refused': 'protected'},
                             {'name': 'qa', 'kek_name': 'k', 'failed': True, 'msg': 'no delete permission'}]) == [
        'KEK k of vault prod: deleted and purged after the run (byok_kek_delete_after_run)',
        'KEK k of vault dr: deleted after the run, not purged (protected)',
        'KEK k of vault qa: NOT deleted: no delete permission']
    hv = {'inventory_hostname': 'hsm1', 'byok_imported': {'keks_deleted': [{'name': 'prod', 'kek_name': 'k', 'deleted': True}]}}
    assert record.report_of([hv])['keks'] == ['KEK k of vault prod: deleted after the run, not purged']


def test_an_hsm_key_a_vault_holds_soft_deleted_is_not_replaced_either():
    """byok_regenerate: full_idempotence would replace the HSM key under the label (it differs from its entry), but the
    vault holds it soft-deleted under the key's name: the only HSM copy of that vault key is kept, and the row says so
    (not "the HSM holds no key", nor to purge the vault's copy)."""
    r = rec('k', force=True)
    read([r], [{'name': 'k', 'exists': False, 'deleted': True, 'deleted_fingerprint': 'a1' * 32}])
    hsm([r], {'k': None}, 'contact', action='replace', replaces='a1' * 32, reason='curve is P-384, wanted P-256')
    assert record.action(r) == 'conflict' and record.hsm_keys([r]) == []  # the transfer step neither replaces nor makes it
    row = record.row(r)
    assert row['result'] == 'failed' and "it is the key of the vault's soft-deleted key" in row['message'], row
    assert 'so it was kept' in row['message'] and 'purge' not in row['message'] and 'holds no key' not in row['message']


def test_an_aes_key_whose_tag_an_earlier_release_wrote_is_told_how_to_be_proved_again():
    r = rec('aes', key_type='oct', key_size=256, curve=None, key_ops=['wrapKey', 'unwrapKey'])
    read([r], [{'name': 'aes', 'exists': True, 'kid': URL + '/keys/aes/01', 'kcv': None, 'tags': {'byok-kcv': 'dc95c0'}}])
    hsm([r], {'aes': 'a9' * 32})
    row = record.row(r)
    assert row['result'] == 'failed' and 'its byok-kcv tag holds no identity' in row['message'], row
    assert 'encrypt in key_ops for one run' in row['message'] and 'disabled' not in row['message'], row


def test_an_aes_key_that_may_only_wrap_is_proved_by_the_vaults_key_wrap():
    """The vault computes no KCV of an AES key that may not encrypt; it wrapped a random value with it, and the HSM key
    wrapping the same value to the same bytes proves it is the HSM key; other bytes say it is another key."""
    check = {'value': '11' * 32, 'wrapped': '22' * 40}
    same, other = (rec(n, key_type='oct', key_size=256, curve=None, key_ops=['wrapKey', 'unwrapKey']) for n in ('same', 'other'))
    tags = {'byok-kcv': 'a9' * 32}  # the tag says both are the HSM key: it is not asked
    read([same, other], [{'name': n, 'exists': True, 'kid': URL + '/keys/%s/01' % n, 'kcv': None, 'tags': tags,
                          'wrap_check': check} for n in ('same', 'other')])
    record.note_keys([same, other], {'same': {'action': 'keep', 'fingerprint': 'a9' * 32},
                                     'other': {'action': 'keep', 'fingerprint': 'a9' * 32}}, 'contact')
    record.note_wrap_checks([same, other], lambda label, value: (bytes.fromhex('22' * 40) if label == 'same' else b'x' * 40))
    record.decide([same, other])
    assert record.action(same) == 'keep' and record.action(other) == 'conflict'
    rows = dict((r['name'], r) for r in record.rows([same, other]))
    assert rows['same']['result'] == 'in place' and rows['same']['match'] is True, rows['same']
    assert rows['same']['proof'] == report.PROOF_VAULT_WRAP
    assert rows['other']['result'] == 'failed' and record.WRAP_DIFFERS in rows['other']['message'], rows['other']


def test_a_rollback_is_refused_without_advice_to_force_it():
    """force: true over a vault key an older version of which held this HSM key: refused, and the row does not tell the
    user to set the force that is already set."""
    r = rec('k', force=True)
    read([r], [{'name': 'k', 'exists': True, 'fingerprint': 'b2' * 32, 'kid': URL + '/keys/k/v2', 'version': 'v2'}])
    record.note_history([r], [{'name': 'prod', 'keys': [{'name': 'k', 'earlier_identities': ['a1' * 32]}]}])
    hsm([r], {'k': 'a1' * 32}, 'contact')
    assert record.action(r) == 'conflict' and record.step(r, 'decide')['refused'] == 'rollback'
    row = record.row(r)
    assert row['result'] == 'failed' and row['message'].startswith('an older version of vault key k held this HSM key'), row
    assert 'Set force' not in row['message'], row


def test_an_aes_key_the_hsm_cannot_wrap_with_stays_unverified_not_failed():
    """An HSM whose policy refuses AES-ECB with the key cannot compute the key wrap: that is no doing of the vault's, so
    the key in place stays unverified (only the tag), as when it may not wrap at all; the run does not fail on it."""
    r = rec('aes', key_type='oct', key_size=256, curve=None, key_ops=['wrapKey', 'unwrapKey'])
    read([r], [{'name': 'aes', 'exists': True, 'kid': URL + '/keys/aes/01', 'kcv': None, 'tags': {'byok-kcv': 'a9' * 32},
                'wrap_check': {'value': '11' * 32, 'wrapped': '22' * 40}}])
    record.note_keys([r], {'aes': {'action': 'keep', 'fingerprint': 'a9' * 32}}, 'contact')
    record.note_wrap_checks([r], lambda label, value: None)
    record.decide([r])
    row = record.row(r)
    assert row['result'] == 'in place' and row['proof'] == report.PROOF_TAG and report.not_done([row]) == [], row


# -- the import step without a vault: what byok_vault_step's action answers alone ----------------------------------------
def _import_step_with(records, check_mode=False):
    """record.import_step with a vault that answers every request it is given with no change; the kinds asked for."""
    asked = []

    def vault(kind, requests):
        asked.append(kind)
        return [{'name': entry['name'], 'keys': [{'name': k['name'], 'changed': False} for k in entry['keys']]}
                for entry in requests]

    record.import_step(records, check_mode, vault)
    return asked


def _held_in_place():
    records = [rec('app-ec')]
    read(records, [{'name': 'app-ec', 'exists': True, 'fingerprint': ('f2' * 32), 'kid': 'k2', 'version': 'v2',
                    'enabled': True, 'key_ops': ['sign', 'verify']}])
    hsm(records, {'app-ec': ('f2' * 32)}, 'contact')
    return records


def test_a_fleet_in_place_gives_the_vault_nothing_and_the_action_answers_as_the_module_would():
    records = _held_in_place()
    given = copy.deepcopy(records)
    assert _import_step_with(record.copies(records)) == []
    quiet = record.import_without_vault(records, False)
    module = record.copies(records)
    _import_step_with(module)
    assert quiet == record.import_result(module, [], False)
    assert quiet['changed'] is False and quiet['destroy_hosts'] == [] and quiet['diff'] == {'before': {}, 'after': {}}
    assert results(record.rows(quiet['records'])) == ['in place']
    assert records == given  # the records it was given: untouched (the result carries copies)


def test_any_vault_work_makes_the_action_start_the_module():
    moving = [rec('app-ec')]
    read(moving, [{'name': 'app-ec', 'exists': False}])
    hsm(moving, {'app-ec': ('f2' * 32)})
    kek(moving)
    record.note_wraps(moving, {('app-ec', KID): {'changed': True, 'byok_content': 'Ynlvaw=='}})
    stated = _held_in_place()
    stated[0]['enabled'] = False  # the inventory now disables the key: an update in place
    stated[0]['stated'] = ['enabled']
    signed = _held_in_place()
    signed[0]['verify_signature'] = True
    cases = {'import': moving, 'delete': [retired(None)], 'update': stated, 'signature': signed}
    for kind, records in cases.items():
        assert _import_step_with(record.copies(records)) == [kind], kind
        assert record.import_without_vault(records, False) is None, kind
    # in check mode no signature is asked for: that run is answered without the module
    assert record.import_without_vault(signed, True) is not None
