# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decision table of a transfer, written once.

Pure functions over plain values (no SDK, no PKCS#11), used by the modules (hsm_keygen,
keyvault_import) and by the transfer role's plan alike:

- what to do with the key a token holds under a label (keep, generate, replace, fail), per the
  regenerate policy;
- what to do with a vault key name (import, keep, conflict), given the identity of the vault's current
  version and of the HSM key;
- whether a vault needs its KEK before any HSM work.

An identity is the SPKI SHA-256 fingerprint of an RSA/EC key or the KCV of an AES key.  An identity
that could not be established (None) never matches anything, not even another None.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

REGENERATE_CHOICES = ('never', 'fail', 'full_idempotence', 'always')
#: policies under which a run may make a new HSM key for a label that already has one
REGENERATE_MAY_REPLACE = ('full_idempotence', 'always')

KEEP = 'keep'
IMPORT = 'import'
CONFLICT = 'conflict'
#: a key the inventory lists with state: absent: DELETE it from the vault (soft delete), or it is ABSENT already
DELETE = 'delete'
ABSENT = 'absent'
#: a key listed again whose name the vault holds soft-deleted, with the HSM key's identity: RECOVER it, never re-import
RECOVER = 'recover'


def known(identity):
    """True when an identity (fingerprint or KCV) was established: None, '' and blanks mean unknown."""
    return identity is not None and bool(str(identity).strip())


def same_identity(a, b):
    """True only when both identities are known and equal (case-insensitive hex)."""
    return known(a) and known(b) and str(a).strip().lower() == str(b).strip().lower()


def regeneration_decision(existing_diffs, exists, regenerate):
    """('keep' | 'generate' | 'replace' | 'fail', reason) for the key a token holds under a label, per the policy."""
    if not exists:
        return 'generate', 'no key with this label on the token'
    if regenerate == 'always':
        return 'replace', 'regenerate is always'
    if not existing_diffs:
        return 'keep', 'the key on the token matches'
    reason = '; '.join(existing_diffs)
    if regenerate == 'never':
        return 'keep', reason
    if regenerate == 'full_idempotence':
        return 'replace', reason
    return 'fail', reason


def import_decision(exists, current_identity, expected, force):
    """('import' | 'keep' | 'conflict', reason) for the vault's current version against the HSM key."""
    if not exists:
        return IMPORT, 'the vault has no key of this name'
    if same_identity(current_identity, expected):
        return KEEP, "the vault's current version is the HSM key"
    if force:
        return IMPORT, "force is set and the vault's current version is not known to be the HSM key (a rotation)"
    if not known(expected) or not known(current_identity):
        return CONFLICT, ('the vault key exists and it cannot be compared with the HSM key (no %s)'
                          % ('fingerprint of the HSM key' if not known(expected) else 'fingerprint or KCV from the vault'))
    return CONFLICT, "the vault's current version has %s, the HSM key has %s" % (current_identity, expected)


def kek_needed(in_vault, force, regenerate):
    """Whether a key may be imported by this run, so that its vault's KEK must be at hand before any HSM work.

    A key already in its vault moves only when force is set or the HSM key may be replaced; a fleet
    whose keys are all in place needs no KEK at all (the no-op run).
    """
    return (not in_vault) or bool(force) or regenerate in REGENERATE_MAY_REPLACE


def rotation_text(name):
    """How a diff and a report name a new version of an existing vault key."""
    return 'new version of %s' % name


def absent_decision(exists, current_identity, expected):
    """('delete' | 'absent' | 'conflict', reason) for a key the inventory lists with state: absent."""
    if not exists:
        return ABSENT, 'the vault has no current version of this name'
    if same_identity(current_identity, expected):
        return DELETE, "the vault's current version is the HSM key"
    return CONFLICT, ("the vault's current version (%s) is not known to be the HSM key (%s), so it is not deleted"
                      % (current_identity or 'no identity', expected or 'no HSM key'))


def deleted_decision(deleted_identity, expected):
    """('recover' | 'conflict', reason) for a key listed as present whose name the vault holds soft-deleted (Key Vault
    refuses a new key of that name until it is recovered or purged)."""
    if same_identity(deleted_identity, expected):
        return RECOVER, 'the vault holds the HSM key soft-deleted under this name'
    return CONFLICT, ('the vault holds another key soft-deleted under this name (%s, the HSM key has %s); recover or purge '
                      'it first, or use another name' % (deleted_identity or 'no identity', expected or 'none'))
