# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The staged (air-gapped) flow over key records: the same records and steps as the transfer, with the bundle between
the hosts (record.kek_requests/decide_staged/note_bundle, the bundle's KEK and .byok files, the seal).  The playbooks
themselves are proved end to end in tests/e2e/test_fleet.py and test_airgap_attacks.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils import bundle, decisions, fleet_plan, record

from test_record import KID, read, rec

#: the HSM key of 'app' as a seal names it (a fingerprint: 64 hex digits)
F_APP = 'fa' * 32


def test_stage_1_fetches_the_kek_of_every_vault_of_the_records_though_nothing_was_decided():
    records = [rec('a'), rec('b'), rec('c', vault='dr')]
    assert record.kek_requests(records) == []  # the transfer: only the vaults a key moves to
    wanted = record.kek_requests(records, every=True)
    assert [r['name'] for r in wanted] == ['dr', 'prod']
    record.note_keks(records, [{'name': 'prod', 'kid': KID, 'fingerprint': 'kf', 'public_key_pem': 'PEM'}], every=True)
    assert [record.step(r, 'kek') and record.step(r, 'kek')['kid'] for r in records] == [KID, KID, None]


def test_stage_2_moves_every_key_it_made_sure_of_and_never_a_retired_or_failed_one():
    records = [rec('a'), rec('b'), rec('c', state='absent'), rec('d')]
    record.note_keys(records, {'a': {'action': 'generate', 'fingerprint': 'fa'}, 'b': {'action': 'keep', 'fingerprint': 'fb'},
                               'c': {'action': 'keep', 'fingerprint': 'fc'}, 'd': {'failed': True, 'msg': 'no such mechanism'}},
                     'keygen')
    record.decide_staged(records)
    assert [record.action(r) for r in records] == [decisions.IMPORT, decisions.IMPORT, None, None]
    assert record.step(records[0], 'decide')['reason'] == record.STAGED_REASON


def ready(name, fingerprint, content=b'BYOK', kid=KID):
    return {'ready': True, 'msg': None, 'hsm_fingerprint': fingerprint, 'byok_sha256': hashlib.sha256(content).hexdigest(),
            'seal_digest': 'abcd-' * 7 + 'abcd', 'kek_kid': kid, 'byok_content': base64.b64encode(content).decode('ascii')}


def test_stage_3_takes_the_sealed_identity_decides_against_the_vault_and_imports_only_what_moves():
    records = [rec('new'), rec('held'), rec('other')]
    record.note_bundle(records, [ready('new', 'f-new'), ready('held', 'f-held'), ready('other', 'f-mine')])
    read(records, [{'name': 'new', 'exists': False}, {'name': 'held', 'exists': True, 'fingerprint': 'f-held', 'kid': 'k/1'},
                   {'name': 'other', 'exists': True, 'fingerprint': 'f-someone', 'kid': 'k/2'}])
    record.decide(records)
    assert [record.action(r) for r in records] == [decisions.IMPORT, decisions.KEEP, decisions.CONFLICT]
    requests = record.import_requests(records)
    assert [k['name'] for k in requests[0]['keys']] == ['new']
    assert requests[0]['keys'][0]['expected_fingerprint'] == 'f-new'  # the import compares the vault with the seal
    assert requests[0]['keys'][0]['byok_content'] == base64.b64encode(b'BYOK').decode('ascii')
    rows = dict((r['name'], r) for r in record.rows(records))
    assert rows['held']['result'] == 'in place' and rows['other']['result'] == 'failed'
    assert rows['new']['kek_kid'] == KID


def test_a_key_the_bundle_does_not_give_fails_with_why_and_is_never_called_in_place():
    records = [rec('missing'), rec('held')]
    not_there = {'ready': False, 'msg': 'not done: wrapped/hsm1/prod/missing.byok is missing from the bundle'}
    record.note_bundle(records, [not_there, dict(not_there, msg='not done: the seal of hsm1 does not list it')])
    read(records, [{'name': 'missing', 'exists': False}, {'name': 'held', 'exists': True, 'fingerprint': 'f', 'kid': 'k/3'}])
    record.decide(records)
    assert record.import_requests(records) == []
    rows = dict((r['name'], r) for r in record.rows(records))
    assert rows['missing']['result'] == 'failed' and 'missing from the bundle' in rows['missing']['message']
    # the vault holds a key of the name, but nothing proves it is the HSM key: not compared, never "in place"
    assert rows['held']['result'] == 'not done' and 'does not list it' in rows['held']['message']
    assert 'not done' not in rows['held']['message'], rows['held']['message']  # the result says it once


def test_a_bundle_that_is_not_authenticated_fails_every_key_without_a_vault_read():
    records = [rec('a'), rec('b')]
    why = 'nothing was imported (the air gap is not authenticated): the seal of hsm1 has digest x, not y'
    record.note_bundle(records, [{'ready': False, 'msg': why}] * 2)
    rows = record.rows(records)
    assert [r['result'] for r in rows] == ['failed', 'failed'] and all(r['message'] == why for r in rows)


def test_the_kek_files_are_written_once_read_back_and_refused_when_missing(tmp_path):
    path = str(tmp_path / 'bundle')
    bundle.prepare(path, ['keks'], True, False)
    kek = {'kid': KID, 'fingerprint': 'ab' * 32, 'key_size': 2048, 'public_key_pem': '-----BEGIN PUBLIC KEY-----\nx\n'}
    assert bundle.write_kek(path, 'prod', 'https://contoso.vault.azure.net', kek, check_mode=True)
    assert not os.path.exists(os.path.join(path, 'keks', 'prod.pem'))
    assert bundle.write_kek(path, 'prod', 'https://contoso.vault.azure.net', kek, check_mode=False)
    assert not bundle.write_kek(path, 'prod', 'https://contoso.vault.azure.net', kek, check_mode=False)  # nothing to change
    doc, pem = bundle.read_kek(path, 'prod')
    assert doc['kid'] == KID and doc['fingerprint'] == 'ab' * 32 and doc['vault'] == 'prod' and pem == kek['public_key_pem'].encode()
    assert oct(os.stat(os.path.join(path, 'keks', 'prod.json')).st_mode & 0o777) == '0o600'
    with pytest.raises(bundle.BundleError, match='holds no KEK of vault dr'):
        bundle.read_kek(path, 'dr')
    (tmp_path / 'bundle' / 'keks' / 'prod.json').write_text('{"kid": ')
    with pytest.raises(bundle.BundleError, match='damaged'):
        bundle.read_kek(path, 'prod')


def test_the_wrapped_files_and_the_seal_are_what_stage_3_verifies(tmp_path):
    path = str(tmp_path / 'bundle')
    bundle.prepare(path, ['wrapped/hsm1/prod'], True, False)
    sha = bundle.write_wrapped(path, 'hsm1', 'prod', 'app', b'the byok', {'fingerprint': F_APP})
    assert sha == hashlib.sha256(b'the byok').hexdigest()
    token = {'vendor': 'softhsm', 'label': 'tok', 'serial': '42', 'manufacturer': 'SoftHSM project', 'model': 'SoftHSM v2',
             'firmware_version': '2.6', 'library_version': '2.6'}
    sealed = bundle.seal_records(path, 'hsm1', [{'vault': 'prod', 'name': 'app', 'key_type': 'EC', 'key_size': None,
                                                 'curve': 'P-256', 'identity': F_APP, 'byok_sha256': sha, 'kek_kid': KID,
                                                 'kek_fingerprint': 'kf', 'wrap_method': 'two_step', 'token': token,
                                                 'wrap_mechanism': 'CKM_AES_KEY_WRAP_PAD + CKM_RSA_PKCS_OAEP'}], False)
    assert sealed['digest'] and 'bundle digest of hsm1: %s' % sealed['digest'] in sealed['lines'][-1]
    entry = rec('app')
    results, refusal = bundle.verify(path, [entry], {'hsm1': sealed['digest']}, False)
    assert refusal is None and results[0]['ready'] and results[0]['hsm_fingerprint'] == F_APP and results[0]['kek_kid'] == KID
    assert base64.b64decode(results[0]['byok_content']) == b'the byok'
    # what the seal says of the KEK, the wrap and the token reaches the row and the manifest, authenticated with it
    records = record.note_bundle([rec('app')], results)
    assert record.step(records[0], 'kek') == {'kid': KID, 'fingerprint': 'kf', 'failed': False}
    assert record.step(records[0], 'wrap')['wrap_method'] == 'two_step' and records[0]['token']['serial'] == '42'
    row = record.row(records[0])
    assert row['kek_fingerprint'] == 'kf' and row['wrap_method'] == 'two_step', row
    meta = json.loads((tmp_path / 'bundle' / 'wrapped' / 'hsm1' / 'prod' / 'app.byok.json').read_text())
    assert meta == {'fingerprint': F_APP}
    results, refusal = bundle.verify(path, [entry], {'hsm1': '0' * 32}, False)
    assert refusal and not results[0]['ready']


def test_a_byok_changed_between_its_write_and_its_read_back_is_never_sealed(tmp_path, monkeypatch):
    """The seal vouches for the .byok the HSM wrapped: a file the medium (or another process) replaced right after the
    write is refused, its SHA-256 is never the one sealed."""
    path = str(tmp_path / 'bundle')
    bundle.prepare(path, ['wrapped/hsm1/prod'], True, False)
    write = bundle._write

    def swapped(target, data, mode):  # what a hostile medium does: the file holds other bytes once written
        write(target, b'a forged byok' if target.endswith('.byok') else data, mode)

    monkeypatch.setattr(bundle, '_write', swapped)
    with pytest.raises(bundle.BundleError, match='not the .byok the HSM just wrapped.*nothing of this host was sealed'):
        bundle.write_wrapped(path, 'hsm1', 'prod', 'app', b'the byok', {'fingerprint': F_APP})


def test_stage_3_imports_only_the_hsm_key_the_seal_names_under_the_inventorys_label(tmp_path):
    """The seal records the label stage 2 wrapped: an inventory at stage 3 that gives another label for the key is told
    so, nothing is imported, and the row never names a label the token was not asked for."""
    path = str(tmp_path / 'bundle')
    bundle.prepare(path, ['wrapped/hsm1/prod'], True, False)
    sha = bundle.write_wrapped(path, 'hsm1', 'prod', 'app', b'the byok', {'fingerprint': F_APP})
    sealed = bundle.seal_records(path, 'hsm1', [{'vault': 'prod', 'name': 'app', 'label': 'offline-label', 'key_type': 'EC',
                                                 'key_size': None, 'curve': 'P-256', 'identity': F_APP, 'byok_sha256': sha,
                                                 'kek_kid': KID}], False)
    results, refusal = bundle.verify(path, [rec('app', label='connected-label')], {'hsm1': sealed['digest']}, False)
    assert refusal is None and not results[0]['ready'], results
    assert 'holds HSM key offline-label, not the connected-label the inventory gives' in results[0]['msg'], results
    results, refusal = bundle.verify(path, [rec('app', label='offline-label')], {'hsm1': sealed['digest']}, False)
    assert refusal is None and results[0]['ready'], results


def test_the_staged_flow_refuses_what_it_cannot_honour_and_takes_state_present():
    hosts = {'hsm1': {'byok_keys': [{'name': 'a', 'state': 'present'}, {'name': 'b', 'state': 'absent'},
                                    {'name': 'c', 'rotate_after': 'P1Y'}]}}
    lines = [p.line() for p in fleet_plan.flow_problems(hosts, 'staged')]
    assert len(lines) == 2, lines
    assert lines[0].startswith('hsm1: byok_keys[1] (b).state: absent: the staged (air-gapped) flow never deletes'), lines
    assert 'rotate_after' in lines[1]
    assert fleet_plan.flow_problems(hosts, 'transfer') == []


def sealed_bundle(tmp_path, content=b'the byok'):
    path = str(tmp_path / 'bundle')
    bundle.prepare(path, ['wrapped/hsm1/prod'], True, False)
    sha = bundle.write_wrapped(path, 'hsm1', 'prod', 'app', content, {'fingerprint': 'f-sidecar'})
    sealed = bundle.seal_records(path, 'hsm1', [{'vault': 'prod', 'name': 'app', 'key_type': 'EC', 'key_size': None,
                                                 'curve': 'P-256', 'identity': F_APP, 'byok_sha256': sha, 'kek_kid': KID}], False)
    return path, sealed['digest']


def test_a_digest_that_is_given_is_checked_even_unauthenticated_and_the_bundles_own_is_never_shown(tmp_path):
    path, good = sealed_bundle(tmp_path)
    results, refusal = bundle.verify(path, [rec('app')], {'hsm1': '0' * 32}, True)
    assert refusal and not results[0]['ready'] and 'does not have the digest' in refusal
    assert good not in refusal and good.replace('-', '') not in refusal  # never the value a forger wants typed
    results, refusal = bundle.verify(path, [rec('app')], {}, False)
    assert refusal and 'is not given' in refusal and good not in refusal
    results, refusal = bundle.verify(path, [rec('app')], {'hsm1': good}, True)
    assert refusal is None and results[0]['ready'] and results[0]['authenticated']


def test_an_unauthenticated_bundle_says_so_in_every_row(tmp_path):
    path, _good = sealed_bundle(tmp_path)
    results, refusal = bundle.verify(path, [rec('app')], {}, True)
    assert refusal is None and results[0]['ready'] and results[0]['authenticated'] is False
    records = record.note_bundle([rec('app')], results)
    read(records, [{'name': 'app', 'exists': False}])
    record.decide(records)
    record.note_imports(records, [{'name': 'prod', 'keys': [{'name': 'app', 'changed': True, 'kid': URL_KID, 'fingerprint': F_APP,
                                                             'identity_source': 'jwk'}]}])
    row = record.row(records[0])
    assert row['result'] == 'transferred' and 'NOT AUTHENTICATED' in row['message'], row


URL_KID = 'https://contoso.vault.azure.net/keys/app/01'


class FakeModule(object):
    def __init__(self):
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


class FakeHsm(object):
    check_mode = False

    def __init__(self, bundle_options):
        self.params = {'bundle': dict({'kek_fingerprints': {}, 'unauthenticated': False}, **bundle_options)}
        self.module = FakeModule()


def kek_pem():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return pem, hashlib.sha256(der).hexdigest()


def test_stage_2_takes_each_vault_s_own_kek_and_refuses_a_kid_two_vaults_share(tmp_path):
    from ansible_collections.byok.keyvault.plugins.module_utils import hsm_backend
    path = str(tmp_path / 'bundle')
    bundle.prepare(path, ['keks'], True, False)
    (p_pem, p_fp), (d_pem, d_fp) = kek_pem(), kek_pem()
    dr_kid = 'https://contoso-dr.vault.azure.net/keys/byok-kek/02'
    bundle.write_kek(path, 'prod', URL_KID, {'kid': KID, 'fingerprint': p_fp, 'key_size': 2048, 'public_key_pem': p_pem}, False)
    bundle.write_kek(path, 'dr', None, {'kid': dr_kid, 'fingerprint': d_fp, 'key_size': 2048, 'public_key_pem': d_pem}, False)
    records = [rec('a'), rec('b', vault='dr')]
    # as typed from stage 1's screen: 'sha256 ' before it, any case
    hsm = FakeHsm({'path': path, 'kek_fingerprints': {'prod': 'sha256 ' + p_fp.upper(), 'dr': d_fp}})
    hsm_backend.staged_keks(hsm, records)
    assert [(record.step(r, 'kek')['kid'], record.step(r, 'kek')['fingerprint']) for r in records] == [(KID, p_fp), (dr_kid, d_fp)]
    # the kid of keks/dr.json changed to prod's: refused before any HSM work (a .byok names its KEK by kid)
    doc = json.loads((tmp_path / 'bundle' / 'keks' / 'dr.json').read_text())
    (tmp_path / 'bundle' / 'keks' / 'dr.json').write_text(json.dumps(dict(doc, kid=KID)))
    offline = [rec('a', vault_url=None), rec('b', vault='dr', vault_url=None)]  # stage 2's inventory names no vault URL
    with pytest.raises(hsm_backend.HsmError) as refused:
        hsm_backend.staged_keks(hsm, offline)
    assert 'name the same KEK' in str(refused.value) and 'nothing was generated or wrapped' in str(refused.value)
    # a kid of another vault than the record's (the inventory names the vault's URL): refused too
    (tmp_path / 'bundle' / 'keks' / 'dr.json').write_text(json.dumps(dict(doc, kid='https://elsewhere.vault.azure.net/keys/k/03')))
    with pytest.raises(hsm_backend.HsmError, match='not a key of vault dr'):
        hsm_backend.staged_keks(hsm, [rec('a'), rec('b', vault='dr')])
    # without a fingerprint, only byok_airgap_unauthenticated takes the bundle's KEK, and it says so
    (tmp_path / 'bundle' / 'keks' / 'dr.json').write_text(json.dumps(doc))
    with pytest.raises(hsm_backend.HsmError, match='byok_expected_kek_fingerprints.dr is not given'):
        hsm_backend.staged_keks(FakeHsm({'path': path, 'kek_fingerprints': {'prod': p_fp}}), [rec('a'), rec('b', vault='dr')])
    loose = FakeHsm({'path': path, 'kek_fingerprints': {'prod': p_fp}, 'unauthenticated': True})
    hsm_backend.staged_keks(loose, [rec('a'), rec('b', vault='dr')])
    assert any('NOT AUTHENTICATED' in w and 'vault dr' in w for w in loose.module.warnings), loose.module.warnings


def test_a_bundle_file_nested_beyond_pythons_limit_is_damaged_not_a_crash(tmp_path):
    path, good = sealed_bundle(tmp_path)
    seal = os.path.join(path, 'wrapped', 'hsm1', 'seal.json')
    os.chmod(seal, 0o600)
    with open(seal, 'w') as handle:
        handle.write('[' * 100000 + ']' * 100000)
    results, refusal = bundle.verify(path, [rec('app')], {'hsm1': good}, False)
    assert refusal and 'wrapped/hsm1/seal.json) is damaged' in refusal and not results[0]['ready'], refusal
    bundle.prepare(path, ['keks'], True, False)
    with open(os.path.join(path, 'keks', 'prod.json'), 'w') as handle:
        handle.write('{"kid": ' + '[' * 100000 + ']' * 100000 + '}')
    with open(os.path.join(path, 'keks', 'prod.pem'), 'w') as handle:
        handle.write('pem')
    with pytest.raises(bundle.BundleError, match='keks/prod.json in the bundle is damaged'):
        bundle.read_kek(path, 'prod')


def test_a_link_where_stage_2_wrote_a_byok_refuses_every_import_key_by_key(tmp_path):
    path, good = sealed_bundle(tmp_path)
    byok = os.path.join(path, 'wrapped', 'hsm1', 'prod', 'app.byok')
    os.rename(byok, byok + '.elsewhere')
    os.symlink(byok + '.elsewhere', byok)
    results, refusal = bundle.verify(path, [rec('app')], {'hsm1': good}, False)
    assert refusal and not results[0]['ready'] and 'wrapped/hsm1/prod/app.byok in the bundle' in results[0]['msg'], results


def test_a_key_stage_2_wrapped_under_another_letter_case_is_named_as_such(tmp_path):
    path, good = sealed_bundle(tmp_path)
    results, refusal = bundle.verify(path, [rec('App')], {'hsm1': good}, False)
    assert refusal is None and not results[0]['ready'], results
    assert 'stage 2 wrapped this key as wrapped/hsm1/prod/app.byok, and the inventory names it App' in results[0]['msg'], results


def test_the_staged_flow_refuses_hosts_or_vaults_one_folder_on_a_medium_that_ignores_case():
    vaults = {'prod': {'url': 'https://a.vault.azure.net'}, 'Prod': {'url': 'https://b.vault.azure.net'}}
    hosts = {'hsm-a': {'byok_vaults': vaults}, 'HSM-A': {'byok_vaults': vaults}, 'hsm-b': {'byok_vaults': vaults}}
    lines = sorted(p.line() for p in fleet_plan.flow_problems(hosts, 'staged'))
    assert [line for line in lines if 'inventory_hostname' in line] == [
        'hsm-a: inventory_hostname: differs from HSM host HSM-A only in letter case; the bundle gives each host the folder '
        'wrapped/HOST, and on a medium that ignores case (FAT, exFAT, macOS) the two would be one folder: rename one of '
        'the hosts'], lines
    assert len([line for line in lines if 'byok_vaults.prod: differs from vault Prod only in letter case' in line]) == 3, lines
    assert fleet_plan.flow_problems(hosts, 'transfer') == []


def test_a_stage_2_run_that_fails_half_way_leaves_no_seal_and_stage_3_says_so(tmp_path):
    """Stage 2 takes the host's seal away before it writes any .byok again: a run that fails after replacing a file
    leaves no seal (never one that names a replaced file), and stage 3, given the earlier digest, says the seal is
    missing and why, not that stage 2 never finished nor that a file was replaced after it."""
    path = str(tmp_path / 'bundle')
    bundle.prepare(path, ['wrapped/hsm1/prod'], True, False)
    sha = bundle.write_wrapped(path, 'hsm1', 'prod', 'app', b'the byok', {'fingerprint': F_APP})
    records = [{'vault': 'prod', 'name': 'app', 'key_type': 'EC', 'key_size': None, 'curve': 'P-256', 'identity': F_APP,
                'byok_sha256': sha, 'kek_kid': KID, 'kek_fingerprint': 'kf', 'wrap_method': 'two_step', 'token': {},
                'wrap_mechanism': 'CKM_AES_KEY_WRAP_PAD + CKM_RSA_PKCS_OAEP'}]
    first = bundle.seal_records(path, 'hsm1', records, False)
    seal = tmp_path / 'bundle' / 'wrapped' / 'hsm1' / 'seal.json'
    before = seal.read_bytes()
    assert bundle.unseal(path, 'hsm1') == before and not seal.exists()
    assert bundle.unseal(path, 'hsm1') is None
    # the same files sealed again: the seal is back, and nothing changed
    again = bundle.seal_records(path, 'hsm1', records, False, previous=before)
    assert seal.read_bytes() == before and not again['changed'] and again['digest'] == first['digest']
    # a run that stopped after unseal(): no seal, and stage 3 with the digest of the earlier run says what that means
    bundle.unseal(path, 'hsm1')
    results, refusal = bundle.verify(path, [rec('app')], {'hsm1': first['digest']}, False)
    message = results[0].get('message') or results[0].get('msg') or str(results[0])
    assert 'no seal of HSM host hsm1' in message and 'although its digest was given' in message, results[0]
    assert 'did not finish' not in message and 'replaced after stage 2' not in message


def test_stage_2_takes_the_seal_away_before_it_writes_a_byok_again(tmp_path):
    from ansible_collections.byok.keyvault.plugins.module_utils import hsm_backend
    path = str(tmp_path / 'bundle')
    bundle.prepare(path, ['wrapped/hsm1/prod'], True, False)
    seal = tmp_path / 'bundle' / 'wrapped' / 'hsm1' / 'seal.json'
    seal.write_text('{"schema": "an earlier run"}')
    seal.chmod(0o600)
    records = [rec('app'), rec('bad')]
    record.note_keys(records, {'app': {'action': 'keep', 'fingerprint': 'fa'}, 'bad': {'action': 'keep', 'fingerprint': 'fb'}},
                     'keygen')
    record.decide_staged(records)
    record.note_keks(records, [{'name': 'prod', 'kid': KID, 'fingerprint': 'kf', 'public_key_pem': 'PEM'}], every=True)
    wraps = {('app', KID): {'byok_content': base64.b64encode(b'one').decode()},
             ('bad', KID): {'byok_content': base64.b64encode(b'two').decode()}}
    record.note_wraps(records, wraps)
    (tmp_path / 'bundle' / 'wrapped' / 'hsm1' / 'prod' / 'bad.byok').mkdir()  # the second write fails
    with pytest.raises(Exception):
        hsm_backend.write_bundle({'path': path}, records, {}, False)
    assert (tmp_path / 'bundle' / 'wrapped' / 'hsm1' / 'prod' / 'app.byok').read_bytes() == b'one'
    assert not seal.exists(), 'a seal that names files this failed run replaced was left'


def test_a_seal_of_an_earlier_release_with_a_3_byte_kcv_imports_nothing(tmp_path):
    """A 3-byte KCV identifies no key (another AES key matches it in seconds): a seal that gives one is refused for that
    key, saying to run stage 2 again, before anything is imported."""
    path = str(tmp_path / 'bundle')
    bundle.prepare(path, ['wrapped/hsm1/prod'], True, False)
    sha = bundle.write_wrapped(path, 'hsm1', 'prod', 'app', b'the byok', {'kcv': 'dc95c0'})
    sealed = bundle.seal_records(path, 'hsm1', [{'vault': 'prod', 'name': 'app', 'key_type': 'oct', 'key_size': 256,
                                                 'curve': None, 'identity': 'dc95c0', 'byok_sha256': sha, 'kek_kid': KID}],
                                 False)
    results, refusal = bundle.verify(path, [rec('app', key_type='oct', key_size=256, curve=None)],
                                     {'hsm1': sealed['digest']}, False)
    assert not results[0]['ready'] and 'byok_content' not in results[0], results[0]
    assert 'which identifies no key (a 3-byte KCV sealed by an earlier release' in results[0]['msg'], results[0]
    assert 'run stage 2 for hsm1 again' in results[0]['msg']
