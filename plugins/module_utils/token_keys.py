# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keys a token holds beside the inventory and the vaults (the playbook hsm_keys.yml): which vault keys to read, one
row per HSM key (in the inventory? in a vault?), and which keys nobody uses, the only ones a clean-up may remove.

Pure Python on the controller: the HSM side is read by hsm_key_info, the vaults by keyvault_key_info, each in its own
process; this only compares what they returned.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.byok.keyvault.plugins.module_utils import decisions
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import rotation

#: what Key Vault accepts as a key name: a label that is not one cannot be a vault key's name
_KEY_NAME_RE = re.compile(r'^[0-9A-Za-z-]{1,127}$')


def inventory_labels(byok_keys):
    """The HSM labels the inventory names for a host (an entry's label, or its name when it has none)."""
    out = set()
    for key in byok_keys or []:
        if isinstance(key, dict):
            label = key.get('label') or key.get('name')
            if label:
                out.add(label)
    return out


def rotating_labels(byok_keys):
    """The labels of the entries with rotate_after: their later generations (LABEL.r2, ...) are named by the inventory too."""
    return set((k.get('label') or k.get('name')) for k in byok_keys or []
               if isinstance(k, dict) and k.get('rotate_after') and (k.get('label') or k.get('name')))


def _generation(label, rotating):
    """(base, N) when label is generation N (2 or more) of an entry with rotate_after, else None."""
    for base in rotating:
        n = rotation.generation_of(base, label)
        if n and n > 1:
            return base, n
    return None


def _key_vaults(key):
    vaults = key.get('vaults') or []
    if isinstance(vaults, str):
        vaults = [vaults]
    if key.get('vault'):
        vaults = [key['vault']] + list(vaults)
    return [v if isinstance(v, str) else (v or {}).get('name') for v in vaults]


def vault_reads(states):
    """keyvault_key_info's vaults option: every vault of byok_vaults, each with the names the inventory gives it and every
    HSM label found on the tokens (a stray key may be a vault key of its own label's name)."""
    vaults = {}
    for state in states:
        for name, vault in (state.get('byok_vaults') or {}).items():
            vaults.setdefault(name, vault)
    names = dict((name, set()) for name in vaults)
    labels = set()
    for state in states:
        for key in state.get('byok_keys') or []:
            if not isinstance(key, dict) or not key.get('name'):
                continue
            for vault in _key_vaults(key):
                if vault in names:
                    names[vault].add(key['name'])
        labels.update(k['label'] for k in state.get('keys') or [] if _KEY_NAME_RE.match(k.get('label') or ''))
    out = []
    for name in sorted(vaults):
        vault = vaults[name] or {}
        wanted = sorted(names[name] | labels)
        if wanted:
            out.append({'name': name, 'vault_url': vault.get('url'), 'vault_type': vault.get('type') or 'auto', 'names': wanted})
    return out


def key_kind(key):
    """'RSA 3072', 'EC P-256', 'oct 256' (AES)."""
    if key.get('key_type') == 'EC':
        return 'EC %s' % key.get('curve')
    if key.get('key_size'):
        return '%s %s' % (key.get('key_type'), key['key_size'])
    return str(key.get('key_type'))


def _vault_facts(vault_state):
    """([(vault, name, version, identity, version_count)], [problems]) of keyvault_key_info's result."""
    entries, problems = [], []
    if not isinstance(vault_state, dict) or vault_state.get('skipped'):
        return entries, ['the vaults were not read']
    if 'vaults' not in vault_state:
        return entries, ['the vaults could not be read: %s' % (vault_state.get('msg') or 'no result')]
    for vault in vault_state['vaults']:
        if vault.get('failed'):
            problems.append('vault %s could not be read: %s' % (vault.get('name'), vault.get('msg')))
            continue
        for key in vault.get('keys') or []:
            tags = key.get('tags')
            # a disabled current version shows no key material: the identity tag written with its import stands for it
            # (to keep an HSM key, a tag is evidence enough; the vault can enable the version again at any time)
            tagged = (ki.identity_of_tags(tags) or (None, None))[1]
            shown = key.get('fingerprint') or key.get('kcv') or tagged
            if key.get('exists'):
                entries.append((vault.get('name'), key['name'], key.get('version'), shown, key.get('version_count')))
            elif key.get('deleted'):
                # soft-deleted, recoverable (the transfer recovers a key listed again): its HSM key is still needed
                shown = key.get('deleted_fingerprint')
                entries.append((vault.get('name'), key['name'], 'soft-deleted', shown, 1))
            if (key.get('exists') or key.get('deleted')) and not decisions.known(shown):
                # a vault key that shows no identity (an AES key that may not encrypt, whose tag holds none this release
                # reads) could hold any HSM key: none is unused while it is there
                problems.append('vault %s key %s shows no fingerprint or KCV, so it could hold any HSM key'
                                % (vault.get('name'), key['name']))
        # the vault's keys under names nobody asked for that carry the identity tag: a key the inventory no longer names
        for key in vault.get('tagged') or []:
            entries.append((vault.get('name'), key.get('name'), 'tagged', key.get('identity'), 1))
    return entries, problems


def _token_of(state):
    """What the listing read of the host's token (serial and label), to tell which hosts see one token."""
    token = state.get('token') or {}
    return (token.get('serial'), token.get('label')) if token.get('serial') or token.get('label') else None


def _labels_of_token(states):
    """{host: (labels, rotating labels)} where the labels are those of every host that sees the same token (a network HSM's
    partition): a key one host's inventory needs is never unused on the token for another host."""
    shared = {}
    for state in states:
        token = _token_of(state)
        if token is not None:
            shared.setdefault(token, []).append(state)
    out = {}
    for state in states:
        group = shared.get(_token_of(state)) or [state]
        labels, rotating = set(), set()
        for other in group:
            labels |= inventory_labels(other.get('byok_keys'))
            rotating |= rotating_labels(other.get('byok_keys'))
        out[state.get('host')] = (labels, rotating)
    return out


def rows(states, vault_state):
    """One row per HSM key of every host: host, label, id, type, fingerprint, in_inventory, vaults (vault/name/version of
    each vault key whose current version is this key), removable (nobody uses it), reason (why it stays) and line (the
    row as one line of text)."""
    entries, problems = _vault_facts(vault_state)
    vaults = vault_state.get('vaults') if isinstance(vault_state, dict) else None
    read = sorted(set(str(v['name']) for v in vaults or [] if v.get('name')))
    older = ['%s/%s has %s versions' % (v, n, c) for v, n, ver, ident, c in entries if c is None or c > 1]
    out = []
    by_token = _labels_of_token(states)
    for state in states:
        labels, rotating = by_token[state.get('host')]
        for key in state.get('keys') or []:
            identity = key.get('fingerprint')
            held = ['%s/%s/%s' % (v, n, ver) for v, n, ver, ident, c in entries if decisions.same_identity(identity, ident)]
            generation = _generation(key.get('label'), rotating)
            row = {'host': state.get('host'), 'label': key.get('label'), 'id': key.get('id'), 'type': key_kind(key),
                   'fingerprint': identity, 'in_inventory': key.get('label') in labels or bool(generation), 'vaults': held,
                   'removable': False}
            if generation:
                row['reason'] = 'the inventory names it (generation %d of %s, rotate_after)' % (generation[1], generation[0])
            elif row['in_inventory']:
                row['reason'] = 'the inventory names it'
            elif held:
                row['reason'] = 'a vault holds it'
            elif key.get('error'):
                row['reason'] = 'its facts cannot be read: %s' % key['error']
            elif not decisions.known(identity):
                row['reason'] = 'its fingerprint or KCV is unknown, so no vault can be ruled out'
            elif problems:
                row['reason'] = '; '.join(problems)
            elif older:
                row['reason'] = ('older vault versions may hold it (%s; their keys are not compared); check them before '
                                 'removing it with hsm_key_remove' % ', '.join(sorted(older)))
            else:
                row['removable'] = True
                # only the vaults this inventory names were read: a vault of another inventory may hold it
                row['reason'] = ('neither the inventory nor its vaults (%s) use it; a vault the inventory does not name may'
                                 % (', '.join(read) or 'none'))
            row['line'] = line(row)
            out.append(row)
    return out


def line(r):
    """One line for an HSM key: host, label, type, id, in inventory, in a vault, and whether it stays or is unused."""
    return '%s: %s  %s  id=%s  in inventory: %s  in a vault: %s  -> %s (%s)' % (
        r['host'], r['label'], r['type'], r['id'] or '-', 'yes' if r['in_inventory'] else 'no',
        ', '.join(r['vaults']) if r['vaults'] else 'no', 'unused' if r['removable'] else 'keep', r['reason'])


def removals(table, host):
    """hsm_key_remove's keys option for one host: its removable keys, each with the identity that was listed."""
    return [{'label': r['label'], 'id': r['id'], 'fingerprint': r['fingerprint']}
            for r in table if r['host'] == host and r['removable']]
