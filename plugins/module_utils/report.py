# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report of a transfer: one row per key, written once, and the ways people read it.

A row (no secret, no key material) says where a key lives (host, HSM label, token), where it went
(vault, kid), what identifies it on both sides (fingerprints or KCVs, and whether they match) and what
happened (result, message).  The transfer and staged roles build rows here, byok_manifest writes them,
and the report role prints them with table() and details().
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.byok.keyvault.plugins.module_utils import decisions
from ansible_collections.byok.keyvault.plugins.module_utils import fleet
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils.user_terms import in_inventory_terms
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import key_name_key

TOKEN_FIELDS = ('vendor', 'manufacturer', 'model', 'serial', 'label', 'firmware_version', 'library_version')
ROW_FIELDS = ('host', 'vault', 'vault_url', 'name', 'label', 'key_type', 'key_size', 'curve', 'hsm_fingerprint',
              'vault_fingerprint', 'match', 'kid', 'kek_kid', 'wrap_method', 'token', 'result', 'message')
#: results a row can have; a key whose import outcome could not be confirmed is 'unknown', never 'failed'
RESULTS = ('transferred', 'in place', 'would transfer', 'would rotate', 'failed', 'unknown')
FAILED = ('failed',)
NOT_DONE = ('failed', 'unknown')


def new_row(entry, host=None, **facts):
    """A row with every field, from a plan or decision entry (or an inventory key) and what is known about it."""
    row = dict((f, None) for f in ROW_FIELDS)
    row.update(host=host or entry.get('host'), vault=entry.get('vault'), vault_url=entry.get('vault_url'),
               name=entry.get('name'), label=entry.get('label') or entry.get('name'), key_type=entry.get('key_type'),
               key_size=entry.get('key_size'), curve=entry.get('curve'), hsm_fingerprint=entry.get('hsm_fingerprint'),
               vault_fingerprint=entry.get('vault_fingerprint'), kid=entry.get('vault_kid'), message='')
    row.update(facts)
    row['match'] = decisions.same_identity(row['hsm_fingerprint'], row['vault_fingerprint'])
    return row


def host_rows(work, host, keygen=None, imports=None, wrapped=None, keks=None):
    """The rows of one host after the transfer role's steps (decide, wrap, import)."""
    outcomes = fleet.import_outcomes(imports)
    kids = fleet.kek_kids(keks)
    methods = fleet.wrap_methods(work, wrapped)
    token = dict((f, ((keygen or {}).get('token') or {}).get(f)) for f in TOKEN_FIELDS)
    rows = []
    for entry in (work or {}).get('keys') or []:
        row = new_row(entry, host, token=token)
        if entry['action'] == decisions.CONFLICT:
            row['result'] = 'failed'
            row['message'] = ("vault key %s is not HSM key %s: %s; nothing was wrapped or imported. Set force: true on "
                              "byok_keys entry %s to import the HSM key as a %s (a rotation), or use another name"
                              % (entry['name'], entry['label'], entry['reason'], entry['name'],
                                 decisions.rotation_text(entry['name'])))
            rows.append(row)
            continue
        if entry['action'] == decisions.KEEP:
            row['result'] = 'in place'
            rows.append(row)
            continue
        row.update(kek_kid=kids.get(entry['vault']), wrap_method=methods.get((entry['vault'], entry['label'])))
        outcome = outcomes.get((entry['vault'], key_name_key(entry['name']))) or outcomes.get(fleet.EVERY_KEY)
        if outcome is None:
            row['result'] = 'failed'
            row['message'] = 'not imported: nothing was wrapped for this key or the import did not reach it (see the task above)'
        elif outcome.get('outcome_unknown'):
            row['result'] = 'unknown'
            row['message'] = outcome.get('msg', '')
        elif outcome.get('failed'):
            row['result'] = 'failed'
            row['message'] = outcome.get('msg', '')
        elif outcome.get('changed') and outcome.get('kid') is None:
            # a planned rotation (force: true over another vault key) is not a first transfer: say so
            row['result'] = 'would rotate' if entry.get('rotation') else 'would transfer'
            row['message'] = decisions.rotation_text(entry['name']) if entry.get('rotation') else ''
        else:
            row['result'] = 'transferred' if outcome.get('changed') else 'in place'
            row.update(kid=outcome.get('kid'), vault_fingerprint=outcome.get('fingerprint'), attempts=outcome.get('attempts'))
            if outcome.get('changed') and entry.get('rotation'):
                row['message'] = decisions.rotation_text(entry['name'])
        row['match'] = decisions.same_identity(row['hsm_fingerprint'], row['vault_fingerprint'])
        rows.append(row)
    return rows


def failed_rows(entries, host, message):
    """Rows marking every key of a host failed with one message (the host stopped before its keys moved)."""
    message = in_inventory_terms(message)
    return [new_row(e, host, result='failed', message=message) for e in entries or [] if isinstance(e, dict)]


def import_rows(results, vaults=None):
    """Rows from keyvault_import loop results whose items are plan entries (the staged import)."""
    rows = []
    for r in results or []:
        entry = r.get('item') or {}
        row = new_row(entry, vault_url=entry.get('vault_url') or ((vaults or {}).get(entry.get('vault')) or {}).get('url'),
                      hsm_fingerprint=r.get('expected_fingerprint'), vault_fingerprint=r.get('fingerprint'),
                      kid=r.get('kid') or (r.get('key') or {}).get('kid'))
        if r.get('outcome_unknown'):
            row.update(result='unknown', message=r.get('msg', ''))
        elif r.get('failed') or 'decision' not in r:  # registered with failed_when: false, a failure has no decision
            row.update(result='failed', message=r.get('msg', ''))
        elif r.get('changed'):
            row['result'] = 'would transfer' if r.get('kid') is None else 'transferred'
        else:
            row['result'] = 'in place'
        row['match'] = decisions.same_identity(row['hsm_fingerprint'], row['vault_fingerprint'])
        rows.append(row)
    return rows


def _size(row):
    if row.get('key_type') == 'EC':
        return 'EC-%s' % (row.get('curve') or '?')
    return '%s-%s' % ({'oct': 'AES'}.get(row.get('key_type'), row.get('key_type') or '?'), row.get('key_size') or '?')


def count(n, word):
    return '%d %s%s' % (n, word, '' if n == 1 else 's')


def summary(rows):
    """One line: how many keys had which result."""
    counts = {}
    for r in rows or []:
        counts[r['result']] = counts.get(r['result'], 0) + 1
    if not rows:
        return 'no keys in the inventory'
    if set(counts) == set(['in place']):
        if len(rows) == 1:
            return 'nothing to transfer: the key is already in its vault'
        return 'nothing to transfer: all %d keys are already in their vaults' % len(rows)
    return ', '.join('%s: %d' % (k, counts[k]) for k in sorted(counts))


def _cell(value):
    """A table cell on one line: control characters shown escaped, so no value can start a line of its own."""
    text = '%s' % (value if value is not None else '-')
    return ''.join(c if ' ' <= c != '\x7f' else repr(c)[1:-1] for c in text)


def table(rows):
    """The rows as lines of a fixed-width table a person can read, and a summary line."""
    header = ('KEY', 'TYPE', 'HOST', 'HSM LABEL', 'VAULT', 'VERSION', 'FINGERPRINT (HSM = VAULT)', 'RESULT')
    lines = []
    for r in rows or []:
        version = (r.get('kid') or '').rstrip('/').rsplit('/', 1)[-1] if r.get('kid') else '-'
        fp = r.get('hsm_fingerprint') or '-'
        # DIFFERS only when both sides were compared: in check mode a key to generate has no fingerprint yet
        mark = 'match' if r.get('match') else ('-' if not (r.get('vault_fingerprint') and r.get('hsm_fingerprint')) else 'DIFFERS')
        cells = (r['name'], _size(r), r['host'] or '-', r.get('label') or '-', r['vault'] or '-', version[:12],
                 '%s %s' % (fp[:16], mark), r['result'] + ((': ' + r['message']) if r.get('message') else ''))
        lines.append(tuple(_cell(c) for c in cells))
    widths = [max(len(x[i]) for x in [header] + lines) for i in range(len(header) - 1)]
    out = ['  '.join(c.ljust(w) for c, w in zip(line[:-1], widths)) + '  ' + line[-1] for line in [header] + lines]
    return out + [summary(rows)]


def details(rows):
    """Per key: the vault kid and both full fingerprints, for people who compare them by eye."""
    out = []
    for r in rows or []:
        kind = ki.identity_kind(r.get('key_type'))
        out.append('%s (%s, %s): %s' % (r['name'], r['host'], r['result'], r.get('kid') or 'no vault version'))
        out.append('    HSM   %s %s' % (kind, r.get('hsm_fingerprint') or '-'))
        out.append('    vault %s %s' % (kind, r.get('vault_fingerprint') or '-'))
    return out


def not_done(rows):
    """The rows of keys that did not move (failed, or outcome unknown)."""
    return [r for r in rows or [] if r.get('result') in NOT_DONE]


def closing_message(rows, silent_hosts, manifest_path):
    """The one message that ends a run in which some key did not move (each key's reason is in the table above)."""
    bad = not_done(rows)
    parts = []
    if bad:
        unknown = [r for r in bad if r['result'] == 'unknown']
        names = ', '.join('%s/%s/%s' % (r['host'], r['vault'], r['name']) for r in bad)
        tail = '; %d with an unknown outcome: run again to confirm them' % len(unknown) if unknown else ''
        parts.append('%s of %d did not move (%s)%s' % (count(len(bad), 'key'), len(rows or []), names, tail))
    if silent_hosts:
        parts.append('%s sent no report (failed before planning): %s' % (count(len(silent_hosts), 'host'), ', '.join(silent_hosts)))
    return '; '.join(parts) + '; each reason is in the table above%s' % (
        ' and in %s' % manifest_path if manifest_path else '')
