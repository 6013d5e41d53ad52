# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""token_keys: which HSM keys the inventory or a vault uses, and the only ones a clean-up may remove."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.byok.keyvault.plugins.module_utils import token_keys

FP_USED, FP_STRAY, FP_OLD = 'aa' * 32, 'bb' * 32, 'cc' * 32


def state(keys, byok_keys=()):
    return {'host': 'hsm1', 'keys': keys, 'byok_keys': list(byok_keys),
            'byok_vaults': {'prod': {'url': 'https://prod.vault.azure.net', 'type': 'premium'}}}


def key(label, fp, key_type='RSA', key_size=3072):
    return {'label': label, 'id': '0a', 'key_type': key_type, 'key_size': key_size, 'curve': None, 'fingerprint': fp,
            'error': None}


def vault_state(*keys):
    return {'vaults': [{'name': 'prod', 'keys': [dict(k, exists=True) for k in keys]}]}


def by_label(rows):
    return dict((r['label'], r) for r in rows)


def test_reads_ask_each_vault_for_the_inventory_names_and_every_label():
    reads = token_keys.vault_reads([state([key('app', FP_USED), key('stray_1', FP_STRAY), key('stray-2', FP_STRAY)],
                                          [{'name': 'app-key', 'vault': 'prod', 'label': 'app'}])])
    assert reads == [{'name': 'prod', 'vault_url': 'https://prod.vault.azure.net', 'vault_type': 'premium',
                      'names': ['app', 'app-key', 'stray-2']}]


def test_only_a_key_nobody_uses_is_removable():
    rows = by_label(token_keys.rows(
        [state([key('app', FP_USED), key('forgotten', FP_OLD), key('stray', FP_STRAY)], [{'name': 'app', 'vault': 'prod'}])],
        vault_state({'name': 'app', 'version': 'v1', 'fingerprint': FP_USED, 'version_count': 1},
                    {'name': 'forgotten', 'version': 'v9', 'fingerprint': FP_OLD, 'version_count': 1})))
    assert rows['app']['in_inventory'] and rows['app']['vaults'] == ['prod/app/v1'] and not rows['app']['removable']
    assert not rows['forgotten']['in_inventory'] and rows['forgotten']['vaults'] == ['prod/forgotten/v9']
    assert not rows['forgotten']['removable']
    assert rows['stray']['removable'] and rows['stray']['vaults'] == []
    assert token_keys.removals(list(rows.values()), 'hsm1') == [{'label': 'stray', 'id': '0a', 'fingerprint': FP_STRAY}]
    assert token_keys.removals(list(rows.values()), 'hsm2') == []


def test_older_vault_versions_keep_every_unnamed_key():
    rows = by_label(token_keys.rows(
        [state([key('app-2027', FP_USED), key('app', FP_OLD)], [{'name': 'app', 'vault': 'prod', 'label': 'app-2027'}])],
        vault_state({'name': 'app', 'version': 'v2', 'fingerprint': FP_USED, 'version_count': 2})))
    assert not rows['app']['removable'] and 'older vault versions' in rows['app']['reason'], rows['app']


def test_unknown_versions_unread_vaults_and_unknown_identities_keep_the_key():
    one = [state([key('stray', FP_STRAY)])]
    unknown = token_keys.rows(one, vault_state({'name': 'x', 'version': 'v', 'fingerprint': FP_USED, 'version_count': None}))
    failed = token_keys.rows(one, {'vaults': [{'name': 'prod', 'failed': True, 'msg': 'forbidden'}]})
    skipped = token_keys.rows(one, {'skipped': True})
    no_kcv = token_keys.rows([state([key('aes', None, 'oct', 256)])], vault_state())
    for rows in (unknown, failed, skipped, no_kcv):
        assert not rows[0]['removable'], rows[0]


def test_the_later_generations_of_a_rotating_key_are_named_by_the_inventory():
    entries = [{'name': 'app', 'vault': 'prod', 'rotate_after': 'P1Y'}, {'name': 'fixed', 'vault': 'prod'}]
    rows = by_label(token_keys.rows([state([key('app', FP_OLD), key('app.r2', FP_USED), key('fixed.r2', FP_STRAY)], entries)],
                                    vault_state({'name': 'app', 'version': 'v2', 'fingerprint': FP_USED, 'version_count': 1})))
    assert rows['app.r2']['in_inventory'] and not rows['app.r2']['removable']
    assert rows['app.r2']['reason'] == 'the inventory names it (generation 2 of app, rotate_after)'
    assert rows['app']['in_inventory']
    # a label of that form under an entry without rotate_after is no generation of it
    assert not rows['fixed.r2']['in_inventory'] and rows['fixed.r2']['removable']
