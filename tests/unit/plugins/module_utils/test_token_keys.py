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
    # only this inventory's vaults were read: the reason says so, not that no vault uses it
    assert rows['stray']['reason'] == ('neither the inventory nor its vaults (prod) use it; a vault the inventory does '
                                       'not name may'), rows['stray']
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


def test_a_disabled_or_soft_deleted_vault_key_keeps_its_hsm_key():
    """A disabled current version shows no key material, and a soft-deleted key can be recovered: the tag written with the
    import, and the deleted key's fingerprint, keep the HSM key they stand for."""
    listed = [state([key('off', FP_USED), key('gone', FP_OLD), key('stray', FP_STRAY)])]
    vaults = {'vaults': [{'name': 'prod', 'keys': [
        {'name': 'off', 'exists': True, 'disabled': True, 'version': 'v1', 'fingerprint': None, 'version_count': 1,
         'tags': {'byok-fingerprint': FP_USED}},
        {'name': 'gone', 'exists': False, 'deleted': True, 'deleted_fingerprint': FP_OLD}]}]}
    rows = by_label(token_keys.rows(listed, vaults))
    assert not rows['off']['removable'] and rows['off']['vaults'] == ['prod/off/v1'], rows['off']
    assert not rows['gone']['removable'] and rows['gone']['vaults'] == ['prod/gone/soft-deleted'], rows['gone']
    assert rows['stray']['removable'], rows['stray']


def test_hosts_that_see_one_token_share_what_their_inventories_need():
    """Two HSM hosts on one partition list the same keys: a key in either host's inventory is used, for both."""
    token = {'serial': '42', 'label': 'partition'}
    a = dict(state([key('pending', FP_STRAY)]), host='hsmA', token=token)
    b = dict(state([key('pending', FP_STRAY)], [{'name': 'pending', 'vault': 'prod'}]), host='hsmB', token=token)
    rows = token_keys.rows([a, b], vault_state())
    assert [(r['host'], r['removable'], r['reason']) for r in rows] == [
        ('hsmA', False, 'the inventory names it'), ('hsmB', False, 'the inventory names it')], rows
    alone = dict(b, token={'serial': '43', 'label': 'partition'})
    assert [r['removable'] for r in token_keys.rows([a, alone], vault_state())] == [True, False]


def test_a_vault_key_the_inventory_no_longer_names_keeps_its_hsm_key_by_its_tag():
    listed = [state([key('hsm.renamed', FP_USED), key('stray', FP_STRAY)])]
    vaults = {'vaults': [{'name': 'prod', 'keys': [],
                          'tagged': [{'name': 'renamed', 'tag': 'byok-fingerprint', 'identity': FP_USED}]}]}
    rows = by_label(token_keys.rows(listed, vaults))
    assert not rows['hsm.renamed']['removable'] and rows['hsm.renamed']['vaults'] == ['prod/renamed/tagged'], rows
    assert rows['stray']['removable'], rows['stray']


def test_a_vault_key_that_shows_no_identity_keeps_every_hsm_key():
    """An AES vault key that may not encrypt and whose byok-kcv tag holds no identity (a 3-byte KCV an earlier release
    wrote) could be any HSM key: none is called unused while it is there."""
    rows = by_label(token_keys.rows(
        [state([key('stray', FP_STRAY)], [{'name': 'app', 'vault': 'prod'}])],
        vault_state({'name': 'app', 'version': 'v1', 'fingerprint': None, 'kcv': None, 'tags': {'byok-kcv': 'dc95c0'},
                     'version_count': 1})))
    assert not rows['stray']['removable'], rows['stray']
    assert 'vault prod key app shows no fingerprint or KCV, so it could hold any HSM key' in rows['stray']['reason']
