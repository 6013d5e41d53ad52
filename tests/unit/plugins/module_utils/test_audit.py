# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit's rows from key records (read and contact only), and the JSON and JUnit XML made of them."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import xml.etree.ElementTree as ET

from ansible_collections.byok.keyvault.plugins.module_utils import audit, record

URL = 'https://contoso.vault.azure.net'
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def checked(held, hsm_fp=('f1' * 32), contact_action='keep', **entry):
    e = {'host': 'hsm1', 'name': 'k', 'vault': 'prod', 'vault_url': URL, 'vault_kind': 'premium', 'label': 'k',
         'key_type': 'EC', 'curve': 'P-256', 'key_ops': ['sign'], 'enabled': True, 'force': False, 'stated': []}
    e.update(entry)
    r = record.new(e)
    record.note_reads([r], [{'name': 'prod', 'keys': [dict({'name': 'k'}, **held)]}], now=NOW)
    record.note_keys([r], {'k': {'action': contact_action, 'fingerprint': hsm_fp}}, 'contact')
    record.decide([r])
    return audit.key_row(r, NOW)


IN_PLACE = {'exists': True, 'fingerprint': ('f1' * 32), 'version': 'v1', 'enabled': True, 'tags': {'byok-fingerprint': ('f1' * 32)}, 'key_ops': ['sign'],
            'created_on': '2026-01-01T00:00:00+00:00'}


def test_a_key_in_place_is_ok_with_its_proof_and_each_difference_is_a_finding():
    row = checked(IN_PLACE)
    assert row['status'] == 'ok' and row['findings'] == [] and row['proof'] == 'fingerprint of the vault public key'
    assert checked(dict(IN_PLACE, fingerprint='other'))['findings'][0].startswith("the vault's current version v1 is not")
    assert checked({'exists': False})['findings'] == ['the vault has no key of this name']
    assert checked(IN_PLACE, contact_action='generate', hsm_fp=None)['findings'] == ["the HSM holds no key labelled 'k'"]
    soon = checked(dict(IN_PLACE, expires_on='2026-12-20T00:00:00+00:00'))
    assert soon['findings'] == ['expires on 2026-12-20, within 30 days']
    assert checked(dict(IN_PLACE, expires_on='2026-11-20T00:00:00+00:00'))['findings'] == ['expired on 2026-11-20']
    assert checked(dict(IN_PLACE, expires_on='2027-06-20T00:00:00+00:00'))['status'] == 'ok'
    tags = checked(IN_PLACE, tags={'owner': 'a'}, stated=['tags'])
    assert tags['findings'] == ['attributes differ from the inventory: tags set owner=a']
    due = checked(dict(IN_PLACE, created_on='2025-06-01T00:00:00+00:00'), rotate_after='P1Y')
    assert due['findings'] == ['rotation due (rotate_after created 2025-06-01, older than P1Y)'], due
    gone = checked(IN_PLACE, state='absent')
    assert gone['findings'][0].startswith('listed with state: absent, yet the vault holds')


def test_the_json_and_junit_reports_say_the_same_as_the_rows():
    rows = [checked(IN_PLACE), checked({'exists': False}),
            audit.unlisted_row({'vault': 'prod', 'name': 'stray <&>', 'tag': 'byok-fingerprint', 'identity': 'ab'})]
    doc = json.loads(audit.document(rows, {'run_id': 'r1'}))
    assert doc['schema'] == 'byok.keyvault/audit/1' and doc['drift'] and doc['run_id'] == 'r1'
    assert doc['summary'] == '2 of 3 keys drifted from the inventory'
    root = ET.fromstring(audit.junit(rows, '2026-12-01T00:00:00Z'))
    assert root.get('tests') == '3' and root.get('failures') == '2'
    failures = [c for c in root.iter('testcase') if c.find('failure') is not None]
    assert [c.find('failure').get('message') for c in failures] == ['the vault has no key of this name',
                                                                    "the vault key carries the collection's identity tag "
                                                                    "(byok-fingerprint) but no inventory entry names it"]
    assert any('stray <&>' in c.get('name') for c in failures)
    assert audit.table(rows)[-1] == '2 of 3 keys drifted from the inventory'


def test_a_key_due_for_rotation_is_named_by_the_hsm_key_its_vault_holds():
    r = record.new({'host': 'hsm1', 'name': 'k', 'vault': 'prod', 'vault_url': URL, 'label': 'k', 'key_type': 'EC',
                    'curve': 'P-256', 'key_ops': ['sign'], 'enabled': True, 'force': False, 'stated': [], 'rotate_after': 'P1Y'})
    record.note_reads([r], [{'name': 'prod', 'keys': [dict(IN_PLACE, name='k', created_on='2025-01-01T00:00:00+00:00')]}],
                      now=NOW)
    record.choose_generations([r], {'k': {1: ('f1' * 32)}})
    record.note_keys([r], {'k.r2': {'action': 'generate', 'fingerprint': None}}, 'contact')
    record.decide([r])
    row = audit.key_row(r, NOW)
    assert row['label'] == 'k' and row['hsm_identity'] == ('f1' * 32) and row['proof'] == 'fingerprint of the vault public key'
    assert row['findings'] == ['rotation due (rotate_after created 2025-01-01, older than P1Y)'], row


DISABLED = {'exists': True, 'disabled': True, 'enabled': False, 'version': 'v1', 'created_on': '2026-01-01T00:00:00+00:00'}


def test_a_disabled_version_known_by_the_tag_alone_is_unverified_never_ok():
    """The collection's own tag proves nothing: such a row is not ok, its vault identity is not the tag (that is the
    claimed identity), the run does not fail on it, and JUnit skips it."""
    row = checked(dict(DISABLED, tags={'byok-fingerprint': ('f1' * 32)}), enabled=False, stated=['enabled'])
    assert row['status'] == 'unverified' and row['findings'] == [], row
    assert row['vault_identity'] is None and row['claimed_identity'] == ('f1' * 32), row
    ok = checked(IN_PLACE)
    assert ok['vault_identity'] == ('f1' * 32) and ok['claimed_identity'] is None
    rows = [ok, row]
    doc = json.loads(audit.document(rows, {}))
    assert not doc['drift'] and doc['summary'] == ("all 2 keys as the inventory describes them; 1 of them unverified: the "
                                                   "vault shows only the collection's own tag (a disabled version, or an "
                                                   "AES key that may not encrypt)"), doc['summary']
    root = ET.fromstring(audit.junit(rows, '2026-12-01T00:00:00Z'))
    assert root.get('failures') == '0' and root.get('skipped') == '1'
    skipped = [c for c in root.iter('testcase') if c.find('skipped') is not None]
    assert len(skipped) == 1 and "unverifiable: only the collection's own tag" in skipped[0].find('skipped').get('message')


def test_a_disabled_version_without_the_tag_cannot_be_compared_it_is_not_called_another_key():
    row = checked(dict(DISABLED, tags={}), enabled=False, stated=['enabled'])
    assert row['status'] == 'drift' and row['findings'][0].startswith("the vault's current version v1 cannot be compared "
                                                                      "with the HSM key"), row
    assert 'is not the HSM key' not in row['findings'][0]
