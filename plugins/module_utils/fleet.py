# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transfer role's steps over plain data: which KEKs to fetch, what each key does, what goes to each vault.

Each function takes the plan (module_utils/inventory.py) and the results of the module steps as the
role registered them, and returns plain data for the next step.  The decisions themselves are in
module_utils/decisions.py.  Pure Python: no SDK, no PKCS#11.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.byok.keyvault.plugins.module_utils import decisions
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import key_name_key


def _results(registered):
    """The per-item results of a step as the role registered it: a loop's results, a multi-vault module's vaults (one
    result per vault), or one module result with its keys.  Anything else that ran is a step that failed as a whole
    (its module could not start or was refused its arguments: the role registers with failed_when: false, so its
    'failed' says nothing), given as one failed result with every=True."""
    if isinstance(registered, dict):
        for field in ('results', 'vaults'):
            if field in registered:
                return registered.get(field) or []
        if registered.get('skipped') or not registered:
            return []
        if 'keys' in registered and not registered.get('unreachable'):
            return [registered]
        return [dict(registered, every=True, failed=True)]
    return registered or []


def _whole_failure(registered):
    """The message of a step that failed before it gave any per-vault result (its module could not start), else None."""
    for result in _results(registered):
        if result.get('every'):
            return result.get('msg') or 'failed'
    return None


def _failed(result, field):
    """Whether a loop item's module call failed: the role registers with failed_when: false (the failure is reported once,
    in its rows, not as a task failure too), so a result without the field a success always has is a failure."""
    return bool(result.get('failed')) or (field not in result and not result.get('skipped'))


def _vault_of(result):
    """The vault a result is about: its loop item's name, or the name a multi-vault module returned."""
    item = result.get('item')
    if item is None:
        return result.get('name')
    return item.get('name') if isinstance(item, dict) else item


def per_host(registered, plan):
    """{host: registered} with each vault's keys cut down to those of the host, for every HSM host of the plan.

    registered is a multi-vault module's result (keyvault_key_info or keyvault_import with vaults).  Computed once for
    the fleet, it spares every host's step from going through every key of every host; a vault entry keeps its other
    fields (name, failed, msg) for each host that sends keys to it.  A result without per-vault entries (the step was
    skipped, or failed as a whole) is every host's as it is.
    """
    hosts = plan.get('hosts') or {}
    if not isinstance(registered, dict) or 'vaults' not in registered:
        return dict((host, registered) for host in hosts)
    owners = {}
    for host, host_plan in hosts.items():
        for entry in host_plan.get('keys') or []:
            owners.setdefault((entry['vault'], key_name_key(entry['name'])), set()).add(host)
    # not the fleet's message nor its module arguments (every .byok of the fleet): each host gets its own part only
    top = dict((k, v) for k, v in registered.items() if k not in ('vaults', 'msg', 'invocation'))
    out = dict((host, dict(top, vaults=[])) for host in hosts)
    for result in registered.get('vaults') or []:
        vault = _vault_of(result)
        head = dict((k, v) for k, v in result.items() if k != 'keys')
        mine = dict((host, dict(head, keys=[])) for host, host_plan in hosts.items() if vault in (host_plan.get('vaults') or []))
        for key in result.get('keys') or []:
            for host in owners.get((vault, key_name_key(key.get('name'))), ()):
                if host in mine:
                    mine[host]['keys'].append(key)
        for host, cut in mine.items():
            out[host]['vaults'].append(cut)
    return out


def vault_holdings(vault_state):
    """{vault: {name key: entry}} of what each vault read holds; vaults whose read failed are left out."""
    out = {}
    for result in _results(vault_state):
        if result.get('skipped') or _failed(result, 'keys'):
            continue
        out[_vault_of(result)] = dict((key_name_key(e.get('name')), e) for e in result.get('keys') or [])
    return out


#: where a vault identity came from (as keyvault_import's identity_source): the vault's JWK, a KCV the vault computed, or
#: only the byok-kcv tag the collection wrote itself
SOURCE_JWK = 'vault-jwk'
SOURCE_VAULT_KCV = 'vault-kcv'
SOURCE_KCV_TAG = 'kcv-tag'


def vault_identity_and_source(entry, key_type):
    """(identity, source) of the current version of a vault key (keyvault_key_info's entry): its fingerprint from the
    vault's JWK, or for AES the KCV the vault computed, else the byok-kcv tag (source kcv-tag: proves nothing)."""
    if not entry or not entry.get('exists'):
        return None, None
    if ki.identified_by_kcv(key_type):
        if entry.get('kcv'):
            return entry['kcv'], SOURCE_VAULT_KCV
        tag = (entry.get('tags') or {}).get(ki.KCV_TAG)
        return tag, (SOURCE_KCV_TAG if tag else None)
    return entry.get('fingerprint'), (SOURCE_JWK if entry.get('fingerprint') else None)


def vault_identity(entry, key_type):
    """What identifies the current version of a vault key: its fingerprint, or for AES its KCV (vault-side, else tag)."""
    return vault_identity_and_source(entry, key_type)[0]


def kek_vaults(plan, vault_state, hosts=None):
    """The vault entries of the plan whose KEK must be fetched before any HSM work (a no-op fleet needs none); hosts: only
    the keys of these HSM hosts count (the others stopped: their HSM could not be used)."""
    holdings = vault_holdings(vault_state)
    wanted = set()
    for host, host_plan in (plan.get('hosts') or {}).items():
        if hosts is not None and host not in hosts:
            continue
        policy = host_plan.get('regenerate') or 'fail'
        for entry in host_plan.get('keys') or []:
            if entry['vault'] not in holdings:
                continue  # its vault could not be read: its hosts stop (vault_problems)
            held = holdings[entry['vault']].get(key_name_key(entry['name']))
            if decisions.kek_needed(bool(held and held.get('exists')), entry.get('force'), policy):
                wanted.add(entry['vault'])
    return [v for v in plan.get('vaults') or [] if v['name'] in wanted]


def vault_problems(host_plan, vault_state, keks):
    """Why this host cannot go on: a vault it sends keys to could not be read, or its KEK could not be had."""
    problems = []
    failed = dict((_vault_of(r), r.get('msg') or 'failed') for r in _results(vault_state) if _failed(r, 'keys'))
    failed_keks = dict((_vault_of(r), r.get('msg') or 'failed') for r in _results(keks) if _failed(r, 'kid'))
    every = _whole_failure(vault_state)
    for vault in host_plan.get('vaults') or []:
        if every:
            problems.append('vault %s could not be read: %s' % (vault, every))
        elif vault in failed:
            problems.append('vault %s could not be read: %s' % (vault, failed[vault]))
        elif vault in failed_keks:
            problems.append('the KEK of vault %s could not be had: %s' % (vault, failed_keks[vault]))
    return problems


def decide(host_plan, keygen, vault_state, keks):
    """What each key of a host does, and the wrap work per vault.

    Returns {'keys': [entry + hsm/vault facts + action, reason], 'wrap_keks': [{kek_kid, kek_pem, kek_fingerprint}],
    'wrap_keys': [{label, id, kek_kid}], 'wrap_vaults': {kek_kid: vault}}: byok_wrap's keks and keys options (each HSM
    key once per vault it goes to) and the vault of each KEK.  action is import, keep or conflict (decisions.import_decision).
    """
    hsm = dict((k.get('label'), k) for k in (keygen or {}).get('keys') or [])
    holdings = vault_holdings(vault_state)
    kek = dict((_vault_of(r), r) for r in _results(keks) if not _failed(r, 'kid') and not r.get('skipped'))
    keys = []
    wrap_keks = {}
    wrap_keys = []
    for entry in host_plan.get('keys') or []:
        h = hsm.get(entry['label']) or {}
        held = holdings.get(entry['vault'], {}).get(key_name_key(entry['name']))
        hsm_identity = h.get('fingerprint')
        vault_id, vault_source = vault_identity_and_source(held, entry['key_type'])
        action, reason = decisions.import_decision(bool(held and held.get('exists')), vault_id, hsm_identity, entry.get('force'))
        if action == decisions.IMPORT and entry['vault'] not in kek:
            # only in check mode, for a key the run would import although no KEK was fetched: the real run fetches it
            reason += '; its KEK is fetched by the real run'
        decided = dict(entry, action=action, reason=reason, hsm_fingerprint=hsm_identity, vault_fingerprint=vault_id,
                       identity_source=vault_source,
                       vault_kid=(held or {}).get('kid'), rotation=bool(action == decisions.IMPORT and held and held.get('exists')),
                       key_size=h.get('key_size') or entry.get('key_size'), curve=h.get('curve') or entry.get('curve'))
        keys.append(decided)
        if action == decisions.IMPORT and entry['vault'] in kek:
            fetched = kek[entry['vault']]
            wrap_keks.setdefault(entry['vault'], {'kek_kid': fetched.get('kid'), 'kek_pem': fetched.get('public_key_pem'),
                                                  'kek_fingerprint': fetched.get('fingerprint')})
            item = {'label': entry['label'], 'kek_kid': fetched.get('kid')}
            if entry.get('id'):
                item['id'] = entry['id']
            if item not in wrap_keys:
                wrap_keys.append(item)
    return {'keys': keys, 'wrap_keks': [wrap_keks[v] for v in sorted(wrap_keks)], 'wrap_keys': wrap_keys,
            'wrap_vaults': dict((k['kek_kid'], v) for v, k in wrap_keks.items())}


def wrap_results(work, wrapped):
    """{(vault, label): byok_wrap's result for that key} of the host's wrap step (for the report)."""
    return _wrapped_by_vault(work, wrapped)


def _wrapped_by_vault(work, wrapped):
    """{(vault, label): byok_wrap's result for that key} of the host's wrap step."""
    vaults = (work or {}).get('wrap_vaults') or {}
    out = {}
    for result in _results(wrapped):
        for k in result.get('keys') or []:
            out[(vaults.get(k.get('kek_kid')), k.get('label'))] = k
    return out


IMPORT_FIELDS = ('name', 'key_type', 'key_size', 'curve', 'key_ops', 'tags', 'enabled', 'not_before', 'expires_on', 'force')


def outbox(work, wrapped, check_mode=False):
    """{vault: [keyvault_import keys[] items]} of the keys this host hands to the import, with their .byok content.

    A key whose wrap gave no content (its wrap failed) is left out outside check mode: its row says why.
    """
    contents = dict((where, k['byok_content']) for where, k in _wrapped_by_vault(work, wrapped).items() if k.get('byok_content'))
    out = {}
    for entry in (work or {}).get('keys') or []:
        if entry['action'] != decisions.IMPORT:
            continue
        item = dict((f, entry.get(f)) for f in IMPORT_FIELDS if entry.get(f) is not None)
        if entry['key_type'] == 'EC':
            item.pop('key_size', None)
        item['expected_fingerprint'] = entry.get('hsm_fingerprint')
        content = contents.get((entry['vault'], entry['label']))
        if content:
            item['byok_content'] = content
        elif not check_mode:
            continue
        out.setdefault(entry['vault'], []).append(dict((k, v) for k, v in item.items() if v is not None))
    return out


def imports_by_vault(hosts_vars, plan):
    """keyvault_import's vaults option: each vault of the plan that receives keys, with every host's byok_outbox for it."""
    out = []
    for vault in plan.get('vaults') or []:
        items = []
        for hv in hosts_vars or []:
            items.extend(((hv or {}).get('byok_outbox') or {}).get(vault['name']) or [])
        if items:
            out.append({'name': vault['name'], 'vault_url': vault['url'], 'vault_type': vault.get('kind') or 'auto',
                        'keys': items})
    return out


#: import_outcomes' key for "every key": the import step failed before it gave per-key results
EVERY_KEY = (None, None)


def import_outcomes(imports):
    """{(vault, name key): per-key result} from keyvault_import over imports_by_vault's vaults.

    A vault whose whole call failed (authentication, network) gives each of its keys that failure; an import step that
    could not run at all gives EVERY_KEY its failure.
    """
    out = {}
    every = _whole_failure(imports)
    if every:
        # the step gave no per-key answer: it may have stopped after some imports landed, so the outcome is unknown
        out[EVERY_KEY] = {'failed': True, 'outcome_unknown': True,
                          'msg': 'the import step failed as a whole (%s); some keys may have landed: re-run to confirm' % every}
    for result in _results(imports):
        vault = _vault_of(result)
        for k in result.get('keys') or []:
            out[(vault, key_name_key(k.get('name')))] = k
    return out


def kek_kids(keks):
    return dict((_vault_of(r), r.get('kid')) for r in _results(keks) if not _failed(r, 'kid'))


def kek_facts(keks):
    """{vault: {'kek_kid', 'kek_fingerprint'}} of the KEKs fetched, and {vault: message} of those that failed."""
    facts, failed = {}, {}
    for r in _results(keks):
        if r.get('skipped'):
            continue
        if _failed(r, 'kid'):
            failed[_vault_of(r)] = r.get('msg') or 'failed'
        else:
            facts[_vault_of(r)] = {'kek_kid': r.get('kid'), 'kek_fingerprint': r.get('fingerprint')}
    return facts, failed


def vault_reads(vault_state):
    """{vault: (keys by name key, message or None)} of a keyvault_key_info step: each vault's look-ups and, when its read
    failed, its own message; a step that failed as a whole gives every vault its message under the key None."""
    out = {}
    every = _whole_failure(vault_state)
    if every:
        out[None] = ({}, every)
    for result in _results(vault_state):
        if result.get('every') or result.get('skipped'):
            continue
        keys = dict((key_name_key(e.get('name')), e) for e in result.get('keys') or [])
        out[_vault_of(result)] = (keys, (result.get('msg') or 'failed') if _failed(result, 'keys') else None)
    return out


def wrap_methods(work, wrapped):
    return dict((where, k.get('wrap_method')) for where, k in _wrapped_by_vault(work, wrapped).items())


def wrap_files(keys, directory, name_field='label'):
    """byok_wrap keys[] items writing each key's .byok into a directory: DIRECTORY/<name>.byok (label, id kept)."""
    items = []
    for key in keys or []:
        item = {'label': key['label'], 'dest': '%s/%s.byok' % (directory.rstrip('/'), key[name_field])}
        if key.get('id'):
            item['id'] = key['id']
        items.append(item)
    return items


def bundle_items(host_plan, vault, bundle_dir):
    """byok_wrap keys[] items for the keys of a host that go to one vault, each with its .byok path in a transfer bundle."""
    keys = [e for e in host_plan.get('keys') or [] if e['vault'] == vault]
    return wrap_files([dict(e, bundle_name=e['bundle_file'][:-len('.byok')]) for e in keys], bundle_dir, 'bundle_name')
