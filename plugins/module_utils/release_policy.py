# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secure Key Release: which keys may be exportable, and the release policy an exportable key must carry.

Key Vault releases an exportable key only to a caller whose attestation satisfies the key's release policy, a JSON
document in Microsoft's policy grammar (version 1.0.0):

  {"version": "1.0.0",
   "anyOf": [{"authority": "https://ATTESTATION.attest.azure.net",
              "allOf": [{"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"}]}]}

The top holds anyOf (or allOf) of authorities; each authority holds anyOf or allOf of conditions; a condition is a claim
with one operator, or a nested anyOf / allOf.  Azure's refusals, checked here before any vault call: an exportable key
needs a policy ("Exportable keys must have release policy"), a policy needs an exportable key ("AKV.SKR.1005"), the
exportable state of a version never changes ("AKV.SKR.1014"), an immutable policy is never replaced ("AKV.SKR.1011").

Pure Python: the plan, keyvault_import and the key records use it alike.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os

from ansible_collections.byok.keyvault.plugins.module_utils import attributes

VERSIONS = ('1.0.0',)
CONTENT_TYPE = 'application/json; charset=utf-8'
OPERATORS = ('equals', 'notEquals', 'less', 'lessOrEquals', 'greater', 'greaterOrEquals', 'exists')
SELECTORS = ('anyOf', 'allOf')
#: the key types that can be exportable, per vault kind (Key Vault Premium: RSA and EC; Managed HSM: also AES)
EXPORTABLE_TYPES = {'premium': ('RSA', 'EC'), 'managed_hsm': ('RSA', 'EC', 'oct')}
EXAMPLE = ('{version: "1.0.0", anyOf: [{authority: "https://NAME.REGION.attest.azure.net", allOf: [{claim: '
           '"x-ms-isolation-tee.x-ms-attestation-type", equals: "sevsnpvm"}]}]}')

NEEDS_POLICY = 'Exportable keys must have release policy'
NOT_EXPORTABLE = 'AKV.SKR.1005: Non-exportable keys must not have release policy'
EXPORTABLE_FIXED = 'AKV.SKR.1014: Cannot modify the exportable state of a key'
IMMUTABLE = 'AKV.SKR.1011: the release policy of the key is immutable'


class PolicyError(ValueError):
    """A release policy Key Vault would refuse; the message says where and what to write."""


def load(value, read_file=None):
    """The policy document (a dict) from what the user wrote: a mapping, a JSON text, or (with read_file, a function from
    a path to its text) the path of a JSON file.  PolicyError when it is none of these."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.strip():
        raise PolicyError('is %s; give the policy as a mapping (%s) or the path of its JSON file' % (_kind(value), EXAMPLE))
    text = value
    if not value.lstrip().startswith(('{', '[')):
        if read_file is None:
            raise PolicyError('is not a JSON object; give the policy as a mapping or as JSON text (%s)' % EXAMPLE)
        try:
            text = read_file(value)
        except (IOError, OSError) as exc:
            raise PolicyError('names the file %s, which cannot be read (%s); give the path of the policy JSON file (absolute, '
                              'or relative to where ansible-playbook runs, e.g. "{{ inventory_dir }}/policies/cvm.json"), or '
                              'the policy itself as a mapping' % (value, getattr(exc, 'strerror', None) or exc))
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PolicyError('%s is not JSON (%s); give a JSON object like %s'
                          % ('the file %s' % value if text is not value else 'the text', exc, EXAMPLE))
    if not isinstance(doc, dict):
        raise PolicyError('is a JSON %s, not an object; give a JSON object like %s' % (type(doc).__name__, EXAMPLE))
    return doc


def _kind(value):
    return 'empty text' if isinstance(value, str) else attributes._kind(value)


def read_text(path):
    """The text of a policy file (on the host that reads the inventory or runs the module)."""
    with open(os.path.expanduser(path), 'r') as f:
        return f.read()


def check(value, key_type, vault_kind, exportable, immutable):
    """(policy document or None, [(field, message)]) of what the user wrote for a key: release_policy read (a mapping,
    JSON text or a file) and checked against the grammar (field release_policy.PATH), then exportable, release_policy
    and release_policy_immutable against Azure's rules (protection_problems; only when exportable is known)."""
    policy, problems = None, []
    if value is not None:
        try:
            policy = load(value, read_text)
        except PolicyError as exc:
            problems.append(('release_policy', str(exc)))
        else:
            problems.extend(('release_policy.%s' % where, message) for where, message in shape_problems(policy))
    if isinstance(exportable, bool):
        problems.extend(protection_problems(key_type, vault_kind, exportable, value, immutable))
    return policy, problems


def shape_problems(doc):
    """Where the document breaks the policy grammar: [(path inside the policy, message)], [] when it is sound."""
    out = []
    if doc.get('version') not in VERSIONS:
        out.append(('version', '%s is not a policy version Key Vault accepts; use "%s"'
                    % (json.dumps(doc.get('version')), '" or "'.join(VERSIONS))))
    unknown = sorted(set(doc) - set(('version',) + SELECTORS))
    if unknown:
        out.append((unknown[0], 'is not a member of a release policy (it has version and anyOf or allOf)'))
    outer = [s for s in SELECTORS if s in doc]
    if len(outer) != 1:
        out.append(('anyOf', 'a release policy needs exactly one of anyOf or allOf, a list of authorities (%s)' % EXAMPLE))
        return out
    authorities = doc[outer[0]]
    if not isinstance(authorities, list) or not authorities:
        out.append((outer[0], 'must be a non-empty list of authorities, each {authority: URL, allOf or anyOf: [conditions]}'))
        return out
    for index, item in enumerate(authorities):
        where = '%s[%d]' % (outer[0], index)
        if not isinstance(item, dict):
            out.append((where, 'must be a mapping {authority: URL, allOf or anyOf: [conditions]}'))
            continue
        authority = item.get('authority')
        if not isinstance(authority, str) or not authority.startswith('https://') or len(authority) <= len('https://'):
            out.append((where + '.authority', '%s is not the https URL of an attestation service (e.g. '
                        'https://NAME.REGION.attest.azure.net)' % json.dumps(authority)))
        unknown = sorted(set(item) - set(('authority',) + SELECTORS))
        if unknown:
            out.append(('%s.%s' % (where, unknown[0]), 'is not a member of an authority (it has authority and allOf or anyOf)'))
        inner = [s for s in SELECTORS if s in item]
        if len(inner) != 1:
            out.append((where, 'needs exactly one of allOf or anyOf: the claim conditions the attestation must meet'))
            continue
        out.extend(_condition_problems(item[inner[0]], '%s.%s' % (where, inner[0])))
    return out


def _condition_problems(conditions, where):
    if not isinstance(conditions, list) or not conditions:
        return [(where, 'must be a non-empty list of conditions, each {claim: NAME, equals: VALUE} (or another operator: %s)'
                 % ', '.join(OPERATORS[1:]))]
    out = []
    for index, rule in enumerate(conditions):
        here = '%s[%d]' % (where, index)
        if not isinstance(rule, dict):
            out.append((here, 'must be a mapping {claim: NAME, equals: VALUE}'))
            continue
        nested = [s for s in SELECTORS if s in rule]
        if nested:
            if len(rule) != 1:
                out.append((here, 'a nested condition holds only one anyOf or allOf list'))
                continue
            out.extend(_condition_problems(rule[nested[0]], '%s.%s' % (here, nested[0])))
            continue
        if not isinstance(rule.get('claim'), str) or not rule['claim']:
            out.append((here + '.claim', 'is missing; name the claim the condition checks (e.g. x-ms-attestation-type)'))
        operators = [o for o in OPERATORS if o in rule]
        if len(operators) != 1:
            out.append((here, 'needs exactly one operator (%s) with the value to compare the claim with'
                        % ', '.join(OPERATORS)))
        unknown = sorted(set(rule) - set(('claim',) + OPERATORS))
        if unknown:
            out.append(('%s.%s' % (here, unknown[0]), 'is not a member of a claim condition (claim and one of %s)'
                        % ', '.join(OPERATORS)))
        for operator in operators:
            value = rule[operator]
            if operator == 'exists' and not isinstance(value, bool):
                out.append(('%s.exists' % here, 'must be true or false'))
            elif operator != 'exists' and (value is None or isinstance(value, (dict, list))):
                out.append(('%s.%s' % (here, operator), 'must be a string, a number or a boolean'))
    return out


def protection_problems(key_type, vault_kind, exportable, policy, immutable):
    """[(field, message)] of an exportable / release_policy / release_policy_immutable combination Azure would refuse.

    key_type: RSA, EC or oct; vault_kind: premium, managed_hsm or None (unknown yet); policy: None or the value given."""
    out = []
    if exportable and policy is None:
        out.append(('release_policy', 'is missing: an exportable key needs a release policy (Key Vault answers "%s"); add '
                    'release_policy (a mapping, or the path of its JSON file) or set exportable: false' % NEEDS_POLICY))
    if policy is not None and not exportable:
        out.append(('release_policy', 'is given for a key that is not exportable (Key Vault answers "%s"); set exportable: '
                    'true, or remove release_policy' % NOT_EXPORTABLE))
    if immutable and policy is None and not exportable:  # (an exportable key without a policy is reported above)
        out.append(('release_policy_immutable', 'is true for a key without a release policy; remove it, or make the key '
                    'exportable with a release_policy'))
    allowed = EXPORTABLE_TYPES.get(vault_kind)
    if exportable and key_type and allowed is not None and key_type not in allowed:
        out.append(('exportable', 'is true, but a %s key cannot be exportable in a %s (exportable keys there are %s); set '
                    'exportable: false or send the key to a vault that can release it'
                    % (key_type, {'premium': 'Key Vault Premium vault', 'managed_hsm': 'Managed HSM'}[vault_kind],
                       ', '.join(allowed))))
    return out


def normalized(doc):
    """The policy as a vault may give it back, for comparisons: claim values as text (Key Vault answers a boolean or a
    number as a string) and attestation authorities without a trailing /."""
    if isinstance(doc, dict):
        return dict((k, v.rstrip('/') if k == 'authority' and isinstance(v, str) else normalized(v)) for k, v in doc.items())
    if isinstance(doc, list):
        return [normalized(v) for v in doc]
    if isinstance(doc, bool):
        return 'true' if doc else 'false'
    if isinstance(doc, (int, float)):
        return str(doc)
    return doc


def same(a, b):
    """Whether two policies ({policy, immutable} or None) are the same rules and mutability, as a vault compares them."""
    if not a or not b:
        return not a and not b
    same_rules = normalized(a.get('policy')) == normalized(b.get('policy'))
    return same_rules and bool(a.get('immutable')) == bool(b.get('immutable'))


def canonical(doc):
    """The policy as the bytes sent to the vault: compact JSON with sorted members (one document, one encoding)."""
    return json.dumps(doc, sort_keys=True, separators=(',', ':')).encode('utf-8')


def wire(doc, immutable):
    """The release_policy member of a Key Vault request (REST): content type, base64url data, immutable."""
    data = base64.urlsafe_b64encode(canonical(doc)).decode('ascii').rstrip('=')
    return {'contentType': CONTENT_TYPE, 'data': data, 'immutable': bool(immutable)}


def held(encoded, immutable):
    """What a vault's release policy is, as the records compare it: {'policy': document, 'immutable': bool}; the policy
    None when the vault's bytes are not a JSON object (never equal to a stated one)."""
    try:
        doc = json.loads(encoded.decode('utf-8') if isinstance(encoded, bytes) else encoded)
    except (TypeError, ValueError, UnicodeDecodeError):
        doc = None
    return {'policy': doc if isinstance(doc, dict) else None, 'immutable': bool(immutable)}


def differences(before, after, most=3):
    """What differs between two policies ({policy, immutable} or None), as the paths inside the policy and their values:
    'anyOf[0].allOf[0].equals sevsnpvm -> tdxvm; immutable false -> true' (at most `most` paths, then how many more)."""
    if not before or not after:
        return '%s -> %s' % (summary(before), summary(after))
    found = []
    _walk(normalized(before.get('policy')), normalized(after.get('policy')), '', found)
    shown = ['%s %s -> %s' % (path or 'the policy', _text(a), _text(b)) for path, a, b in found[:most]]
    if len(found) > most:
        shown.append('%d more' % (len(found) - most))
    if bool(before.get('immutable')) != bool(after.get('immutable')):
        shown.append('immutable %s -> %s' % (str(bool(before.get('immutable'))).lower(), str(bool(after.get('immutable'))).lower()))
    return '; '.join(shown) or 'none'


def _walk(a, b, path, found):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _walk(a.get(key, _MISSING), b.get(key, _MISSING), '%s.%s' % (path, key) if path else key, found)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, '%s[%d]' % (path, index), found)
    elif a != b:
        found.append((path, a, b))


class _Missing(object):
    def __repr__(self):
        return 'absent'


_MISSING = _Missing()


def _text(value):
    if value is _MISSING:
        return 'absent'
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def summary(value):
    """A short text of a held or stated policy for a report: its authorities and whether it is immutable."""
    if not value or not isinstance(value, dict) or value.get('policy') is None:
        return 'none'
    doc = value['policy']
    authorities = [a.get('authority') for s in SELECTORS for a in (doc.get(s) or []) if isinstance(a, dict)]
    return '%s%s' % (', '.join(str(a) for a in authorities) or 'a policy', ' (immutable)' if value.get('immutable') else '')
