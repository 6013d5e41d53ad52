# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vault_backend: an update or a deletion acts only on the version the run read and decided on, and a disabled version
known by its tag alone is re-enabled only if its key material is the HSM key's."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import types

from ansible_collections.byok.keyvault.plugins.module_utils import vault_backend, vault_client
from ansible_collections.byok.keyvault.plugins.module_utils.azure_errors import KeyVaultError
from ansible_collections.byok.keyvault.plugins.module_utils.module_base import failed_result


class Vault(object):
    """A vault of one key with the interface vault_backend uses (current, update, delete), recording the writes."""

    def __init__(self, version, fingerprint=None):
        self.version, self.fingerprint, self.writes = version, fingerprint, []

    def current(self, name):
        return types.SimpleNamespace(properties=types.SimpleNamespace(version=self.version))

    def update(self, name, version, **fields):
        self.writes.append(('update', version, fields))
        properties = types.SimpleNamespace(enabled=fields.get('enabled', True), tags={'byok-fingerprint': 'f-hsm', 'o': 'x'})
        return types.SimpleNamespace(key=object(), properties=properties)

    def delete(self, name, purge=False):
        self.writes.append(('delete', name))
        return {'deleted': True, 'scheduled_purge_date': None}


class Kv(object):
    check_mode = False

    @staticmethod
    def run_keys_parallel(items, func, key_field, what):
        out = []
        for item in items:
            try:
                out.append(func(item))
            except KeyVaultError as exc:  # as the module base's per-key loop does
                out.append(failed_result(item, key_field, exc))
        return out


def test_an_update_of_a_version_that_is_no_longer_current_changes_nothing():
    vault = Vault('v2')  # another client made v2 after the run read v1
    result = vault_backend.update_vault(Kv(), vault, [{'name': 'k', 'version': 'v1', 'changes': {'tags': [{}, {'a': 'b'}]}}])
    assert vault.writes == [], vault.writes
    assert 'changed since this run read it: its current version is now v2, not v1; nothing was updated' in str(result), result


def test_a_deletion_of_a_version_that_is_no_longer_current_deletes_nothing():
    vault = Vault('v2')
    result = vault_backend.remove_vault(Kv(), vault, [{'name': 'k', 'action': 'delete', 'version': 'v1'}])
    assert vault.writes == [] and 'nothing was deleted' in str(result), (vault.writes, result)
    vault = Vault('v1')
    vault_backend.remove_vault(Kv(), vault, [{'name': 'k', 'action': 'delete', 'version': 'v1'}])
    assert vault.writes == [('delete', 'k')]


class GoneWhenAsked(Vault):
    """A vault whose answer to DELETE was lost: the retry found no key; the soft-deleted key is deleted_version."""

    def __init__(self, version, deleted_version):
        super(GoneWhenAsked, self).__init__(version)
        self.deleted_version = deleted_version

    def delete(self, name, purge=False):
        self.writes.append(('delete', name))
        return {'deleted': False, 'scheduled_purge_date': None}

    def get_deleted(self, name):
        return types.SimpleNamespace(properties=types.SimpleNamespace(version=self.deleted_version))


def test_a_deletion_whose_answer_was_lost_is_this_runs_not_someone_elses():
    mine = vault_backend.remove_vault(Kv(), GoneWhenAsked('v1', 'v1'), [{'name': 'k', 'action': 'delete', 'version': 'v1'}])
    assert mine['keys'][0]['changed'] and mine['keys'][0]['answer_lost'] and not mine['keys'][0]['gone'], mine
    other = vault_backend.remove_vault(Kv(), GoneWhenAsked('v1', 'v0'), [{'name': 'k', 'action': 'delete', 'version': 'v1'}])
    assert other['keys'][0]['gone'] and not other['keys'][0].get('answer_lost'), other


def test_a_disabled_version_enabled_whose_key_is_another_is_disabled_again(monkeypatch):
    vault = Vault('v1')
    monkeypatch.setattr(vault_backend, 'vault_identity', lambda v, key, key_type, key_size: 'f-someone-else')
    item = {'name': 'k', 'version': 'v1', 'changes': {'enabled': [False, True], 'tags': [{}, {'o': 'z'}]}, 'disabled': True,
            'expected': 'f-hsm', 'key_type': 'EC', 'key_size': None}
    result = vault_backend.update_vault(Kv(), vault, [item])
    # enabled alone first; another key's material: disabled again with its identity tag corrected, nothing else written
    assert [w[2] for w in vault.writes] == [{'enabled': True},
                                            {'enabled': False, 'tags': {'byok-fingerprint': 'f-someone-else', 'o': 'x'}}], vault.writes
    assert 'its key material is not the HSM key (f-someone-else, not f-hsm); it was disabled again' in str(result), result
    assert result['keys'][0]['vault_identity'] == 'f-someone-else', result
    monkeypatch.setattr(vault_backend, 'vault_identity', lambda v, key, key_type, key_size: 'f-hsm')
    vault.writes = []
    result = vault_backend.update_vault(Kv(), vault, [item])
    assert [w[2] for w in vault.writes] == [{'enabled': True}, {'tags': {'o': 'z'}}] and 'failed' not in str(result), (
        vault.writes, result)


def test_an_update_that_got_no_answer_has_an_unknown_outcome():
    class Lost(Vault):
        """Update Key as vault_client.Vault makes it, over a connection that is reset before any answer."""

        def _call(self, what, operation, func, *args, **kwargs):
            raise KeyVaultError('https://x is unreachable during %s (connection reset)' % what)

        client = types.SimpleNamespace(update_key_properties=None)
        update = vault_client.Vault.update

    result = vault_backend.update_vault(Kv(), Lost('v1'), [{'name': 'k', 'version': 'v1', 'changes': {'enabled': [True, False]}}])
    assert result['keys'][0]['failed'] and result['keys'][0]['outcome_unknown'], result


def test_the_identities_older_versions_held_are_read_from_the_versions_themselves(monkeypatch):
    """What each version other than the current one holds, as the vault shows it (a tag can be removed or copied): a
    version without a tag still counts, a disabled one counts by its tag, and the current version is the one the vault
    names, not the newest in the list."""
    def version(v, tags=None, enabled=True, fp=None):
        return types.SimpleNamespace(version=v, tags=tags or {}, enabled=enabled, fp=fp)

    listed = [version('v1', {'byok-fingerprint': 'a1' * 32}, fp='a1' * 32), version('v2', fp='b2' * 32),
              version('v3', {'byok-fingerprint': 'c3' * 32}, enabled=False), version('v4', fp='d4' * 32),
              version('v5', {'byok-fingerprint': 'e5' * 32}, fp='e5' * 32)]

    class History(object):
        @staticmethod
        def versions(name):
            return listed

        @staticmethod
        def get(name, version):
            found = [v for v in listed if v.version == version][0]
            return types.SimpleNamespace(key_type='EC-HSM', fp=found.fp)

    monkeypatch.setattr(vault_backend, 'key_fingerprint', lambda key: key.fp)
    # v4 is current (as the read found it); v5, newer, was imported disabled
    assert vault_backend.earlier_identities(History(), 'k', 'v4') == {
        'name': 'k', 'earlier_identities': sorted(['a1' * 32, 'b2' * 32, 'c3' * 32, 'e5' * 32])}
