# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of a fleet, and the rules across its HSM hosts.

``plan_fleet(spec, hosts)`` checks each HSM host's declared variables (inventory.check_host: the role's argument spec and
what Azure or the HSM would refuse), then what no host alone shows - one value per fleet variable, one name per vault,
one HSM key per vault key, one key per label on a token several hosts see, no HSM key destroyed that another host uses,
also a host outside the run's --limit - and returns the plan: for every host the keys it generates and where each goes,
for every vault the key names it must be asked about, and one key record per (host, key, vault) for the transfer's
steps.  Every problem of the whole fleet comes back as a one-line inventory.Problem.  Pure Python: no SDK, no PKCS#11,
no I/O; the same function answers --check.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.byok.keyvault.plugins.module_utils import bundle
from ansible_collections.byok.keyvault.plugins.module_utils import record
from ansible_collections.byok.keyvault.plugins.module_utils import rotation
from ansible_collections.byok.keyvault.plugins.module_utils.inventory import (
    _CONTROL_RE, Problem, _bad, _key_path, _ok, _other_key, _show, _uses_label, _would_be, check_host, count)
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import key_name_key

#: variables that describe the fleet rather than one host: the vault steps run once for every HSM host, with one value
#: (byok_vaults is compared vault by vault: hosts may name different vaults)
FLEET_VARS = ('byok_controller', 'byok_azure', 'byok_kek_delete_after_run', 'byok_kek_purge', 'byok_import_parallel',
              'byok_vault_parallel', 'byok_expiry_warning_days')


def plan_fleet(spec, hosts, now=None, vaults_required=True, outside=None):
    """(plan, problems): the plan of every HSM host of the play, and every problem of the whole inventory.

    spec: the transfer role's argument spec options; hosts: {host: {variable: value}} as the inventory gives them.
    outside: the same of the HSM hosts of the inventory this run leaves out (a --limit): not planned, and their own
    problems not reported, but a key of this run must not take a vault key, or destroy or seal an HSM key, one of them uses.
    The plan holds no secret.  With problems, the plan must not be acted on.
    """
    problems = []
    checked = {}
    for host in sorted(hosts):
        if '/' in host or host in ('.', '..') or _CONTROL_RE.search(host):
            problems.append(Problem(host, 'inventory_hostname', "%s names a folder of a transfer bundle (wrapped/HOST) and "
                                    "cannot hold '/' or a control character or be '.' or '..'; rename the host" % _show(host)))
        values, host_problems = check_host(spec, host, hosts[host], now, vaults_required)
        checked[host] = values
        problems.extend(host_problems)
    others = dict((h, check_host(spec, h, v, now, vaults_required)[0]) for h, v in (outside or {}).items() if h not in hosts)
    problems.extend(_fleet_problems(checked, others))
    plan = {'hosts': {}, 'vaults': [], 'controller': None}
    vaults = {}
    names = {}
    for host, values in sorted(checked.items()):
        vault_defs = dict((n, v) for n, v in (values.get('byok_vaults') or {}).items() if not _bad(v))
        raw_keys = hosts[host].get('byok_keys') if isinstance(hosts[host].get('byok_keys'), list) else []
        entries = []
        for index, k in enumerate(values.get('byok_keys') or []):
            if _bad(k) or not all(_ok(v) for v in k.values()):
                continue
            vault = vault_defs.get(k['vault']) or {}
            raw = raw_keys[index] if index < len(raw_keys) and isinstance(raw_keys[index], dict) else {}
            entries.append(dict(k, host=host, vault_url=vault.get('url'), vault_kind=vault.get('kind'),
                                kek_name=vault.get('kek_name'), kek_size=vault.get('kek_size'),
                                kek_expires_on=vault.get('kek_expires_on'),
                                verify_signature=bool(values.get('byok_verify_signature')),
                                # the attributes the inventory states: kept as declared; the others are left as they are
                                stated=[f for f in record.STATED if raw.get(f) is not None],
                                bundle_file=bundle.wrapped_file(host, k.get('vault'), k.get('name'))))
        plan['hosts'][host] = {'keys': entries, 'hsm_keys': _hsm_keys(entries), 'vaults': sorted(set(e['vault'] for e in entries)),
                               'regenerate': values.get('byok_regenerate') or 'fail'}
        plan['controller'] = plan['controller'] or values.get('byok_controller')
        for entry in entries:
            vault = vault_defs.get(entry['vault']) or {'url': None, 'kind': None}
            v = vaults.setdefault(entry['vault'], dict(vault, name=entry['vault'], hosts=[]))
            names.setdefault(entry['vault'], []).append(entry['name'])
            if host not in v['hosts']:
                v['hosts'].append(host)
    plan['vaults'] = [vaults[name] for name in sorted(vaults)]
    # keyvault_key_info's vaults option: every vault, the names to ask it about
    plan['reads'] = [{'name': v['name'], 'vault_url': v['url'], 'vault_type': v.get('kind') or 'auto', 'names': names[v['name']]}
                     for v in plan['vaults']]
    plan['entries'] = [e for host in sorted(plan['hosts']) for e in plan['hosts'][host]['keys']]
    # the key records the transfer carries from step to step (module_utils/record.py)
    plan['records'] = [record.new(e) for e in plan['entries']]
    for rec in plan['records']:
        users = _token_users(rec, checked, others)
        if users:  # the seal waits for them (record.hold_shared_token_keys): a sealed key can never be wrapped again
            rec['token_users_outside'] = users
    nkeys = sum(len(h['keys']) for h in plan['hosts'].values())
    plan['summary'] = '%s on %s into %s' % (count(nkeys, 'key'), count(len(plan['hosts']), 'HSM host'),
                                            count(len(plan['vaults']), 'vault'))
    return plan, problems


#: byok_keys fields the staged (air-gapped) flow cannot honour, and why
NOT_STAGED = {
    'rotate_after': 'the staged (air-gapped) flow does not rotate by cryptoperiod (its offline HSM host cannot see the '
                    'vault\'s version dates); rotate with playbooks/transfer.yml, or by hand (a new label and force: true), '
                    'and remove rotate_after here',
    'state': 'absent: the staged (air-gapped) flow never deletes a vault key (its offline HSM host cannot confirm which key the '
             'vault holds); retire the key with playbooks/transfer.yml, or remove it from byok_keys here',
}
#: the values of those fields the staged flow can honour (a field not listed here is refused whatever its value)
STAGED_VALUES = {'state': ('present',)}


def flow_problems(hosts, flow):
    """Problems of fields the given flow cannot honour: [Problem] (none for the transfer)."""
    if flow != 'staged':
        return []
    out = []
    for host in sorted(hosts):
        keys = hosts[host].get('byok_keys')
        for index, key in enumerate(keys if isinstance(keys, list) else []):
            for field, why in sorted(NOT_STAGED.items()):
                if isinstance(key, dict) and key.get(field) is not None and key.get(field) not in STAGED_VALUES.get(field, ()):
                    out.append(Problem(host, '%s.%s' % (_key_path(index, key.get('name')), field), why))
    return out + _case_collisions(hosts)


def _case_collisions(hosts):
    """The bundle has a folder per HSM host and per vault (wrapped/HOST/VAULT): names that differ only in letter case would
    be one folder on a medium that ignores case (FAT and exFAT sticks, macOS), so the staged flow refuses them."""
    out = []
    seen = {}
    for host in sorted(hosts):
        other = seen.setdefault(host.lower(), host)
        if other != host:
            out.append(Problem(host, 'inventory_hostname', 'differs from HSM host %s only in letter case; the bundle gives each '
                               'host the folder wrapped/HOST, and on a medium that ignores case (FAT, exFAT, macOS) the two '
                               'would be one folder: rename one of the hosts' % other))
    vaults = {}
    for host in sorted(hosts):
        names = hosts[host].get('byok_vaults')
        for name in sorted(names) if isinstance(names, dict) else []:
            other = vaults.setdefault(str(name).lower(), name)
            if other != name:
                out.append(Problem(host, 'byok_vaults.%s' % name, 'differs from vault %s only in letter case; the bundle gives '
                                   'each vault the folder wrapped/HOST/VAULT, and on a medium that ignores case (FAT, exFAT, '
                                   'macOS) the two would be one folder: rename one of the vaults' % other))
    return out


def _hsm_keys(entries):
    """hsm_keygen keys[] items: one per label (a label that goes to several vaults is one HSM key)."""
    out = []
    for entry in entries:
        if any(item['label'] == entry['label'] for item in out):
            continue
        item = {'label': entry['label'], 'key_type': entry['key_type'], 'key_size': entry['key_size']}
        if entry.get('curve'):
            item['curve'] = entry['curve']
        if entry.get('id'):
            item['id'] = entry['id']
        out.append(item)
    return out


def _fleet_problems(checked, outside=None):
    """Rules across hosts: one vault definition per name, one HSM key per vault key, no HSM key destroyed that another
    host on its token uses; a host outside the run (outside) counts as an owner or a user, never has the problem."""
    outside = outside or {}
    problems = []
    for name in FLEET_VARS:
        given = [(host, values[name]) for host, values in sorted(checked.items()) if name in values and _ok(values[name])]
        for host, value in given[1:]:
            if value != given[0][1]:
                shown = 'not shown: it may hold a secret' if name == 'byok_azure' else '%s against %s' % (
                    _show(value), _show(given[0][1]))
                problems.append(Problem(host, name, 'differs from its value on %s (%s); the vault steps run once for every '
                                        'HSM host, with one value: set it once, under all: vars:' % (given[0][0], shown)))
    first = {}
    names = {}
    for host, values in sorted(checked.items()):
        for vname, vault in sorted((values.get('byok_vaults') or {}).items()):
            vault = _would_be(vault)
            if not isinstance(vault, dict):
                continue
            if vname in first and first[vname][1] != vault:
                problems.append(Problem(host, 'byok_vaults.%s' % vname, 'differs from its definition on %s (%s against %s); '
                                        'set each vault once, under all: vars:'
                                        % (first[vname][0], vault.get('url'), first[vname][1].get('url'))))
            first.setdefault(vname, (host, vault))
            url = vault.get('url')
            other = names.setdefault(url, (host, vname)) if isinstance(url, str) else (host, vname)
            mine = _would_be((values.get('byok_vaults') or {}).get(other[1]))
            if other[1] != vname and not (isinstance(mine, dict) and mine.get('url') == url):  # (else _check_same_vault's)
                problems.append(Problem(host, 'byok_vaults.%s.url' % vname, "'%s' is the vault %s calls byok_vaults.%s (URLs "
                                        "compare without case, default port and trailing slash); give each vault one name, "
                                        "under all: vars:" % (url, names[url][0], names[url][1])))
    owner = {}
    # the hosts outside the run first: a key of this run that a key of theirs already holds is this run's problem
    for host, values in sorted(outside.items()) + sorted(checked.items()):
        for index, key in enumerate(values.get('byok_keys') or []):
            if _bad(key) or not _ok(key.get('name'), key.get('vault')):
                continue
            vault = _would_be((values.get('byok_vaults') or {}).get(key['vault']))  # (a refused kek_size hides no duplicate)
            if not isinstance(vault, dict) or not isinstance(vault.get('url'), str):
                continue
            where = (vault['url'], key_name_key(key['name']))
            if where in owner and owner[where][0] != host and host in checked:
                problems.append(Problem(host, 'byok_keys[%d] (%s).name' % (index, key['name']),
                                        "vault key '%s' of %s is also listed by %s (byok_keys[%d]%s); a vault key holds one HSM "
                                        "key (names compare case-insensitively): remove it from one of the hosts"
                                        % (key['name'], vault['url'], owner[where][0], owner[where][1],
                                           ', ' + OUTSIDE_RUN if owner[where][0] in outside else '')))
            owner.setdefault(where, (host, index))
    return problems + _shared_token_problems(checked, outside)


#: how a message names a host of the inventory that the run leaves out
OUTSIDE_RUN = "outside this run's --limit"


def _token_ids(values):
    """(serial, label) a host's inventory gives its token, each None when not given."""
    serial, label = values.get('byok_token_serial'), values.get('byok_token_label')
    return (str(serial) if _ok(serial) and serial else None), (str(label) if _ok(label) and label else None)


def _same_token(a, b):
    """How two hosts' inventories show they name one token ('token serial S' or 'token label L'), else None."""
    (sa, la), (sb, lb) = _token_ids(a), _token_ids(b)
    if sa and sb:
        return 'token serial %s' % sa if sa == sb else None
    return 'token label %s' % la if la and la == lb else None


def _maybe_same_token(a, b):
    """_same_token, or, when nothing tells the two tokens apart (two different serials, or two different labels where not
    both give a serial), 'a token the inventory does not tell apart': what must hold for an HSM key that cannot come back
    (destroyed, or sealed so that it can never be wrapped again)."""
    same = _same_token(a, b)
    if same:
        return same
    (sa, la), (sb, lb) = _token_ids(a), _token_ids(b)
    if (sa and sb) or (la and lb):
        return None
    return IN_DOUBT


#: how a message names a token two hosts may share because nothing in the inventory tells theirs apart
IN_DOUBT = 'a token the inventory does not tell apart from its own'


def _token_users(entry, checked, outside):
    """The hosts outside the run that may see the token of entry's host and still use its HSM label."""
    mine = checked.get(entry['host']) or {}

    def uses(values):
        return any(not _bad(k) and _uses_label(k, entry['label']) for k in values.get('byok_keys') or [])

    # a seal cannot be undone: in doubt, held
    return sorted(h for h, values in (outside or {}).items() if _maybe_same_token(mine, values) and uses(values))


def _shared_token_problems(checked, outside=None):
    """HSM hosts may see one token (a network HSM's partition): one label there is one key, whichever host lists it, and
    a key one of them destroys must not be an HSM key another of them, in this run or not, still uses.  Tokens are told
    apart by serial, else by label; in doubt, they are one."""
    outside = outside or {}
    every = dict(outside, **checked)
    problems = []
    for host in sorted(checked):
        # a destruction cannot be undone: it is refused also beside a host whose token the inventory does not tell apart
        doubt = [(other, _maybe_same_token(every[host], every[other])) for other in sorted(every) if other != host]
        doubt = [(other, token) for other, token in doubt if token]
        sharing = [(other, token) for other, token in doubt if token != IN_DOUBT]
        if not doubt:
            continue
        for index, key in enumerate(checked[host].get('byok_keys') or []):
            if _bad(key) or not _ok(key.get('label'), key.get('name')) or not _uses_label(key, key['label']):
                continue
            # (the host before it, or one outside the run: each clash is said once)
            clash = next(((other, token, i) for other, token in sharing if other < host or other in outside
                          for i, k in enumerate(every[other].get('byok_keys') or [])
                          if not _bad(k) and _uses_label(k, key['label']) and _other_key(key, k)), None)
            later = rotation.looks_like_generation(key['label'])
            rotating = next(((other, token, i) for other, token in sharing for i, k in enumerate(every[other].get('byok_keys') or [])
                             if later and not _bad(k) and k.get('rotate_after') and k.get('label') == later[0]), None)
            if rotating:
                problems.append(Problem(host, 'byok_keys[%d] (%s).label' % (index, key['name']), (
                    "'%s' is the label of a later generation of the key HSM host %s%s rotates (its byok_keys[%d], "
                    "rotate_after), on the same token (%s); give this key another label")
                    % (key['label'], rotating[0], ' (%s)' % OUTSIDE_RUN if rotating[0] in outside else '', rotating[2],
                       rotating[1])))
            elif clash:
                problems.append(Problem(host, 'byok_keys[%d] (%s).label' % (index, key['name']), (
                    "'%s' is also the label of byok_keys[%d] of HSM host %s%s, which sees the same token (%s), "
                    "with another type, size, curve or id; one HSM label on a token is one key: give this key its own "
                    "label (hosts with tokens of their own: give each its byok_token_serial)")
                    % (key['label'], clash[2], clash[0], ' (%s)' % OUTSIDE_RUN if clash[0] in outside else '', clash[1])))
        for index, key in enumerate(checked[host].get('byok_keys') or []):
            if _bad(key) or key.get('destroy_hsm_key') is not True or not _ok(key.get('label'), key.get('name')):
                continue
            for other, token in doubt:
                users = [i for i, k in enumerate(every[other].get('byok_keys') or [])
                         if not _bad(k) and _uses_label(k, key['label'])]
                if users:
                    problems.append(Problem(host, 'byok_keys[%d] (%s).destroy_hsm_key' % (index, key['name']), (
                        "is true, but HSM host %s%s %s the same token (%s) and its byok_keys[%d] still uses "
                        "HSM label '%s'; the key cannot be destroyed while a host needs it: remove destroy_hsm_key, or "
                        "retire that entry too (hosts with tokens of their own: give each its byok_token_serial)")
                        % (other, ' (%s)' % OUTSIDE_RUN if other in outside else '',
                           'may see' if token == IN_DOUBT else 'sees', token, users[0], key['label'])))
                    break
    return problems
