# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""Filters that plan a BYOK transfer from an inventory key list (used by the transfer role)."""

from ansible.errors import AnsibleFilterError

# Only key_identity (pure Python + cryptography): filters load in every worker, the Azure SDK would cost a second each time.
from ansible_collections.byok.keyvault.plugins.module_utils.key_identity import KCV_TAG, KeySpecError, validate_target, vault_type_from_url


def _label(key):
    return key.get('label') or key['name']


def byok_hsm_items(keys, vaults=None):
    """hsm_keygen keys[] items from inventory keys (name, vault, label, key_type, key_size, curve, id).

    With the vault definitions, every key is checked against what its vault accepts first, so that
    nothing is generated in the HSM for a key the vault would refuse.
    """
    items = []
    for key in keys or []:
        if not isinstance(key, dict) or not key.get('name') or not key.get('vault'):
            raise AnsibleFilterError('every item of byok_keys needs name (the vault key name) and vault; got %r' % (key,))
        if vaults is not None:
            vault = vaults.get(key['vault'])
            if not vault:
                raise AnsibleFilterError("byok_keys item %s names vault '%s', which byok_vaults does not define; add it to "
                                         "byok_vaults" % (key['name'], key['vault']))
            try:
                validate_target(key.get('key_type', 'RSA'), key.get('key_size'), key.get('curve'),
                                vault_type_from_url(vault.get('url'), vault.get('type', 'auto')))
            except KeySpecError as exc:
                raise AnsibleFilterError('byok_keys item %s (vault %s): %s' % (key['name'], key['vault'], exc))
        item = {'label': _label(key), 'key_type': key.get('key_type', 'RSA')}
        for field in ('key_size', 'curve', 'id'):
            if key.get(field) is not None:
                item[field] = key[field]
        same = [i for i in items if i['label'] == item['label']]
        if same and same[0] != item:
            raise AnsibleFilterError("byok_keys lists HSM label '%s' twice with different specs (%s and %s); one HSM key "
                                     "can go to several vaults only with the same type and size" % (item['label'], same[0], item))
        if not same:
            items.append(item)
    return items


def byok_vault_names(keys):
    """{vault: [vault key names]} for a key list."""
    out = {}
    for key in keys or []:
        out.setdefault(key['vault'], []).append(key['name'])
    return out


def byok_plan(keys, keygen_keys, vault_results):
    """One entry per key: what the HSM has, what the vault has, and whether the key must be transferred."""
    hsm = dict((k['label'], k) for k in keygen_keys or [])
    vault = {}
    for result in vault_results or []:
        item = result['item']
        name = item['key'] if isinstance(item, dict) else item  # a loop over dict2items or over vault names
        for entry in result.get('keys', []):
            vault[(name, entry['name'])] = entry
    plan = []
    for key in keys or []:
        h = hsm.get(_label(key), {})
        v = vault.get((key['vault'], key['name']), {'exists': False})
        hsm_fp = h.get('fingerprint')
        if h.get('key_type') == 'oct':
            # the KCV the vault computes; the tag written at import only when the key may not encrypt
            vault_fp = v.get('kcv') or (v.get('tags') or {}).get(KCV_TAG)
        else:
            vault_fp = v.get('fingerprint')
        if not v.get('exists'):
            state, transfer = 'missing in vault', True
        elif hsm_fp and vault_fp == hsm_fp:
            state, transfer = 'in place', False
        elif key.get('force'):
            state, transfer = 'vault holds another key; force: rotating', True
        elif hsm_fp is None:
            state, transfer = 'vault holds a key; the HSM key is not generated yet (check mode)', True
        else:
            state, transfer = 'vault holds another key', False
        plan.append({
            'name': key['name'], 'vault': key['vault'], 'label': _label(key),
            'key_type': h.get('key_type') or key.get('key_type', 'RSA'), 'key_size': h.get('key_size'), 'curve': h.get('curve'),
            'hsm_fingerprint': hsm_fp, 'vault_fingerprint': vault_fp, 'vault_kid': v.get('kid'),
            'version_count': v.get('version_count', 0), 'state': state, 'transfer': transfer,
            'key_ops': key.get('key_ops'), 'tags': key.get('tags'), 'enabled': key.get('enabled', True),
            'not_before': key.get('not_before'), 'expires_on': key.get('expires_on'), 'force': key.get('force', False),
        })
    return plan


def byok_wrap_label(entry):
    """byok_wrap keys[] item that returns the .byok as content (no file): just the HSM label."""
    return {'label': _label(entry)}


def byok_wrap_item(entry, directory, vault_prefix=True):
    """byok_wrap keys[] item for a plan entry or inventory key: HSM label and the .byok path in a directory."""
    name = '%s-%s' % (entry['vault'], entry['name']) if vault_prefix else entry['name']
    return {'label': _label(entry), 'dest': '%s/%s.byok' % (directory, name)}


def byok_import_item(entry, directory):
    """keyvault_import keys[] item for a plan entry whose .byok was brought to `directory` (unset fields left out)."""
    item = {
        'name': entry['name'], 'byok_file': '%s/%s-%s.byok' % (directory, entry['vault'], entry['name']) if directory else None,
        'key_type': entry['key_type'], 'key_size': entry['key_size'] if entry['key_type'] != 'EC' else None,
        'curve': entry['curve'] if entry['key_type'] == 'EC' else None,
        'expected_fingerprint': entry['hsm_fingerprint'], 'key_ops': entry.get('key_ops'), 'tags': entry.get('tags'),
        'enabled': entry.get('enabled', True), 'not_before': entry.get('not_before'), 'expires_on': entry.get('expires_on'),
        'force': entry.get('force', False),
    }
    return dict((k, v) for k, v in item.items() if v is not None)


def byok_flatten_imports(loop_results):
    """Per-key import outcomes ({vault, name, changed, failed, msg, kid, fingerprint}) from a keyvault_import loop over vaults.

    A vault whose whole call failed (authentication, network) marks each of its keys failed with that message.
    """
    out = []
    for r in loop_results or []:
        vault = r.get('item')
        if r.get('keys'):
            for k in r['keys']:
                entry = dict(k)
                entry['vault'] = vault
                out.append(entry)
        elif r.get('failed'):
            args = (r.get('invocation') or {}).get('module_args') or {}
            for k in args.get('keys') or []:
                out.append({'vault': vault, 'name': k.get('name'), 'changed': False, 'failed': True, 'msg': r.get('msg', '')})
    return out


def byok_fleet_names(hosts_vars):
    """{vault: [vault key names]} over several HSM hosts; a vault key claimed by two hosts is an error."""
    owner = {}
    out = {}
    for hv in hosts_vars or []:
        host = hv['inventory_hostname']
        for key in hv.get('byok_keys') or []:
            where = (key.get('vault'), key.get('name'))
            if where in owner and owner[where] != host:
                raise AnsibleFilterError('vault key %s in vault %s is listed by two HSM hosts (%s and %s); a vault key can hold '
                                         'only one HSM key: keep it on one host' % (where[1], where[0], owner[where], host))
            if where not in owner:
                owner[where] = host
                out.setdefault(where[0], []).append(where[1])
    return out


def byok_kek_vaults(hosts_vars, vault_results, regenerate='fail'):
    """Vaults whose KEK is needed before any HSM work: some key of the fleet is not in the vault yet, a key has
    force: true, or regenerate may make a new HSM key.  A fleet already in place needs no KEK (the no-op run)."""
    present = {}
    for result in vault_results or []:
        item = result.get('item')
        vault = item['key'] if isinstance(item, dict) else item
        present[vault] = set(e['name'] for e in result.get('keys') or [] if e.get('exists'))
    out = []
    for hv in hosts_vars or []:
        for key in hv.get('byok_keys') or []:
            vault = key.get('vault')
            if vault in out:
                continue
            if key['name'] not in present.get(vault, set()) or key.get('force') or regenerate in ('full_idempotence', 'always'):
                out.append(vault)
    return sorted(out)


def byok_fleet_import_items(hosts_vars, vault, check_mode=False):
    """keyvault_import keys[] items for one vault over several HSM hosts: the keys each host planned to move,
    with the .byok content its byok_wrap returned.  Hosts that failed before wrapping have nothing here."""
    items = []
    for hv in hosts_vars or []:
        plan = hv.get('_byok_plan') or []
        contents = {}
        for r in (hv.get('_byok_wrap') or {}).get('results') or []:
            if r.get('item') == vault:
                for k in r.get('keys') or []:
                    if k.get('byok_content'):
                        contents[k['label']] = k['byok_content']
        for entry in plan:
            if entry['vault'] != vault or not entry['transfer']:
                continue
            item = byok_import_item(entry, None)
            item.pop('byok_file', None)
            if entry['label'] in contents:
                item['byok_content'] = contents[entry['label']]
            elif not check_mode:
                continue  # nothing was wrapped for this key: its host reports why
            items.append(item)
    return items


def byok_host_keys(hosts_vars):
    """Every inventory key of some HSM hosts (their hostvars), each with its host."""
    out = []
    for hv in hosts_vars or []:
        for key in hv.get('byok_keys') or []:
            item = dict(key)
            item['host'] = hv['inventory_hostname']
            item.setdefault('label', key['name'])
            out.append(item)
    return out


def byok_import_report(import_results, vaults=None):
    """Report rows (as byok_report makes them) from keyvault_import loop results over byok_host_keys items."""
    rows = []
    for r in import_results or []:
        item = r.get('item') or {}
        key = r.get('key') or {}
        row = {'host': item.get('host'), 'vault': item.get('vault'), 'name': item.get('name'), 'label': item.get('label'),
               'vault_url': ((vaults or {}).get(item.get('vault')) or {}).get('url'),
               'key_type': item.get('key_type'), 'key_size': item.get('key_size'), 'curve': item.get('curve'),
               'hsm_fingerprint': r.get('expected_fingerprint') or (r.get('fingerprint') if not r.get('failed') else None),
               'vault_fingerprint': r.get('fingerprint'), 'kid': r.get('kid') or key.get('kid'), 'message': '',
               'token': None, 'kek_kid': None, 'wrap_method': None}
        if r.get('failed'):
            row['result'] = 'failed'
            row['message'] = r.get('msg', '')
        elif r.get('changed'):
            row['result'] = 'would transfer' if r.get('kid') is None else 'transferred'
        else:
            row['result'] = 'in place'
        row['match'] = bool(row['hsm_fingerprint']) and row['hsm_fingerprint'] == row['vault_fingerprint']
        rows.append(row)
    return rows


TOKEN_FIELDS = ('vendor', 'manufacturer', 'model', 'serial', 'label', 'firmware_version', 'library_version')


def byok_report(plan, import_results, host, token=None, keks=None, wrap_results=None, vaults=None):
    """One report row per key of a host: what the HSM and the vault hold after the run and what happened.

    token: the token facts hsm_keygen returned; keks: the byok_kek_fetch loop results; wrap_results:
    the byok_wrap loop results; vaults: byok_vaults (for the URLs).  Rows hold no secret.
    """
    imports = dict(((r.get('vault'), r.get('name')), r) for r in import_results or [])
    kek_kids = dict((r.get('item'), r.get('kid')) for r in keks or [])
    wrapped = {}
    for r in wrap_results or []:
        for k in r.get('keys') or []:
            wrapped[(r.get('item'), k.get('label'))] = k.get('wrap_method')
    token_facts = dict((f, (token or {}).get(f)) for f in TOKEN_FIELDS)
    rows = []
    for entry in plan or []:
        row = {'host': host, 'vault': entry['vault'], 'name': entry['name'], 'label': entry['label'],
               'vault_url': ((vaults or {}).get(entry['vault']) or {}).get('url'),
               'key_type': entry['key_type'], 'key_size': entry['key_size'], 'curve': entry['curve'],
               'hsm_fingerprint': entry['hsm_fingerprint'], 'vault_fingerprint': entry['vault_fingerprint'],
               'kid': entry['vault_kid'], 'message': '', 'token': token_facts,
               'kek_kid': kek_kids.get(entry['vault']) if entry['transfer'] else None,
               'wrap_method': wrapped.get((entry['vault'], entry['label']))}
        r = imports.get((entry['vault'], entry['name']))
        if entry['state'] == 'vault holds another key':
            row['result'] = 'failed'
            row['message'] = ("vault key %s is another key than HSM key %s (vault %s, HSM %s); nothing was wrapped or imported. "
                              "Set force: true on this key to import the HSM key as a new version (a rotation)"
                              % (entry['name'], entry['label'], entry['vault_fingerprint'], entry['hsm_fingerprint']))
        elif not entry['transfer']:
            row['result'] = 'in place'
        elif r is None:
            row['result'] = 'failed'
            row['message'] = ('no import result for this key: the import step failed before reaching it '
                              '(see the output of the import task)')
        elif r.get('failed'):
            row['result'] = 'failed'
            row['message'] = r.get('msg', '')
        elif r.get('changed') and r.get('kid') is None:
            row['result'] = 'would transfer'
        elif r.get('changed'):
            row['result'] = 'transferred'
            row['kid'] = r.get('kid')
            row['vault_fingerprint'] = r.get('fingerprint')
            row['attempts'] = r.get('attempts')
        else:
            row['result'] = 'in place'
            row['kid'] = r.get('kid')
            row['vault_fingerprint'] = r.get('fingerprint')
        row['match'] = bool(row['hsm_fingerprint']) and row['hsm_fingerprint'] == row['vault_fingerprint']
        rows.append(row)
    return rows


def byok_failed_rows(keys, host, message):
    """Report rows marking every key of a host failed with one message (the host stopped before its plan)."""
    return [{'host': host, 'vault': k.get('vault'), 'name': k.get('name'), 'label': k.get('label') or k.get('name'),
             'key_type': k.get('key_type', 'RSA'), 'key_size': k.get('key_size'), 'curve': k.get('curve'),
             'hsm_fingerprint': None, 'vault_fingerprint': None, 'kid': None, 'match': False, 'result': 'failed',
             'message': message, 'token': None, 'kek_kid': None, 'wrap_method': None, 'vault_url': None}
            for k in keys or [] if isinstance(k, dict)]


def byok_table(rows):
    """The report rows as lines of a fixed-width table a person can read."""
    header = ('KEY', 'HOST', 'VAULT', 'VERSION', 'FINGERPRINT (HSM = VAULT)', 'RESULT')
    lines = []
    for r in rows or []:
        version = (r.get('kid') or '').rstrip('/').rsplit('/', 1)[-1] if r.get('kid') else '-'
        fp = r.get('hsm_fingerprint') or '-'
        mark = 'match' if r.get('match') else ('-' if not r.get('vault_fingerprint') else 'DIFFERS')
        lines.append((r['name'], r['host'], r['vault'], version[:12], '%s %s' % (fp[:16], mark),
                      r['result'] + ((': ' + r['message']) if r.get('message') else '')))
    widths = [max(len(x[i]) for x in [header] + lines) for i in range(len(header) - 1)]
    table = ['  '.join(c.ljust(w) for c, w in zip(line[:-1], widths)) + '  ' + line[-1] for line in [header] + lines]
    counts = {}
    for r in rows or []:
        counts[r['result']] = counts.get(r['result'], 0) + 1
    summary = ', '.join('%s: %d' % (k, counts[k]) for k in sorted(counts))
    if rows and set(counts) == set(['in place']):
        summary = 'nothing to transfer: all %d keys are already in their vaults' % len(rows)
    return table + [summary or 'no keys in the inventory']


def byok_details(rows):
    """Per key: the vault kid and both full fingerprints, for people who compare them by eye."""
    out = []
    for r in rows or []:
        out.append('%s (%s, %s): %s' % (r['name'], r['host'], r['result'], r.get('kid') or 'no vault version'))
        out.append('    HSM   %s %s' % ('kcv' if r.get('key_type') == 'oct' else 'sha256', r.get('hsm_fingerprint') or '-'))
        out.append('    vault %s %s' % ('kcv' if r.get('key_type') == 'oct' else 'sha256', r.get('vault_fingerprint') or '-'))
    return out


class FilterModule(object):
    def filters(self):
        return {
            'byok_hsm_items': byok_hsm_items,
            'byok_vault_names': byok_vault_names,
            'byok_plan': byok_plan,
            'byok_wrap_item': byok_wrap_item,
            'byok_wrap_label': byok_wrap_label,
            'byok_import_item': byok_import_item,
            'byok_flatten_imports': byok_flatten_imports,
            'byok_host_keys': byok_host_keys,
            'byok_fleet_names': byok_fleet_names,
            'byok_fleet_import_items': byok_fleet_import_items,
            'byok_kek_vaults': byok_kek_vaults,
            'byok_import_report': byok_import_report,
            'byok_report': byok_report,
            'byok_table': byok_table,
            'byok_failed_rows': byok_failed_rows,
            'byok_details': byok_details,
        }
