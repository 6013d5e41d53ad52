# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read-only audit (playbook byok.keyvault.verify): each key of the inventory checked against its HSM and its vault,
and each vault key that carries the collection's identity tag but no inventory entry names.

Its input is the key records after the vault read and the HSM contact (both read-only: no KEK, no import, no update),
and the vaults' tagged keys.  Each key gets a row: ok, or drift with one finding per difference, each finding saying
what differs in the words of the inventory; the proof names how the vault's identity was obtained (the fingerprint of the
vault's public key, a KCV the vault computed, or unverifiable: only the collection's own tag).  The same rows give the
table, the JSON document and the JUnit XML (one test case per key: a drift is a failure).

Pure Python: the filters and the audit's action plugin use it alike.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
from xml.sax.saxutils import escape, quoteattr

from ansible_collections.byok.keyvault.plugins.module_utils import decisions
from ansible_collections.byok.keyvault.plugins.module_utils import record
from ansible_collections.byok.keyvault.plugins.module_utils import report
from ansible_collections.byok.keyvault.plugins.module_utils import rotation
from ansible_collections.byok.keyvault.plugins.module_utils.attributes import parse_datetime
from ansible_collections.byok.keyvault.plugins.module_utils.user_terms import in_inventory_terms

SCHEMA = 'byok.keyvault/audit/1'
OK = 'ok'
DRIFT = 'drift'
#: as the inventory describes it, as far as the vault shows: a disabled version shows no key material, only the
#: collection's own identity tag, which proves nothing (not a drift, not ok; JUnit: skipped)
UNVERIFIED = 'unverified'
#: how the vault's identity of its current version was obtained, in the audit's words
PROOF_TEXT = {
    record.SOURCE_JWK: 'fingerprint of the vault public key',
    record.SOURCE_VAULT_KCV: 'KCV computed by the vault',
    record.SOURCE_VAULT_WRAP: 'AES key wrap computed by the vault',
    record.SOURCE_KCV_TAG: "unverifiable: only the collection's own tag",
}
DEFAULT_WARNING_DAYS = 30


def _hsm_findings(rec):
    contact = record.step(rec, 'contact')
    if contact is None:
        return ['the HSM was not asked: %s' % (rec.get('stopped') or 'the contact step did not run')]
    if contact.get('failed'):
        return ['the HSM key could not be read: %s' % in_inventory_terms(contact.get('msg'))]
    if contact.get('action') == 'generate' and not (record.absent(rec) or rec.get('rotating')):
        # a retired key's HSM key may be destroyed (destroy_hsm_key); a rotation's next key is made by the transfer
        return ["the HSM holds no key labelled '%s'" % rec['label']]
    if contact.get('action') in ('replace', 'fail'):
        return ["the HSM key '%s' differs from its entry: %s" % (rec['label'], contact.get('reason'))]
    return []


def _vault_findings(rec, hsm_known=True):
    held = record.step(rec, 'read')
    if held is None:
        return ['the vault was not read: %s' % (rec.get('stopped') or 'the read step did not run')], None
    if held.get('failed'):
        return [in_inventory_terms(held.get('msg'))], None
    if record.absent(rec):
        if held.get('exists'):
            return ['listed with state: absent, yet the vault holds a current version (%s)' % held.get('version')], None
        return [], None
    if not held.get('exists'):
        if held.get('deleted'):
            return ['the vault holds the key soft-deleted only (recover it, or run the transfer)'], None
        return ['the vault has no key of this name'], None
    decided = record.step(rec, 'decide')
    identity, source = record.vault_identity(rec)
    if decided is None or not hsm_known:  # the HSM key is unknown (its own finding says why): nothing to compare with
        return [], PROOF_TEXT.get(source)
    if decided.get('action') in (decisions.IMPORT, decisions.CONFLICT):
        why = decided.get('reason') or 'it could not be compared with the HSM key'
        if rec.get('rotating'):
            return ['rotation due (rotate_after %s)' % held.get('rotation_reason')], PROOF_TEXT.get(source)
        if identity is None:  # nothing to compare (a disabled version without the identity tag): not "another key"
            return ["the vault's current version %s cannot be compared with the HSM key: %s" % (held.get('version'), why)], None
        return ["the vault's current version %s is not the HSM key: %s" % (held.get('version'), why)], PROOF_TEXT.get(source)
    return [], PROOF_TEXT.get(source, 'none')


def _attribute_findings(rec, now, warning_days):
    held = record.step(rec, 'read') or {}
    if record.action(rec) != decisions.KEEP or not held.get('exists'):
        return []
    out = []
    changes = record.attribute_changes(rec)
    if changes:
        out.append('attributes differ from the inventory: %s' % record.changes_text(changes))
    fixed = record.unchangeable(rec)
    if fixed:
        out.append(fixed)
    if held.get('disabled') and 'enabled' not in (rec.get('stated') or ()):
        out.append('disabled in the vault, which the inventory does not state (enabled not set)')
    expires = parse_datetime(held.get('expires_on'), 'expires_on') if held.get('expires_on') else None
    if expires is not None:
        if expires <= now:
            out.append('expired on %s' % expires.strftime('%Y-%m-%d'))
        elif expires <= now + datetime.timedelta(days=warning_days):
            out.append('expires on %s, within %d days' % (expires.strftime('%Y-%m-%d'), warning_days))
    if record.rotation_allowed(rec) and not rec.get('rotating'):
        out.append('rotation due (rotate_after %s)' % held.get('rotation_reason'))
    if rec.get('newer_generations') and not rec.get('rotating'):
        out.append('the vault\'s current version is HSM key %s, and the token holds newer generations up to %s: a version '
                   'rolled back to an older key, or a rotation whose import did not land'
                   % (rec.get('held_label'), rotation.label(rec.get('base_label') or rec['label'], rec['newer_generations'])))
    return out


def key_row(rec, now, warning_days=DEFAULT_WARNING_DAYS):
    """The audit row of one key record: what the HSM and the vault hold against the inventory."""
    held = record.step(rec, 'read') or {}
    hsm_findings = _hsm_findings(rec)
    vault_findings, proof = _vault_findings(rec, hsm_known=not hsm_findings)
    findings = hsm_findings + vault_findings + _attribute_findings(rec, now, warning_days)
    rotating = bool(rec.get('rotating'))  # the row names the HSM key the vault holds, not the next one a rotation makes
    identity, source = record.vault_identity(rec)
    proven = source in report.PROVEN_SOURCES
    status = DRIFT if findings else (UNVERIFIED if source == record.SOURCE_KCV_TAG else OK)
    return {'host': rec.get('host'), 'vault': rec.get('vault'), 'vault_url': rec.get('vault_url'), 'name': rec.get('name'),
            'label': rec.get('held_label') if rotating else rec.get('label'), 'key_type': rec.get('key_type'),
            'state': rec.get('state') or 'present', 'version': held.get('version'),
            'hsm_identity': rec.get('held_identity') if rotating else record.hsm_identity(rec),
            # what the vault proved; what only the collection's tag claims is apart
            'vault_identity': identity if proven else None, 'claimed_identity': None if proven else identity, 'proof': proof,
            'expires_on': held.get('expires_on'), 'status': status, 'findings': findings}


def unlisted_row(entry):
    """The audit row of a vault key that carries the collection's identity tag but no inventory entry names."""
    return {'host': None, 'vault': entry.get('vault'), 'vault_url': entry.get('vault_url'), 'name': entry.get('name'),
            'label': None, 'key_type': None, 'state': 'not in the inventory', 'version': entry.get('version'),
            'hsm_identity': None, 'vault_identity': entry.get('identity'), 'proof': None, 'expires_on': entry.get('expires_on'),
            'status': DRIFT, 'findings': ["the vault key carries the collection's identity tag (%s) but no inventory entry "
                                          "names it" % entry.get('tag')]}


def listing_row(line):
    """A row for a vault whose keys could not be listed: the audit cannot say which tagged keys it holds."""
    vault = line.split(':', 1)[0].replace('vault ', '', 1)
    why = 'the vault could not be listed, so keys the inventory does not name are unknown: %s' % line.split(': ', 1)[-1]
    return {'host': None, 'vault': vault, 'vault_url': None, 'name': '(its keys)', 'label': None, 'key_type': None,
            'state': None, 'version': None, 'hsm_identity': None, 'vault_identity': None, 'proof': None, 'expires_on': None,
            'status': DRIFT, 'findings': [why]}


def rows(records, unlisted, now=None, warning_days=DEFAULT_WARNING_DAYS):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    out = [key_row(rec, now, warning_days) for rec in records]
    out += [unlisted_row(e) for e in unlisted or []]
    return sorted(out, key=lambda r: (r['vault'] or '', r['name'] or '', r['host'] or ''))


def summary(audit_rows):
    drift = [r for r in audit_rows if r['status'] == DRIFT]
    unverified = [r for r in audit_rows if r['status'] == UNVERIFIED]
    head = ('all %d keys as the inventory describes them' % len(audit_rows) if not drift else
            '%d of %d keys drifted from the inventory' % (len(drift), len(audit_rows)))
    if not unverified:
        return head
    return ("%s; %d %s unverified: the vault shows only the collection's own tag (a disabled version, or an AES key that "
            "may not encrypt)" % (head, len(unverified), 'of them' if not drift else 'keys'))


def table(audit_rows):
    """Lines for people, within 80 columns for usual names: one per key (status, vault/name, HSM host/label), its proof
    and its findings under it."""
    lines = ['%-10s %-36s %s' % ('STATUS', 'VAULT/KEY', 'HOST/HSM LABEL')]
    for r in audit_rows:
        where = '%s/%s' % (r['host'], r['label']) if r['host'] else '-'
        lines.append('%-10s %-36s %s' % (r['status'], '%s/%s' % (r['vault'], r['name']), where))
        if r['proof']:
            lines.append('           proof: %s' % r['proof'])
        lines.extend('           - %s' % f for f in r['findings'])
    lines.append(summary(audit_rows))
    return lines


def document(audit_rows, run):
    """The JSON document of an audit: the run's facts and every row."""
    doc = {'schema': SCHEMA, 'summary': summary(audit_rows), 'drift': any(r['status'] == DRIFT for r in audit_rows),
           'keys': audit_rows}
    doc.update(run or {})
    return json.dumps(doc, indent=4, sort_keys=True) + '\n'


def junit(audit_rows, finished):
    """JUnit XML (one test suite per vault, one test case per key; a drift is a failure naming its findings), as CI and
    AWX dashboards read it."""
    suites = {}
    for r in audit_rows:
        suites.setdefault(r['vault'] or '-', []).append(r)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<testsuites name="byok.keyvault verify" tests="%d" failures="%d" skipped="%d" timestamp=%s>'
           % (len(audit_rows), sum(1 for r in audit_rows if r['status'] == DRIFT),
              sum(1 for r in audit_rows if r['status'] == UNVERIFIED), quoteattr(finished))]
    for vault in sorted(suites):
        cases = suites[vault]
        out.append('  <testsuite name=%s tests="%d" failures="%d" skipped="%d">'
                   % (quoteattr('vault %s' % vault), len(cases), sum(1 for r in cases if r['status'] == DRIFT),
                      sum(1 for r in cases if r['status'] == UNVERIFIED)))
        for r in cases:
            name = quoteattr('%s (%s)' % (r['name'], '%s/%s' % (r['host'], r['label']) if r['host'] else 'not in the inventory'))
            if r['status'] == DRIFT:
                text = '\n'.join(r['findings'])
                out.append('    <testcase classname=%s name=%s>' % (quoteattr('vault.%s' % vault), name))
                out.append('      <failure message=%s>%s</failure>' % (quoteattr(r['findings'][0]), escape(text)))
                out.append('    </testcase>')
            elif r['status'] == UNVERIFIED:
                out.append('    <testcase classname=%s name=%s>' % (quoteattr('vault.%s' % vault), name))
                out.append('      <skipped message=%s/>' % quoteattr('unverified: %s' % (r['proof'] or 'no proof')))
                out.append('    </testcase>')
            else:
                out.append('    <testcase classname=%s name=%s/>' % (quoteattr('vault.%s' % vault), name))
        out.append('  </testsuite>')
    out.append('</testsuites>')
    return '\n'.join(out) + '\n'
