# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sealing after the transfer (byok_hsm_seal_after_transfer): which HSM keys of a host may be sealed, and the report.

An HSM key is sealed (CKA_EXTRACTABLE false, by hsm_seal) only when every vault listed for it holds it: every report
row of its label says 'transferred' or 'in place', with the vault's fingerprint equal to the HSM's (the import's
read-back, or the vault's current version).  Pure Python over the rows the transfer role builds (report.host_rows).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.byok.keyvault.plugins.module_utils.user_terms import in_inventory_terms

IN_VAULT = ('transferred', 'in place')


def _labels(rows):
    out = []
    for row in rows or []:
        if row.get('label') not in out:
            out.append(row.get('label'))
    return out


def _sealed_by_keygen(keygen):
    return set(k.get('label') for k in (keygen or {}).get('keys') or [] if k.get('sealed'))


def _sealable(rows, label, check_mode):
    mine = [r for r in rows or [] if r.get('label') == label]
    if check_mode:
        return all(r.get('result') in IN_VAULT + ('would transfer', 'would rotate') for r in mine)
    return all(r.get('result') in IN_VAULT and r.get('match') for r in mine)


def seal_items(rows, host_plan, keygen=None, check_mode=False):
    """hsm_seal's keys option: each HSM key of the host that every vault listed for it holds and that is not sealed yet."""
    ids = dict((k.get('label'), k.get('id')) for k in (host_plan or {}).get('keys') or [])
    done = _sealed_by_keygen(keygen)
    items = []
    for label in _labels(rows):
        if label in done or not _sealable(rows, label, check_mode):
            continue
        fingerprint = next((r.get('hsm_fingerprint') for r in rows if r.get('label') == label and r.get('hsm_fingerprint')), '')
        item = {'label': label, 'fingerprint': fingerprint or ''}
        if ids.get(label):
            item['id'] = ids[label]
        items.append(item)
    return items


def _note(row, text):
    row.update(message='%s; %s' % (row['message'], text) if row.get('message') else text)


def sealed_rows(rows, keygen=None, sealed=None, check_mode=False):
    """The rows with C(hsm_sealed) and a note of what the seal did; a key the seal failed for is a failed row."""
    results = dict((k.get('label'), k) for k in (sealed or {}).get('keys') or [])
    whole = (sealed or {}).get('msg') if (sealed or {}).get('failed') and not results else None
    done = _sealed_by_keygen(keygen)
    wanted = set(item['label'] for item in seal_items(rows, None, keygen, check_mode))
    out = []
    for row in rows or []:
        row = dict(row)
        label = row.get('label')
        result = results.get(label)
        if label in done:
            row['hsm_sealed'] = True
            _note(row, 'HSM key sealed (by an earlier run)')
        elif label not in wanted:
            row['hsm_sealed'] = False
            if row.get('result') in IN_VAULT:
                _note(row, 'HSM key not sealed: not every vault listed for it holds it yet')
        elif result is None and whole is None:
            row['hsm_sealed'] = False
            _note(row, 'HSM key not sealed: the seal step did not run')
        elif result is None or result.get('failed'):
            row['hsm_sealed'] = False
            if row.get('result') not in ('failed', 'unknown'):
                before = row.get('message')
                row['result'] = 'failed'
                row['message'] = ('the vault holds the key, but the HSM key was not sealed: %s; run again to seal it'
                                  % in_inventory_terms(whole if result is None else result.get('msg')))
                if before:
                    row.update(message='%s; %s' % (before, row['message']))
        else:
            row['hsm_sealed'] = bool(result.get('sealed'))
            if check_mode and result.get('action') == 'seal':
                _note(row, 'HSM key would be sealed')
            else:
                _note(row, 'HSM key sealed (CKA_EXTRACTABLE false)' if result.get('action') == 'seal'
                      else 'HSM key sealed (already)')
        out.append(row)
    return out
