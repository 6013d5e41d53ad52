# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report of a transfer: one row per key, written once, and the ways people read it.

A row (no secret, no key material) says where a key lives (host, HSM label, token), where it went
(vault, kid), what identifies it on both sides (fingerprints or KCVs, and whether they match) and what
happened (result, message).  The transfer derives them from its key records (record.row), the staged import
here (import_rows); byok_manifest writes them, and the report role prints them with table() and details().
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import textwrap

from ansible_collections.byok.keyvault.plugins.module_utils import decisions
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils.user_terms import in_inventory_terms

TOKEN_FIELDS = ('vendor', 'manufacturer', 'model', 'serial', 'label', 'firmware_version', 'library_version')
ROW_FIELDS = ('host', 'vault', 'vault_url', 'name', 'label', 'key_type', 'key_size', 'curve', 'hsm_fingerprint',
              'vault_fingerprint', 'match', 'proof', 'signature', 'kid', 'kek_kid', 'kek_fingerprint', 'wrap_method',
              'wrap_mechanism', 'token', 'in_run', 'result', 'message')
#: results a row can have; a key whose import outcome could not be confirmed is 'unknown', never 'failed'; a key whose
#: steps did not run (its host stopped at another step, or is outside the run's --limit) is 'not done', never ok
RESULTS = ('transferred', 'in place', 'updated', 'recovered', 'deleted', 'absent', 'would transfer', 'would rotate',
           'would update', 'would recover', 'would delete', 'failed', 'unknown', 'not done')
FAILED = ('failed',)
NOT_DONE = ('failed', 'unknown', 'not done')
DONE = ('transferred', 'in place', 'updated', 'recovered', 'deleted', 'absent', 'would transfer', 'would rotate', 'would update',
        'would recover', 'would delete')

#: what proves that the vault's key is the HSM key, per row (the proof field)
PROOF_JWK = "fingerprint from the vault's JWK"
PROOF_VAULT_KCV = 'KCV computed by the vault'
PROOF_TAG = "unverified: only the collection's own tag"
PROOF_VAULT_WRAP = 'AES key wrap computed by the vault'
#: where a vault identity came from (keyvault_import's identity_source): the vault's JWK, a KCV the vault computed, or
#: only the byok-kcv tag the collection wrote itself (which proves nothing)
SOURCE_JWK = 'vault-jwk'
SOURCE_VAULT_KCV = 'vault-kcv'
SOURCE_KCV_TAG = 'kcv-tag'
#: an AES key that may not encrypt but may wrap: the vault wrapped a random value with it (RFC 3394), and the HSM key,
#: through AES blocks computed in the HSM, gave the same bytes
SOURCE_VAULT_WRAP = 'vault-wrap'
PROOFS = {SOURCE_JWK: PROOF_JWK, SOURCE_VAULT_KCV: PROOF_VAULT_KCV, SOURCE_KCV_TAG: PROOF_TAG,
          SOURCE_VAULT_WRAP: PROOF_VAULT_WRAP}
#: the sources that are the vault's own word on its key material
PROVEN_SOURCES = (SOURCE_JWK, SOURCE_VAULT_KCV, SOURCE_VAULT_WRAP)
#: the signature field when byok_verify_signature is off
SIGNATURE_NOT_ASKED = 'not asked'
OUTSIDE_LIMIT = "not in this run's --limit"


def set_proof(row, source):
    """Set the row's proof from where its vault identity came from, and match from it: a match is claimed only when the
    vault itself gave the identity (its JWK, or a KCV it computed); the collection's own tag proves nothing."""
    if not row.get('vault_fingerprint'):
        row.update(proof=None, match=None)
        return row
    row['proof'] = PROOFS.get(source)
    same = decisions.same_identity(row['hsm_fingerprint'], row['vault_fingerprint'])
    if source in PROVEN_SOURCES:
        row['match'] = same
    else:
        row['match'] = False if (same is False and decisions.known(row['hsm_fingerprint'])) else None
    return row


def new_row(entry, host=None, **facts):
    """A row with every field, from a plan or decision entry (or an inventory key) and what is known about it."""
    row = dict((f, None) for f in ROW_FIELDS)
    row.update(host=host or entry.get('host'), vault=entry.get('vault'), vault_url=entry.get('vault_url'),
               name=entry.get('name'), label=entry.get('label') or entry.get('name'), key_type=entry.get('key_type'),
               key_size=entry.get('key_size'), curve=entry.get('curve'), hsm_fingerprint=entry.get('hsm_fingerprint'),
               vault_fingerprint=entry.get('vault_fingerprint'), kid=entry.get('vault_kid'), in_run=True, message='')
    source = facts.pop('identity_source', entry.get('identity_source'))
    row.update(facts)
    return set_proof(row, source)


def signature(row, asked, outcome=None):
    """What the signature check (byok_verify_signature) did for this row."""
    if not asked:
        return SIGNATURE_NOT_ASKED
    if ki.identified_by_kcv(row.get('key_type')):
        return 'not possible for AES (its proof is the KCV)'
    proof = (outcome or {}).get('proof') or {}
    if proof.get('method') == 'signature' and proof.get('verified'):
        return 'verified (%s)' % proof.get('algorithm') if proof.get('algorithm') else 'verified'
    if proof.get('method') == 'signature' and proof.get('verified') is False:
        return 'failed: %s' % in_inventory_terms(proof.get('error') or 'no signature')
    if outcome is not None and (outcome.get('failed') or outcome.get('outcome_unknown')):
        return 'failed: see the message'
    if row.get('result') in ('would transfer', 'would rotate'):
        return 'not done (check mode)'
    if row.get('result') == 'in place' and outcome is None:
        return 'not done (a key in place is signed when its vault version is enabled, may sign and was proved by its JWK)'
    return 'not done'


def failed_rows(entries, host, message):
    """Rows marking every key of a host failed with one message (the host stopped before its keys moved)."""
    message = in_inventory_terms(message)
    return [new_row(e, host, result='failed', message=message) for e in entries or [] if isinstance(e, dict)]


def outside_rows(hosts_keys, reason=OUTSIDE_LIMIT):
    """Rows of the keys of HSM hosts this run did not plan (outside its --limit): 'not done', with the reason.

    hosts_keys is {host: the host's byok_keys, or a message when they could not be read}."""
    rows = []
    for host in sorted(hosts_keys or {}):
        keys = hosts_keys[host]
        if not isinstance(keys, list):
            row = new_row({'name': '-'}, host, result='not done', in_run=False,
                          message='%s; its byok_keys could not be read: %s' % (reason, keys))
            rows.append(row)
            continue
        for key in keys:
            if not isinstance(key, dict):
                continue
            rows.append(new_row(dict(key, label=key.get('label') or key.get('name')), host, result='not done',
                                in_run=False, signature='not done', message=reason))
    return rows


def import_rows(results, vaults=None, verify_signature=False):
    """Rows from keyvault_import loop results whose items are plan entries (the staged import)."""
    rows = []
    for r in results or []:
        entry = r.get('item') or {}
        row = new_row(entry, vault_url=entry.get('vault_url') or ((vaults or {}).get(entry.get('vault')) or {}).get('url'),
                      hsm_fingerprint=r.get('expected_fingerprint'),
                      vault_fingerprint=r.get('fingerprint') if r.get('identity_source') else None,
                      kid=r.get('kid') or (r.get('key') or {}).get('kid'), identity_source=r.get('identity_source'))
        if r.get('outcome_unknown'):
            row.update(result='unknown', message=r.get('msg', ''))
        elif r.get('failed') or 'decision' not in r:  # registered with failed_when: false, a failure has no decision
            row.update(result='failed', message=r.get('msg', ''))
        elif r.get('changed'):
            row['result'] = 'would transfer' if r.get('kid') is None else 'transferred'
        else:
            row['result'] = 'in place'
        row['signature'] = signature(row, verify_signature, r)
        rows.append(row)
    return rows


def vaults_of(rows):
    """{vault: {url, kek_kid, kek_fingerprint}} of the vaults the rows name: the KEK each vault's keys were wrapped under in
    this run (null when no key of the vault needed one)."""
    out = {}
    for r in rows or []:
        if not r.get('vault'):
            continue
        v = out.setdefault(r['vault'], {'url': None, 'kek_kid': None, 'kek_fingerprint': None})
        for field in ('kek_kid', 'kek_fingerprint'):
            v[field] = v[field] or r.get(field)
        v['url'] = v['url'] or r.get('vault_url')
    return out


def _version(kid):
    return (kid or '').rstrip('/').rsplit('/', 1)[-1] if kid else '-'


def _size(row):
    if row.get('key_type') == 'EC':
        return 'EC-%s' % (row.get('curve') or '?')
    return '%s-%s' % ({'oct': 'AES'}.get(row.get('key_type'), row.get('key_type') or '?'), row.get('key_size') or '?')


def count(n, word):
    return '%d %s%s' % (n, word, '' if n == 1 else 's')


def summary(rows):
    """One line: how many keys had which result (the keys of hosts outside the run counted apart)."""
    counts = {}
    outside = [r for r in rows or [] if r.get('in_run') is False]
    rows = [r for r in rows or [] if r.get('in_run') is not False]
    if outside:
        counts[OUTSIDE_LIMIT] = len(outside)
    for r in rows:
        counts[r['result']] = counts.get(r['result'], 0) + 1
    if not rows and outside:
        return ', '.join('%s: %d' % (k, counts[k]) for k in sorted(counts))
    if not rows:
        return 'no keys in the inventory'
    if set(counts) == set(['in place']):
        doubt = len([r for r in rows if check_mark(r) == 'unverified'])
        if doubt:
            # a tag the collection wrote is all that speaks for these: not "already in the vault"
            return 'nothing to transfer: in place: %d, %d of them unverified (only the collection\'s own tag)' % (
                len(rows), doubt)
        if len(rows) == 1:
            return 'nothing to transfer: the key is already in its vault'
        return 'nothing to transfer: all %d keys are already in their vaults' % len(rows)
    return ', '.join('%s: %d' % (k, counts[k]) for k in sorted(counts))


def _cell(value):
    """A table cell on one line: control characters shown escaped, so no value can start a line of its own."""
    text = '%s' % (value if value is not None else '-')
    return ''.join(c if ' ' <= c != '\x7f' else repr(c)[1:-1] for c in text)


def check_mark(row):
    """The table's CHECK cell: match, DIFFERS, unverified (only the collection's own tag), or - (nothing to compare)."""
    if row.get('proof') == PROOF_TAG and row.get('match') is not False:
        return 'unverified'
    if row.get('match'):
        return 'match'
    if row.get('match') is False and row.get('vault_fingerprint') and row.get('hsm_fingerprint'):
        return 'DIFFERS'
    return '-'


SHORT_PROOF = {PROOF_JWK: 'vault JWK', PROOF_VAULT_KCV: 'vault KCV', PROOF_TAG: 'own tag only', PROOF_VAULT_WRAP: 'vault wrap'}


def _short_signature(text):
    return (text or '-').split(' (')[0].split(':')[0]


#: (header, cell of a row, shown at any width): the first columns are always shown, the others when the width allows,
#: in this order; KEY, HOST and VAULT are cut (ending in ~) when even the first ones do not fit
COLUMNS = (
    ('KEY', lambda r: r.get('name'), True),
    ('HOST', lambda r: r.get('host'), True),
    ('VAULT', lambda r: r.get('vault'), True),
    ('VERSION', lambda r: _version(r.get('kid'))[:12], True),
    ('CHECK', check_mark, True),
    ('RESULT', None, True),
    ('TYPE', _size, False),
    ('PROOF', lambda r: SHORT_PROOF.get(r.get('proof'), '-'), False),
    ('FINGERPRINT', lambda r: (r.get('hsm_fingerprint') or '-')[:16], False),
    ('SIGNATURE', lambda r: _short_signature(r.get('signature')), False),
    ('HSM LABEL', lambda r: r.get('label'), False),
)
ORDER = ('KEY', 'TYPE', 'HOST', 'HSM LABEL', 'VAULT', 'VERSION', 'FINGERPRINT', 'CHECK', 'PROOF', 'SIGNATURE', 'RESULT')
CUTTABLE = ('KEY', 'HOST', 'VAULT', 'HSM LABEL')
GAP = '  '


def _fit(cells, width):
    """Widths of the columns, cut (KEY first, then HOST, VAULT, HSM LABEL) until the lines fit in width; None: unlimited."""
    widths = dict((h, max(len(c[h]) for c in cells)) for h in cells[0])
    if width is None:
        return widths
    over = sum(widths.values()) + len(GAP) * (len(widths) - 1) - width
    while over > 0:
        cuttable = [h for h in CUTTABLE if h in widths and widths[h] > max(len(h), 8)]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda h: (widths[h], -CUTTABLE.index(h)))
        widths[widest] -= 1
        over -= 1
    return widths


def _render(cells, widths):
    out = []
    for c in cells:
        parts = []
        for h in [h for h in ORDER if h in widths]:
            text = c[h] if len(c[h]) <= widths[h] else c[h][:widths[h] - 1] + '~'
            parts.append(text.ljust(widths[h]))
        out.append(GAP.join(parts).rstrip())
    return out


def _wrap(text, width, indent='    '):
    if width is None or len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=True, break_on_hyphens=False)


def table(rows, width=None):
    """The rows as lines a person can read: a table with one line per key, each reason as a numbered note below it, and a
    summary line.  With a width every line fits in it (the columns after RESULT are shown only when there is room for
    them; KEY, HOST and VAULT are cut ending in ~, the notes and details() carry the full names); without, every column."""
    rows = rows or []
    notes = []
    cells = [dict((h, h) for h, _f, _a in COLUMNS)]
    for r in rows:
        result = r.get('result') or '-'
        if r.get('message'):
            note = '%s: %s' % (result, r['message'])
            if note not in notes:  # one note for the rows that share a reason (the keys of a host outside the --limit)
                notes.append(note)
            result = '%s [%d]' % (result, notes.index(note) + 1)
        cells.append(dict((h, _cell(result if f is None else f(r))) for h, f, _a in COLUMNS))
    shown = [h for h, _f, always in COLUMNS if always]
    if width is not None:
        for h, _f, always in COLUMNS:
            if always:
                continue
            wanted = shown + [h]
            need = sum(max(len(c[x]) for c in cells) for x in wanted) + len(GAP) * (len(wanted) - 1)
            if need > width:
                break
            shown = wanted
    else:
        shown = [h for h, _f, _a in COLUMNS]
    cells = [dict((h, c[h]) for h in shown) for c in cells]
    out = _render(cells, _fit(cells, width)) if rows else []
    if any(check_mark(r) == 'unverified' for r in rows):
        out.extend(_wrap("unverified: what the vault holds could not be read (a disabled version, or an AES key the vault "
                         "computes no KCV of: the key or the identity may not encrypt); only the identity tag the collection "
                         "wrote itself (byok-fingerprint, byok-kcv) says it is the HSM key", width))
    for number, note in enumerate(notes, 1):
        out.extend(_wrap(_cell('[%d] %s' % (number, note)), width))
    out.extend(_wrap(summary(rows), width))
    return out


def details(rows):
    """Per key: the vault kid, both full fingerprints, what proves them the same key, and the signature check."""
    out = []
    for r in rows or []:
        kind = ki.identity_kind(r.get('key_type'))
        if r.get('kid'):
            where = r['kid']
        elif r.get('result') in ('failed', 'unknown', 'not done'):
            where = 'vault version not known'
        else:
            where = 'no vault version'
        out.append('%s (%s, %s): %s' % (r['name'], r['host'], r['result'], where))
        out.append('    HSM   %s %s' % (kind, r.get('hsm_fingerprint') or '-'))
        if r.get('proof') == PROOF_TAG and r.get('vault_fingerprint'):
            # what the vault holds could not be read (a disabled version, or an AES key the vault cannot compute a KCV of)
            out.append("    vault %s not readable; the collection's own tag says %s" % (kind, r['vault_fingerprint']))
        else:
            out.append('    vault %s %s' % (kind, r.get('vault_fingerprint') or '-'))
        out.append('    proof: %s; signature: %s' % (r.get('proof') or 'none', r.get('signature') or '-'))
    return out


def not_done(rows):
    """The rows of keys of this run that did not move (failed, outcome unknown, or not done); keys of hosts outside the
    run (its --limit) are not counted."""
    return [r for r in rows or [] if r.get('result') in NOT_DONE and r.get('in_run') is not False]


def unproven(rows):
    """The rows of keys of this run that moved but whose signature check (byok_verify_signature) failed."""
    moved = [r for r in rows or [] if r.get('result') in DONE and r.get('in_run') is not False]
    return [r for r in moved if str(r.get('signature') or '').startswith('failed:')]


def closing_message(rows, silent_hosts, manifest_path, failed_hosts=None):
    """The one message that ends a run in which some key did not move or a host stopped (each reason is in the table above)."""
    bad = not_done(rows)
    parts = []
    doubt = unproven(rows)
    if doubt:
        parts.append('%s moved, but the signature check asked for failed (%s)' % (
            count(len(doubt), 'key'), ', '.join('%s/%s/%s' % (r['host'], r['vault'], r['name']) for r in doubt)))
    late = dict((h, m) for h, m in (failed_hosts or {}).items() if not [r for r in bad if r.get('host') == h])
    if bad:
        unknown = [r for r in bad if r['result'] == 'unknown']
        names = ', '.join('%s/%s/%s' % (r['host'], r['vault'], r['name']) for r in bad)
        tail = '; %d with an unknown outcome: run again to confirm them' % len(unknown) if unknown else ''
        in_run = len([r for r in rows or [] if r.get('in_run') is not False])
        parts.append('%s of %d did not move (%s)%s' % (count(len(bad), 'key'), in_run, names, tail))
    if silent_hosts:
        parts.append('%s sent no report (failed before planning): %s' % (count(len(silent_hosts), 'host'), ', '.join(silent_hosts)))
    if late:
        parts.append('%s stopped after its keys moved: %s' % (count(len(late), 'host'), '; '.join(
            '%s (%s)' % (h, late[h]) for h in sorted(late))))
    return '; '.join(parts) + '; each reason is in the table above%s' % (
        ' and in %s' % manifest_path if manifest_path else '')


def kek_lines(deleted):
    """One line per KEK byok_kek_delete_after_run deleted (or could not) at the end of the import step."""
    out = []
    for k in deleted or []:
        where = 'KEK %s of vault %s' % (k.get('kek_name'), k.get('name'))
        if k.get('failed'):
            out.append('%s: NOT deleted: %s' % (where, in_inventory_terms(k.get('msg'))))
        elif not k.get('deleted'):
            out.append('%s: nothing to delete (the vault holds no such key)' % where)
        elif k.get('purged'):
            out.append('%s: deleted and purged after the run (byok_kek_delete_after_run)' % where)
        else:
            why = ' (%s)' % k['purge_refused'] if k.get('purge_refused') else ''
            out.append('%s: deleted after the run, not purged%s' % (where, why))
    return out
