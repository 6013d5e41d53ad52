# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The key record: one per (HSM host, key, vault), the one shape a transfer carries from its plan to its manifest.

The plan (fleet_plan.plan_fleet) makes the records: the key as the inventory declares it (name, label, type, vault,
attributes) and where it goes.  Each step of the transfer (byok_vault_step, byok_hsm_step) adds what it did for the key
under steps.STEP, and nothing else:

  read     what the vault holds under the key's name (its current version, or that it could not be read)
  contact  what the HSM holds under the label, read-only, before any KEK or vault write
  decide   what moves: import, keep or conflict (the vault's current version against the HSM key)
  kek      the KEK of the vault (kid, fingerprint, public key) for a key that moves
  keygen   the HSM key, made sure of (kept, generated or replaced)
  wrap     the key wrapped under the KEK inside the HSM (the .byok, base64, until the import took it)
  import   what the vault did with it (its version, the identity it reports and where that came from, the signature)
  update   the attributes the inventory states, changed in place on a key that was already in the vault (Update Key)
  proof    with byok_verify_signature, the signature of a key in place (a key imported is signed by its import)
  delete   a key listed with state: absent, deleted from its vault (soft delete); recover: one listed again, recovered
  destroy  the HSM key of a retired key (state: absent, destroy_hsm_key), destroyed after its vault confirmed the deletion
  seal     whether the HSM key was sealed after the vaults held it

A step that failed for the key says so ({'failed': True, 'msg': ...}); a step that did not run is absent.  A host that
stopped has its reason in 'stopped'.  row() derives the key's report row from the steps alone, in one place: a step that
failed makes the row 'failed' with that step's message, a step that did not run leaves it 'not done' with the reason,
never a success; a key the vault holds keeps its vault version whatever else failed.

Pure Python (no SDK, no PKCS#11): the step modules, the filters and the report use it alike.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping, Sequence

from ansible_collections.byok.keyvault.plugins.module_utils import attributes
from ansible_collections.byok.keyvault.plugins.module_utils import decisions
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import release_policy
from ansible_collections.byok.keyvault.plugins.module_utils import rotation
from ansible_collections.byok.keyvault.plugins.module_utils import report
from ansible_collections.byok.keyvault.plugins.module_utils.attributes import parse_datetime
from ansible_collections.byok.keyvault.plugins.module_utils import user_terms
from ansible_collections.byok.keyvault.plugins.module_utils.user_terms import in_inventory_terms
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import key_name_key

STEPS = ('read', 'contact', 'decide', 'kek', 'keygen', 'wrap', 'import', 'update', 'proof', 'delete', 'recover', 'destroy',
         'seal')
#: the variables the transfer role registers each step's result in, newest first (latest() reads them in this order); the
#: rescue's own fact comes first: it is written last
REGISTERS = ('byok_records', 'byok_finished', 'byok_imported', 'byok_hsm', 'byok_kek', 'byok_contact', 'byok_read', 'byok_plan')
#: registers of run_once steps: their records are every host's, a host takes its own
FLEET_REGISTERS = ('byok_imported', 'byok_read', 'byok_plan')
#: what a vault step of each name writes, for a step that failed as a whole (its module could not give records)
VAULT_STEPS = ('read', 'kek', 'import', 'kek_delete')
HSM_STEPS = ('contact', 'transfer', 'finish')

SOURCE_JWK = report.SOURCE_JWK
SOURCE_VAULT_KCV = report.SOURCE_VAULT_KCV
SOURCE_VAULT_WRAP = report.SOURCE_VAULT_WRAP
SOURCE_KCV_TAG = report.SOURCE_KCV_TAG
PROOFS = report.PROOFS

IN_VAULT = ('transferred', 'in place', 'updated', 'recovered')
#: the fields of a record keyvault_import takes for a key (its options of the same names)
IMPORT_FIELDS = ('name', 'key_type', 'key_size', 'curve', 'key_ops', 'tags', 'enabled', 'not_before', 'expires_on', 'force',
                 'exportable', 'release_policy', 'release_policy_immutable')
TOKEN_FIELDS = report.TOKEN_FIELDS
NOT_EVERY_VAULT = 'HSM key not sealed: not every vault listed for it holds it yet'
STOPPED_UNSEEN = 'this host stopped before this step (unreachable, or a task outside the transfer failed)'


# -- the record and its steps ------------------------------------------------------------------------------------------
def new(entry):
    """A record from a plan entry (the key as the inventory declares it, with its host and vault), no step done."""
    rec = dict(entry)
    rec['steps'] = {}
    return rec


def step(rec, name):
    """What a step did for the record (a dict), or None when it did not run."""
    return ((rec or {}).get('steps') or {}).get(name)


def ok(rec, name):
    s = step(rec, name)
    return s is not None and not s.get('failed')


def failed(rec, name):
    s = step(rec, name)
    return s is not None and bool(s.get('failed'))


def note(rec, name, **facts):
    """Record what a step did for the key."""
    rec.setdefault('steps', {})[name] = dict(facts, failed=bool(facts.get('failed')))
    return rec


def fail(rec, name, msg, **facts):
    return note(rec, name, failed=True, msg=msg or 'failed', **facts)


def plain(value):
    """value as plain Python data (dict, list, str, numbers), a copy: records read from hostvars are Ansible's lazy,
    tagged containers, which a deep copy would rebuild at a great cost (seconds for a few hundred records)."""
    if isinstance(value, Mapping):
        return dict((plain(k), plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def copies(records):
    """Plain copies of records (a step never changes the records it was given)."""
    return [plain(r) for r in records or [] if isinstance(r, Mapping)]


def hosts_of(records):
    out = []
    for rec in records or []:
        if rec.get('host') not in out:
            out.append(rec.get('host'))
    return out


def of_host(records, host):
    return [r for r in records or [] if r.get('host') == host]


def _vault_entry(out, rec, field='keys'):
    """The entry of the record's vault in a per-vault request list ({vault: entry}), made on first use."""
    return out.setdefault(rec['vault'], {'name': rec['vault'], 'vault_url': rec.get('vault_url'),
                                         'vault_type': rec.get('vault_kind') or 'auto', field: []})


def _outcomes(records, results):
    """(record, its key's result in its vault's result or None) for each record, from one result per vault."""
    by_vault = dict((r.get('name'), r) for r in results or [])
    for rec in records:
        result = by_vault.get(rec['vault'])
        yield rec, (_by_name(result.get('keys')).get(key_name_key(rec['name'])) if result else None)


def _by_name(entries):
    return dict((key_name_key(e.get('name')), e) for e in entries or [] if isinstance(e, dict))


# -- read: what each vault holds ---------------------------------------------------------------------------------------
def read_requests(records):
    """keyvault_key_info's vaults option for the records: each vault once, with the key names to look up."""
    out = {}
    for rec in records:
        v = out.setdefault(rec['vault'], {'name': rec['vault'], 'vault_url': rec.get('vault_url'),
                                          'vault_type': rec.get('vault_kind') or 'auto', 'names': []})
        if key_name_key(rec['name']) not in [key_name_key(n) for n in v['names']]:
            v['names'].append(rec['name'])
    return [out[name] for name in sorted(out)]


def note_reads(records, results, now=None):
    """The read step of each record from the vaults' look-ups (one result per vault, each with its keys); for a key with
    rotate_after, whether its current version's period is over at now (the controller's time)."""
    by_vault = dict((r.get('name'), r) for r in results or [])
    for rec in records:
        result = by_vault.get(rec['vault']) or {}
        entry = _by_name(result.get('keys')).get(key_name_key(rec['name']))
        if entry is not None and not entry.get('failed') and 'exists' in entry:
            note(rec, 'read', **dict((k, v) for k, v in entry.items() if k not in ('name', 'changed', 'failed')))
            if rec.get('rotate_after') and entry.get('exists') and entry.get('created_on') and now is not None:
                is_due, why = rotation.due(parse_datetime(entry['created_on'], 'created_on'), rec['rotate_after'], now)
                step(rec, 'read').update(rotation_due=is_due, rotation_reason=why)
        else:
            why = (entry or {}).get('msg') or result.get('msg') or 'the vault gave no answer for this key'
            fail(rec, 'read', 'vault %s could not be read: %s' % (rec['vault'], user_terms.in_vault_terms(why, rec['vault'])))
    return records


def history_requests(records):
    """The vaults' key names whose versions the rotation must know: keys with rotate_after whose period is over (a
    generation an older version held was in service and is never taken again), and keys in their vaults that force may
    give a new version (never the key an older version held: a replayed bundle or an old HSM key would roll it back)."""
    def due(rec):
        return bool(rec.get('rotate_after') and (step(rec, 'read') or {}).get('rotation_due'))

    def forced(rec):
        return bool(rec.get('force') and not absent(rec) and in_vault(rec))

    return read_requests([rec for rec in records if due(rec) or forced(rec)])


def read_versions(records):
    """{(vault, key name): the version the read found current}: not the newest in a versions list, nor asked again."""
    return dict(((rec['vault'], rec['name']), (step(rec, 'read') or {}).get('version')) for rec in records)


def note_history(records, results):
    """The identities the older versions of each rotating key carried (the collection's identity tag), on its read step."""
    for rec, outcome in _outcomes(records, results):
        if outcome is not None and not outcome.get('failed') and step(rec, 'read') is not None:
            step(rec, 'read')['earlier_identities'] = list(outcome.get('earlier_identities') or [])
    return records


#: the vault identity of an AES key whose key wrap of a random value is not the HSM key's
WRAP_DIFFERS = "another AES key (the vault's key wrap of a random value is not the HSM key's)"


def note_wrap_checks(records, wraps_of):
    """The contact or keygen step of each AES record whose read step holds the vault's key wrap of a random value
    (wrap_check: an AES key the vault computes no KCV of) gets vault_wrap: whether wraps_of(label, value) - the same
    wrap computed with the HSM key - gave the same bytes (None: the HSM could not compute it)."""
    for rec in records:
        check = (step(rec, 'read') or {}).get('wrap_check')
        made = step(rec, 'keygen') or step(rec, 'contact')
        if not check or made is None or made.get('failed'):
            continue
        mine = wraps_of(rec['label'], bytes.fromhex(check['value']))
        made['vault_wrap'] = None if mine is None else mine == bytes.fromhex(check['wrapped'])
    return records


def vault_identity(rec):
    """(identity, source) of the vault's current version as read: its fingerprint from the vault's JWK, or for AES the
    KCV the vault computed, else the byok-kcv tag (source kcv-tag: proves nothing)."""
    held = step(rec, 'read')
    if not held or held.get('failed') or not held.get('exists'):
        return None, None
    shown = (step(rec, 'update') or {}).get('vault_identity')
    if held.get('disabled') and shown:
        # the update enabled it for a moment and the vault showed its key material (it was another key's)
        return shown, (SOURCE_VAULT_KCV if ki.identified_by_kcv(rec.get('key_type')) else SOURCE_JWK)
    if held.get('disabled'):
        # the vault will not read a disabled version: only the identity the collection recorded at import is left
        tag = ki.tagged_identity(held.get('tags'), ki.identity_tag(rec.get('key_type')))
        return tag, (SOURCE_KCV_TAG if tag else None)
    if ki.identified_by_kcv(rec.get('key_type')):
        if held.get('kcv'):
            return held['kcv'], SOURCE_VAULT_KCV
        wrapped = (step(rec, 'keygen') or step(rec, 'contact') or {}).get('vault_wrap')
        if wrapped is True:  # the vault's key wrap of a random value is the HSM key's: the vault holds the HSM key
            return hsm_identity(rec), SOURCE_VAULT_WRAP
        if wrapped is False:
            return WRAP_DIFFERS, SOURCE_VAULT_WRAP
        tag = ki.tagged_identity(held.get('tags'), ki.KCV_TAG)
        return tag, (SOURCE_KCV_TAG if tag else None)
    return held.get('fingerprint'), (SOURCE_JWK if held.get('fingerprint') else None)


def in_vault(rec):
    held = step(rec, 'read')
    return bool(held and not held.get('failed') and held.get('exists'))


# -- contact, keygen and decide: the HSM's keys and what moves ----------------------------------------------------------
def blocking(records, kek_too=False):
    """Why the HSM step of these records' host cannot go on: a vault it sends keys to could not be read, or (kek_too)
    the KEK of a vault a key moves to could not be had.  One line per vault."""
    problems = []
    for rec in records:
        for name in ('read',) + (('kek',) if kek_too else ()):
            s = step(rec, name)
            if s is not None and s.get('failed') and s['msg'] not in problems:
                problems.append(s['msg'])
    return problems


def absent(rec):
    """Whether the inventory lists the key with state: absent (to be deleted from its vault)."""
    return rec.get('state') == 'absent'


def hsm_keys(records, contact=False):
    """hsm_keygen's keys for the records: one per label (a label that goes to several vaults is one HSM key); a key
    listed as absent is looked at by the contact (its identity decides the deletion) and never generated."""
    out = []
    for rec in records:
        if absent(rec) and not contact:
            continue
        if any(item['label'] == rec['label'] for item in out):
            continue
        if not contact and all(action(r) == decisions.CONFLICT for r in records if r['label'] == rec['label']):
            continue  # nothing of this label moves: its HSM key is neither generated nor replaced
        item = {'label': rec['label'], 'key_type': rec['key_type'], 'key_size': rec.get('key_size')}
        for field in ('curve', 'id'):
            if rec.get(field):
                item[field] = rec[field]
        out.append(item)
    return out


def note_keys(records, results, name, token=None):
    """The contact or keygen step of each record from the HSM's result for its label ({label: result})."""
    for rec in records:
        result = results.get(rec['label'])
        if result is None or (step(rec, name) or {}).get('failed'):  # failed already (its generations could not be read)
            continue
        if result.get('failed'):
            fail(rec, name, result.get('msg'))
        else:
            # the HSM key's public key is not carried on: its fingerprint identifies it in every later step
            note(rec, name, **dict((k, v) for k, v in result.items() if k not in ('label', 'failed', 'public_key_pem')))
        if token:
            rec['token'] = dict((f, token.get(f)) for f in TOKEN_FIELDS)
    return records


def rotating_bases(records):
    """The labels of the entries with rotate_after whose generations the HSM step must look for."""
    out = []
    for rec in records:
        base = rec.get('base_label') or rec['label']
        if rec.get('rotate_after') and base not in out:
            out.append(base)
    return out


def choose_generations(records, found):
    """The HSM key each record with rotate_after stands for, from the generations the token holds ({base label:
    {generation: identity}}); rec['label'] becomes that key's label (rec['base_label'] keeps the entry's) and
    rec['rotating'] says that it becomes a new version of the record's vault key.

    One label is one key in every vault it goes to, so the records of a label move together: N is the newest generation
    any of their vaults holds as its current version; when the period of a vault's version of N is over, every record of
    the label moves to N+1; a vault still on an older generation catches up to N.  A record whose vault holds none of the
    generations stands for the newest one on the token (compared as without rotate_after: a conflict unless force).  A
    key listed as absent stands for the generation its vault holds (that one is deleted), and never rotates."""
    groups = {}
    for rec in records:
        if rec.get('rotate_after'):
            base = rec.setdefault('base_label', rec['label'])
            rec.setdefault('base_id', rec.get('id'))
            groups.setdefault(base, []).append(rec)
    for base, recs in groups.items():
        generations = found.get(base) or {}
        current = {}
        for rec in recs:
            identity = vault_identity(rec)[0]
            current[id(rec)] = next((n for n, key in sorted(generations.items()) if decisions.same_identity(key, identity)),
                                    None)
        present = [r for r in recs if not absent(r)]
        held = [current[id(r)] for r in present if current[id(r)] is not None]
        newest = max(held) if held else None
        due = any(current[id(r)] == newest and rotation_allowed(r) for r in present) if newest is not None else False
        # the next generation: newest + 1, which the token may hold already from a rotation whose import did not land
        # (taken again); a token that holds generations beyond it has had them in service (a vault was rolled back to an
        # older one): never taken again, the rotation goes past them
        last = max(generations) if generations else None
        # what older versions of these keys held (the vault's version history, read for a key whose period is over)
        earlier = [i for r in recs for i in (step(r, 'read') or {}).get('earlier_identities') or []]
        was_used = newest is not None and any(decisions.same_identity(generations.get(newest + 1), i) for i in earlier)
        after = newest + 1 if newest is not None and not was_used and (last is None or last <= newest + 1) else (last or 0) + 1
        for rec in recs:
            mine = current[id(rec)]
            if mine is None and not absent(rec):
                # a name the vault holds soft-deleted as one of the generations (retired, then listed again): that one
                deleted = (step(rec, 'read') or {}).get('deleted_fingerprint')
                mine_deleted = next((n for n, key in sorted(generations.items()) if decisions.same_identity(key, deleted)),
                                    None) if deleted else None
            else:
                mine_deleted = None
            if absent(rec) or mine is None:
                generation = mine if mine is not None else (
                    mine_deleted if mine_deleted is not None else (max(generations) if generations else 1))
                rec['rotating'] = False
            else:
                generation = after if due else newest
                if generation != mine and not _in_use(rec):
                    generation = mine  # a disabled key stays the version it is
                rec['rotating'] = generation != mine
                if rec['rotating'] and not due:
                    step(rec, 'read')['rotation_reason'] = ('another vault of HSM label %s holds its generation %d'
                                                            % (base, newest))
            rec['label'] = rotation.label(base, generation)
            rec['id'] = rec['base_id'] if generation == 1 else None  # the entry's CKA_ID belongs to its first key
            # the HSM key the vault's current version is (before a rotation makes the next one)
            rec['held_label'] = rotation.label(base, mine) if mine is not None else None
            rec['held_identity'] = generations.get(mine) if mine is not None else None
            if mine is not None and last is not None and last > mine and not absent(rec):
                rec['newer_generations'] = last  # the token holds newer generations than the vault's current version
    return records


def rotation_allowed(rec):
    """Whether the period of the record's vault version is over and the key may rotate (not a disabled key, nor one the
    inventory keeps disabled: a key out of use is not rotated)."""
    return bool((step(rec, 'read') or {}).get('rotation_due')) and _in_use(rec)


def _in_use(rec):
    return not (step(rec, 'read') or {}).get('disabled') and rec.get('enabled', True) is not False


def hsm_identity(rec):
    """The HSM key's identity: from the keygen step, else from the contact (the key as it was before the run)."""
    for name in ('keygen', 'contact'):
        s = step(rec, name)
        if s is not None and not s.get('failed'):
            return s.get('fingerprint')
    return None


#: why force does not make a new version of the key an older version held
ROLLBACK = ("an older version of vault key %s held this HSM key, which a newer version replaced: importing it again would "
            "put a retired key back into service (an old bundle or HSM key, a rollback). Enable that older version in "
            "the vault yourself if you mean it, or give the entry a new HSM key (a new label)")

#: why a key whose HSM key differs from its entry is not replaced: a vault's current version is that key
REPLACE_REFUSED = ("the HSM key differs from its entry and byok_regenerate would replace it, but it is the key of the "
                   "%s of vault %s key %s: the HSM keeps no other copy of it")


def replaced_identity(rec):
    """The identity of the key the HSM step replaces (or would) under rec's label (byok_regenerate: full_idempotence,
    the key differing from its entry), or None."""
    hsm_step = step(rec, 'keygen') or step(rec, 'contact') or {}
    return hsm_step.get('replaces') if hsm_step.get('action') == 'replace' else None


def vault_held_labels(records):
    """{label: (what, vault, name)} of the HSM keys the HSM step would replace although a vault holds that very key, as
    its current version or soft-deleted: the HSM keeps no other copy of it, so it is not replaced (byok_regenerate never
    destroys a key a vault holds)."""
    out = {}
    for rec in records:
        old = replaced_identity(rec)
        held = step(rec, 'read') or {}
        if not old or not ok(rec, 'read'):
            continue
        if in_vault(rec) and decisions.same_identity(old, vault_identity(rec)[0]):
            out.setdefault(rec['label'], ('current version', rec['vault'], rec['name']))
        elif held.get('deleted') and decisions.same_identity(old, held.get('deleted_fingerprint')):
            out.setdefault(rec['label'], ('soft-deleted key', rec['vault'], rec['name']))
    return out


def decide(records):
    """The decide step of each record whose HSM key is known: import, keep or conflict (decisions.import_decision), and
    whether the vault's KEK is needed.  Returns the vault names whose KEK the records need."""
    wanted = []
    vault_held = vault_held_labels(records)
    for rec in records:
        hsm_step = step(rec, 'keygen') or step(rec, 'contact')
        if hsm_step is not None and hsm_step.get('failed'):
            rec['steps'].pop('decide', None)  # an earlier decision is not one about the key the HSM now holds
            continue
        if hsm_step is None or not ok(rec, 'read'):
            continue
        identity, source = vault_identity(rec)
        held = step(rec, 'read') or {}
        refused = None  # why the collection itself refuses what the decision table would do: 'replace' or 'rollback'
        if rec['label'] in vault_held and not absent(rec):
            what, reason, refused = decisions.CONFLICT, REPLACE_REFUSED % vault_held[rec['label']], 'replace'
        elif absent(rec):
            what, reason = decisions.absent_decision(in_vault(rec), identity, hsm_step.get('fingerprint'))
        elif not in_vault(rec) and held.get('deleted'):
            what, reason = decisions.deleted_decision(held.get('deleted_fingerprint'), hsm_step.get('fingerprint'))
        elif rec.get('rotating'):
            # the vault's current version is an earlier generation of this key, and its period is over: the next
            # generation (rec['label']) becomes the new version, while the vault's current version is still that one
            what, reason = decisions.IMPORT, 'rotate_after: %s' % held.get('rotation_reason')
        else:
            what, reason = decisions.import_decision(in_vault(rec), identity, hsm_step.get('fingerprint'), rec.get('force'))
            if what == decisions.IMPORT and in_vault(rec) and any(
                    decisions.same_identity(i, hsm_step.get('fingerprint')) for i in held.get('earlier_identities') or []):
                what, reason, refused = decisions.CONFLICT, ROLLBACK % rec['name'], 'rollback'
        note(rec, 'decide', action=what, reason=reason, vault_fingerprint=identity, identity_source=source,
             rotation=bool(what == decisions.IMPORT and in_vault(rec)), refused=refused)
        if what == decisions.IMPORT and rec['vault'] not in wanted:
            wanted.append(rec['vault'])
    return wanted


def action(rec):
    s = step(rec, 'decide')
    return s.get('action') if s else None


# -- kek: the KEK of each vault a key moves to --------------------------------------------------------------------------
def kek_requests(records, every=False):
    """The vaults whose KEK these records need (a key decided to move; with every, each record's: stage 1 of the staged
    flow), each once, with its KEK's name, size and expiry."""
    out = {}
    for rec in records:
        if (not every and action(rec) != decisions.IMPORT) or rec['vault'] in out:
            continue
        out[rec['vault']] = {'name': rec['vault'], 'vault_url': rec.get('vault_url'), 'vault_type': rec.get('vault_kind') or 'auto',
                             'kek_name': rec.get('kek_name') or 'byok-kek', 'kek_size': rec.get('kek_size') or 4096,
                             'kek_expires_on': rec.get('kek_expires_on')}
    return [out[name] for name in sorted(out)]


def note_keks(records, results, every=False):
    """The kek step of each record that moves (with every, of each record), from the KEK of its vault (one result per
    vault)."""
    by_vault = dict((r.get('name'), r) for r in results or [])
    for rec in records:
        result = by_vault.get(rec['vault'])
        if result is None or (not every and action(rec) != decisions.IMPORT):
            continue
        if result.get('failed'):
            fail(rec, 'kek', 'the KEK of vault %s could not be had: %s'
                 % (rec['vault'], user_terms.in_vault_terms(result.get('msg') or 'failed', rec['vault'])))
        else:
            note(rec, 'kek', **dict((k, result.get(k)) for k in ('kid', 'fingerprint', 'public_key_pem', 'created', 'kek_name')
                                    if result.get(k) is not None))
    return records


def kek_vaults(records):
    """{vault: {'url', 'kek_name', 'kid'}} of the KEKs the records were given (those a run may delete afterwards)."""
    out = {}
    for rec in records:
        s = step(rec, 'kek')
        if s and not s.get('failed') and s.get('kid'):
            out.setdefault(rec['vault'], {'url': rec.get('vault_url'), 'vault_type': rec.get('vault_kind') or 'auto',
                                          'kek_name': s.get('kek_name') or rec.get('kek_name') or 'byok-kek', 'kid': s['kid']})
    return out


# -- wrap: what moves, wrapped under its vault's KEK ---------------------------------------------------------------------
def wrap_work(records):
    """[(label, id, kek step)] of the keys to wrap: each HSM key once per KEK it goes under."""
    out = []
    seen = set()
    for rec in records:
        kek = step(rec, 'kek')
        if action(rec) != decisions.IMPORT or not kek or kek.get('failed') or not kek.get('public_key_pem'):
            continue
        if (rec['label'], kek['kid']) in seen:
            continue
        seen.add((rec['label'], kek['kid']))
        out.append((rec['label'], rec.get('id'), kek))
    return out


def note_wraps(records, results):
    """The wrap step of each record that moves, from the wrap of its label under its vault's KEK ({(label, kid): result})."""
    for rec in records:
        kek = step(rec, 'kek')
        result = results.get((rec['label'], (kek or {}).get('kid'))) if action(rec) == decisions.IMPORT else None
        if kek is not None:
            kek.pop('public_key_pem', None)  # the wrap used it; the import and the report need only the kid and fingerprint
        if result is None:
            continue
        if result.get('failed'):
            fail(rec, 'wrap', result.get('msg'))
        else:
            note(rec, 'wrap', wrap_method=result.get('wrap_method'), wrap_mechanism=result.get('wrap_mechanism'),
                 byok_content=result.get('byok_content'), fingerprint=result.get('fingerprint'))
    return records


# -- the staged (air-gapped) flow: the same records and steps, with a bundle carried between the hosts ------------------
UNAUTHENTICATED = ('NOT AUTHENTICATED: the HSM identity and the .byok were taken from the bundle without the digest carried out '
                   'of band (byok_airgap_unauthenticated)')
STAGED_REASON = 'staged flow: wrapped into the bundle; stage 3 decides again against what its vault holds'


def decide_staged(records):
    """Stage 2 (the offline HSM host, which cannot read a vault): each key whose HSM key was made sure of moves into the
    bundle; stage 3 reads its vault and decides again (a key the vault already holds is kept there)."""
    for rec in records:
        made = step(rec, 'keygen')
        if made is None or made.get('failed') or absent(rec):
            continue
        note(rec, 'decide', action=decisions.IMPORT, reason=STAGED_REASON, vault_fingerprint=None, identity_source=None,
             rotation=False)
    return records


def staged_files(records):
    """Stage 2: [(record, its wrap step)] of the records whose key was wrapped (each a .byok of the bundle)."""
    return [(rec, step(rec, 'wrap')) for rec in records if ok(rec, 'wrap') and step(rec, 'wrap').get('byok_content')]


def note_bundle(records, results):
    """Stage 3: what the bundle holds for each record (bundle.verify's results, in the records' order): the HSM key as
    stage 2 sealed it (keygen, its identity from the seal) and its .byok (wrap, the checked bytes), or why the key may
    not be imported (wrap failed, from the bundle)."""
    for rec, result in zip(records, results):
        if not result.get('ready'):
            fail(rec, 'wrap', result.get('msg') or 'not in the bundle', bundle=True)
            continue
        note(rec, 'keygen', fingerprint=result['hsm_fingerprint'], key_type=rec.get('key_type'), key_size=rec.get('key_size'),
             curve=rec.get('curve'), source='the seal of the bundle (digest %s)' % result.get('seal_digest'),
             authenticated=bool(result.get('authenticated')))
        if result.get('kek_kid'):
            note(rec, 'kek', kid=result['kek_kid'], fingerprint=result.get('kek_fingerprint'))
        note(rec, 'wrap', byok_content=result['byok_content'], byok_sha256=result.get('byok_sha256'),
             fingerprint=result['hsm_fingerprint'], wrap_method=result.get('wrap_method'),
             wrap_mechanism=result.get('wrap_mechanism'))
        if isinstance(result.get('token'), Mapping):  # the token stage 2 wrapped on, as its seal records it
            rec['token'] = dict((f, result['token'].get(f)) for f in TOKEN_FIELDS)
    return records


def sealed_kek_requests(records):
    """Stage 3: per vault, the KEKs the seal names for its keys ready to import ({name, vault_url, vault_type, keks:
    [{kid, fingerprint}]}), for the vault to confirm each: a kid stage 2 did not verify (only the fingerprint of the
    KEK's public key was carried out of band) must be a KEK of that vault with that very public key."""
    out = {}
    for rec in records:
        kek, wrap = step(rec, 'kek'), step(rec, 'wrap')
        if not _from_bundle(rec) or kek is None or wrap is None or wrap.get('failed') or not kek.get('kid'):
            continue
        v = _vault_entry(out, rec, 'keks')
        sealed = {'kid': kek['kid'], 'fingerprint': kek.get('fingerprint')}
        if sealed not in v['keks']:
            v['keks'].append(sealed)
    return [out[name] for name in sorted(out)]


def note_sealed_keks(records, results):
    """Stage 3: a key whose sealed KEK its vault did not confirm fails from the bundle (nothing of it is imported)."""
    by_vault = dict((r.get('name'), r) for r in results or [] if not r.get('failed'))
    for rec in records:
        kek = step(rec, 'kek') or {}
        problem = ((by_vault.get(rec['vault']) or {}).get('problems') or {}).get(kek.get('kid'))
        if problem and _from_bundle(rec):
            fail(rec, 'wrap', 'the KEK the seal names for vault %s (%s) is not one the vault confirms as the KEK whose '
                 'fingerprint stage 2 verified out of band (%s): %s. Either that KEK was deleted or replaced in the vault '
                 'since stage 1, byok_vaults.%s.url names another vault than at stage 1, or keks/%s.json in the bundle '
                 'was altered before stage 2; nothing of this key is imported: run stage 1 again, then stages 2 and 3'
                 % (rec['vault'], kek.get('kid'), kek.get('fingerprint'), problem, rec['vault'], rec['vault']), bundle=True)
    return records


def _from_bundle(rec):
    """Whether the record's HSM key is the one a bundle's seal gave (stage 3 of the staged flow)."""
    return 'authenticated' in (step(rec, 'keygen') or {})


def _without_not_done(text):
    return text[len('not done: '):] if text.startswith('not done: ') else text


def _bundle_failure(rec):
    """Why the bundle of the staged flow gives no .byok for the record, or None."""
    wrap = step(rec, 'wrap')
    if wrap and wrap.get('failed') and wrap.get('bundle'):
        return wrap.get('msg') or 'failed'
    return None


# -- import: the wrapped keys into their vaults --------------------------------------------------------------------------
def import_requests(records, check_mode=False):
    """keyvault_import's vaults option for the records that move and were wrapped (in check mode: that would move), the
    records of a host that stopped left out."""
    out = {}
    for rec in records:
        if action(rec) != decisions.IMPORT or rec.get('stopped'):
            continue
        wrap = step(rec, 'wrap')
        content = (wrap or {}).get('byok_content') if wrap and not wrap.get('failed') else None
        if not content and (not check_mode or (wrap or {}).get('failed')):
            continue  # nothing to import; in check mode too once its wrap failed (it would not be imported)
        item = dict((f, rec.get(f)) for f in IMPORT_FIELDS if rec.get(f) is not None)
        made = step(rec, 'keygen') or step(rec, 'contact') or {}
        for field in ('key_type', 'key_size', 'curve'):
            # the key as the HSM holds it: byok_regenerate never keeps one that differs from its entry, and its import
            # declares what the .byok holds, or the vault refuses it after the wrap
            if made.get(field):
                item[field] = made[field]
        if item.get('key_type') == 'EC':
            item.pop('key_size', None)
        if rec.get('rotating'):
            # the period of the version read is over: import over it, only while it is still the vault's current one
            item.update(force=True, if_current_version=(step(rec, 'read') or {}).get('version'))
        item['expected_fingerprint'] = hsm_identity(rec)
        if content:
            item['byok_content'] = content
        _vault_entry(out, rec)['keys'].append(dict((k, v) for k, v in item.items() if v is not None))
    return [out[name] for name in sorted(out)]


def proof_requests(records):
    """The signatures byok_verify_signature asks of keys in place (a key imported is signed by its import): per vault,
    each RSA or EC key whose current version the vault proved to be the HSM key, enabled and allowed to sign."""
    out = {}
    for rec in records:
        held = current_version(rec)
        asked = rec.get('verify_signature') and action(rec) == decisions.KEEP and not rec.get('stopped')
        signs = held and not held.get('disabled') and 'sign' in (held.get('key_ops') or [])
        proved = vault_identity(rec)[1] == SOURCE_JWK and not ki.identified_by_kcv(rec.get('key_type'))
        if not (asked and signs and proved) or (step(rec, 'update') or {}).get('failed'):
            continue
        _vault_entry(out, rec)['keys'].append({'name': rec['name'], 'version': held.get('version'),
                                               'key_type': rec.get('key_type')})
    return [out[name] for name in sorted(out)]


def note_proofs(records, results):
    """The signature of each key in place that was asked for one (its 'proof' step: {'proof': ...} or failed)."""
    for rec, outcome in _outcomes(records, results):
        if outcome is None:
            continue
        if outcome.get('failed'):
            note(rec, 'proof', proof={'method': 'signature', 'verified': False, 'error': outcome.get('msg')})
        else:
            note(rec, 'proof', proof=outcome.get('proof'))
    return records


IMPORT_RESULT_FIELDS = ('changed', 'decision', 'kid', 'version', 'fingerprint', 'identity_source', 'attempts', 'proof',
                        'expected_fingerprint')


def note_imports(records, results):
    """The import step of each record that was sent to its vault (one result per vault, each with its keys); the .byok
    content is dropped from every record (the vault has it, or it failed)."""
    for rec, outcome in _outcomes(records, results):
        wrap = step(rec, 'wrap')
        if outcome is not None:
            if outcome.get('failed'):
                made = {'kid': outcome['kid']} if outcome.get('kid') else {}  # a version it made, then disabled
                fail(rec, 'import', outcome.get('msg'), outcome_unknown=bool(outcome.get('outcome_unknown')), **made)
            else:
                note(rec, 'import', **dict((k, outcome.get(k)) for k in IMPORT_RESULT_FIELDS))
        if wrap is not None:
            wrap.pop('byok_content', None)
    return records


# -- update: the attributes the inventory states, kept as declared on a key that is in place ----------------------------
#: the attributes of a vault key version the inventory can state (a field it does not state is left as it is)
ATTRIBUTES = ('enabled', 'not_before', 'expires_on', 'tags', 'key_ops', 'release_policy')
#: what the inventory can state of a version that the vault never changes on it (compared, reported, never updated)
FIXED = ('exportable',)
STATED = ATTRIBUTES + FIXED


def _same_time(a, b):
    if not a or not b:
        return not a and not b
    try:  # to the second, as Key Vault keeps them
        return parse_datetime(a, 'a date').replace(microsecond=0) == parse_datetime(b, 'a date').replace(microsecond=0)
    except Exception:  # pylint: disable=broad-except  # the plan checked the inventory's; a vault's is ISO 8601
        return str(a) == str(b)


def wanted_tags(rec, held_tags):
    """The tags a version must have: the stated ones over the vault's (append_tags, the default), or exactly the stated
    ones and the collection's own identity tag (append_tags false)."""
    held_tags = dict(held_tags or {})
    stated = dict(rec.get('tags') or {})
    if rec.get('append_tags', True) is not False:
        return dict(held_tags, **stated)
    own = dict((k, v) for k, v in held_tags.items() if k in ki.IDENTITY_TAGS)
    return dict(stated, **own)


def current_version(rec):
    """The vault's current version of a key in place as the run read it, or of a key this run recovered as the recovery
    gave it back ({} for any other key): what the stated attributes are kept on."""
    if action(rec) == decisions.RECOVER:
        done = step(rec, 'recover') or {}
        held = done.get('held') if not done.get('failed') else None
    else:
        held = step(rec, 'read') if action(rec) == decisions.KEEP else None
    return held if held and held.get('exists') and not held.get('failed') else {}


def attribute_changes(rec):
    """{field: [vault's value, stated value]} of the attributes the inventory states that differ from the vault's
    current version, for a key that is in place (decided keep) or recovered by this run; {} otherwise."""
    held = current_version(rec)
    if not held:
        return {}
    out = {}
    for field in rec.get('stated') or ():
        before, after = held.get(field), rec.get(field)
        if field == 'enabled':
            if bool(before) != bool(after):
                out[field] = [bool(before), bool(after)]
        elif field in ('not_before', 'expires_on'):
            if not _same_time(before, after):
                out[field] = [before, after]
        elif field == 'tags':
            want = _with_identity_tag(rec, wanted_tags(rec, before))
            if want != dict(before or {}):
                out[field] = [dict(before or {}), want]
        elif field == 'key_ops' and before is not None:  # a disabled version shows no operations: left as it is
            if sorted(before or []) != sorted(after or []):
                out[field] = [list(before or []), list(after or [])]
        elif field == 'release_policy' and 'release_policy' in held:  # a disabled version shows none: left as it is
            want = stated_policy(rec)
            if not release_policy.same(before, want):
                out[field] = [before, want]
    if 'tags' not in (rec.get('stated') or ()):
        # the identity tag is how a disabled version is known later: restored on a version the vault proved the HSM key
        before = dict(held.get('tags') or {})
        want = _with_identity_tag(rec, before)
        if want != before:
            out['tags'] = [before, want]
    return out


def _with_identity_tag(rec, tags):
    """tags with the collection's identity tag set to the HSM key's identity when the vault proved its current version is
    that key (its JWK, or a KCV it computed) and it has room for it; as they are otherwise (a tag is never written on
    the tag's word alone)."""
    identity, source = vault_identity(rec)
    if source not in report.PROVEN_SOURCES or not decisions.same_identity(identity, hsm_identity(rec)):
        return tags
    name = ki.identity_tag(rec.get('key_type'))
    if str(tags.get(name) or '').lower() == str(identity).lower():
        return tags
    if name not in tags and len(tags) >= attributes.MAX_TAGS:
        return tags  # the vault holds as many tags as it allows: the user's are not pushed out for the collection's own
    return dict(tags, **{name: hsm_identity(rec)})


def stated_policy(rec):
    """The release policy the inventory states for the key, as the records compare it ({policy, immutable}), or None."""
    if rec.get('release_policy') is None:
        return None
    return {'policy': rec['release_policy'], 'immutable': bool(rec.get('release_policy_immutable'))}


def unchangeable(rec):
    """Why the vault cannot be made to match what the inventory states for a key in place (None when it can): the
    exportable state of a version never changes, and an immutable release policy is never replaced."""
    held = current_version(rec)
    if not held:
        return None
    # exportable is compared whether stated or not: its default, false, is what the inventory says when it is silent
    if held.get('exportable') is not None and bool(held['exportable']) != bool(rec.get('exportable')):
        return ('vault key %s is %sexportable and the inventory says exportable: %s; Key Vault never changes that on a version '
                '("%s"), so nothing was changed: to get a key that is%s exportable, generate a new HSM key (a new label) and '
                'import it as a new version with force: true, or state exportable as the vault holds it'
                % (rec['name'], '' if held['exportable'] else 'not ', str(bool(rec.get('exportable'))).lower(),
                   release_policy.EXPORTABLE_FIXED, '' if rec.get('exportable') else ' not'))
    tags = attribute_changes(rec).get('tags')
    if tags and len(tags[1]) > attributes.MAX_TAGS:
        return ('vault key %s would hold %d tags after the update (the stated ones added to the %d it holds), more than the %d '
                'Key Vault allows, so nothing was changed: remove tags from the vault key, state fewer, or set append_tags: '
                'false (the stated tags and the identity tag only)' % (rec['name'], len(tags[1]), len(tags[0]), attributes.MAX_TAGS))
    change = attribute_changes(rec).get('release_policy')
    if change and (change[0] or {}).get('immutable'):
        return ('the release policy of vault key %s is immutable and differs from the stated one (%s); Key Vault refuses to '
                'change it ("%s"), so nothing was changed: state the policy the vault holds, or rotate to a new version with '
                'the new policy (a new label and force: true)'
                % (rec['name'], release_policy.summary(change[0]), release_policy.IMMUTABLE))
    return None


def note_unchangeable(records):
    """The update step of each key in place that the vault cannot make match the inventory: failed, with why."""
    for rec in records:
        why = unchangeable(rec)
        if why and not rec.get('stopped'):
            fail(rec, 'update', why)
    return records


def update_requests(records):
    """The Update Key requests of the records whose stated attributes differ from their vault's: per vault, each key
    with its version and the changes."""
    out = {}
    for rec in records:
        changes = attribute_changes(rec)
        if not changes or rec.get('stopped') or (step(rec, 'update') or {}).get('failed'):
            continue
        held = current_version(rec)
        # with what to check the vault's answer against: a disabled version was known by its tag alone
        _vault_entry(out, rec)['keys'].append({'name': rec['name'], 'version': held.get('version'), 'changes': changes,
                                               'disabled': bool(held.get('disabled')), 'expected': hsm_identity(rec),
                                               'key_type': rec.get('key_type'), 'key_size': rec.get('key_size')})
    return [out[name] for name in sorted(out)]


def removal_requests(records):
    """The deletions (state: absent, the vault's current version is the HSM key) and recoveries (listed again, the vault
    holds the HSM key soft-deleted) of the records: per vault, each key with what to do."""
    out = {}
    for rec in records:
        what = action(rec)
        if what not in (decisions.DELETE, decisions.RECOVER) or rec.get('stopped'):
            continue
        held = step(rec, 'read') or {}
        # a deletion is of the version the run read and decided on: the vault step checks it is still the current one
        item = {'name': rec['name'], 'action': what, 'version': held.get('version')}
        if what == decisions.RECOVER:
            # what the recovered version must prove to be (a soft-deleted AES key shows only a tag, which proves nothing)
            item.update(key_type=rec.get('key_type'), key_size=rec.get('key_size'), expected=hsm_identity(rec))
        _vault_entry(out, rec)['keys'].append(item)
    return [out[name] for name in sorted(out)]


def note_removals(records, results, check_mode=False):
    """The delete or recover step of each record sent to its vault (one result per vault, each with its keys)."""
    for rec, outcome in _outcomes(records, results):
        if outcome is None:
            continue
        name = 'delete' if action(rec) == decisions.DELETE else 'recover'
        if outcome.get('failed'):
            fail(rec, name, outcome.get('msg'))
        else:
            note(rec, name, check_mode=bool(check_mode),
                 **dict((k, outcome.get(k)) for k in ('kid', 'scheduled_purge_date', 'gone', 'answer_lost', 'held')))
    return records


def note_updates(records, results, check_mode=False):
    """The update step of each record that was sent to its vault's Update Key (one result per vault, each with its keys)."""
    for rec, outcome in _outcomes(records, results):
        if outcome is None:
            continue
        if outcome.get('failed'):
            fail(rec, 'update', outcome.get('msg'), fields=outcome.get('changes'),
                 outcome_unknown=bool(outcome.get('outcome_unknown')),
                 **dict(vault_identity=outcome['vault_identity']) if outcome.get('vault_identity') else {})
        else:
            note(rec, 'update', changed=True, check_mode=bool(check_mode), fields=outcome.get('changes'))
    return records


def changes_text(fields):
    """{field: [before, after]} as one line: 'enabled true -> false; tags set owner=b'."""
    parts = []
    for field in ATTRIBUTES:
        if field not in (fields or {}):
            continue
        before, after = fields[field]
        if field == 'release_policy':
            parts.append('release policy %s' % release_policy.differences(before, after))
        elif field == 'tags':
            before, after = dict(before or {}), dict(after or {})
            added = ['%s=%s' % (k, after[k]) for k in sorted(after) if before.get(k) != after[k]]
            removed = [k for k in sorted(before) if k not in after]
            text = ', '.join((['set ' + ', '.join(added)] if added else []) + (['removed ' + ', '.join(removed)] if removed else []))
            parts.append('tags %s' % text)
        else:
            parts.append('%s %s -> %s' % (field, _show(before), _show(after)))
    return '; '.join(parts)


def _show(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, list):
        return '[%s]' % ', '.join(value)
    return value if value else 'none'


# -- seal: the HSM keys every vault listed for them holds ---------------------------------------------------------------
def hold_shared_token_keys(records, check_mode=False):
    """Across HSM hosts: a host whose token another host sees too (the same serial and label, as the contact read them)
    seals an HSM key only when every record of its label on that token, whatever its host, may be sealed (seal_held),
    so that no host seals a key another host still has to wrap (a sealed key can never be wrapped again); and destroys
    it only when no record of its label on that token is still listed present (destroy_held)."""
    groups = {}
    for rec in records:
        if rec.get('token_users_outside'):  # hosts outside the run's --limit on this token list the key (the plan said)
            rec['seal_held'] = rec['destroy_held'] = True
        token = rec.get('token') or {}
        if token.get('serial') or token.get('label'):
            groups.setdefault((token.get('serial'), token.get('label'), rec['label']), []).append(rec)
    for group in groups.values():
        if len(hosts_of(group)) > 1 and seal_plan(group, check_mode).get(group[0]['label']) not in ('seal', 'earlier'):
            for rec in group:
                rec['seal_held'] = True
        if len(hosts_of(group)) > 1 and [r for r in group if not absent(r)]:
            for rec in group:  # a host retiring the key must not destroy it while another host on the token uses it
                rec['destroy_held'] = True
    return records


def seal_plan(records, check_mode=False):
    """{label: 'earlier' | 'seal' | 'not yet'} for the HSM keys of a host: sealed by an earlier run, to seal now (every
    record of the label is in its vault with a proven match; in check mode: would be), or not yet."""
    out = {}
    for rec in records:
        label = rec['label']
        if out.get(label) == 'earlier' or absent(rec):
            continue
        if rec.get('seal_held'):  # another host on this token still needs the key unsealed
            out[label] = 'not yet'
            continue
        hsm_step = step(rec, 'keygen') or step(rec, 'contact') or {}
        if hsm_step.get('sealed'):
            out[label] = 'earlier'
            continue
        r = row(rec)
        good = (r['result'] in IN_VAULT + ('would transfer', 'would rotate')) if check_mode else (
            r['result'] in IN_VAULT and r['match'])
        out[label] = 'seal' if good and out.get(label, 'seal') == 'seal' else 'not yet'
    return out


def seal_items(records, check_mode=False):
    """hsm_seal's keys option: each HSM key to seal now, with the identity the vaults hold."""
    plan = seal_plan(records, check_mode)
    items = []
    for label in [lbl for lbl, what in plan.items() if what == 'seal']:
        mine = [r for r in records if r['label'] == label]
        item = {'label': label, 'fingerprint': next((hsm_identity(r) for r in mine if hsm_identity(r)), '') or ''}
        if mine[0].get('id'):
            item['id'] = mine[0]['id']
        items.append(item)
    return items


def note_seals(records, results, check_mode=False, whole=None):
    """The seal step of every record of the host: sealed earlier, sealed now (or would be), not yet, or failed."""
    plan = seal_plan(records, check_mode)
    for rec in records:
        what = plan.get(rec['label'])
        result = results.get(rec['label'])
        if what == 'earlier':
            note(rec, 'seal', sealed=True, note='HSM key sealed (by an earlier run)')
        elif what != 'seal' and rec.get('token_users_outside'):
            note(rec, 'seal', sealed=False, note='HSM key not sealed: %s, outside this run\'s --limit, on the same token, '
                 'still lists it' % ', '.join(rec['token_users_outside']))
        elif what != 'seal':
            note(rec, 'seal', sealed=False, note=NOT_EVERY_VAULT)
        elif result is None and whole is None:
            note(rec, 'seal', sealed=False, note='HSM key not sealed: the seal step did not run')
        elif result is None or result.get('failed'):
            fail(rec, 'seal', whole if result is None else result.get('msg'), sealed=False)
        elif check_mode and result.get('action') == 'seal':
            note(rec, 'seal', sealed=False, note='HSM key would be sealed')
        else:
            note(rec, 'seal', sealed=bool(result.get('sealed')), note='HSM key sealed (CKA_EXTRACTABLE false)'
                 if result.get('action') == 'seal' else 'HSM key sealed (already)')
    return records


# -- destroy: the HSM keys of retired keys, with destroy_hsm_key, once their vaults confirmed the deletion --------------
def _deletion_confirmed(rec, check_mode):
    """Whether the vault no longer holds the key as its current version: deleted in this run (or would be, in check
    mode), or found by this run's read soft-deleted under its name as this HSM key (an earlier run deleted it). A name
    the vault holds nothing under, current or deleted, proves nothing (a wrong name or vault, or a purged key)."""
    if action(rec) == decisions.ABSENT:
        return _deleted_earlier(rec)
    done = step(rec, 'delete')
    return action(rec) == decisions.DELETE and done is not None and not done.get('failed') and (
        check_mode or not done.get('check_mode'))


def _deleted_earlier(rec):
    """Whether this run's read found the key's name soft-deleted in its vault, as the HSM key."""
    held = step(rec, 'read') or {}
    return bool(held.get('deleted')) and decisions.same_identity(held.get('deleted_fingerprint'), hsm_identity(rec))


def destroy_hosts(records, check_mode=False):
    """The HSM hosts with a key to destroy now (retired with destroy_hsm_key, its deletion confirmed): the transfer's
    finish step runs on them (and on every host when the keys are sealed after the transfer)."""
    return [host for host in hosts_of(records) if destroy_items(of_host(records, host), check_mode)]


def _destroyable(rec, check_mode):
    """Whether a record lets its HSM key go: retired with destroy_hsm_key, its deletion confirmed, its host not stopped,
    and no other host on its token still listing the key (destroy_held)."""
    if rec.get('stopped') or rec.get('destroy_held'):
        return False
    return absent(rec) and bool(rec.get('destroy_hsm_key')) and _deletion_confirmed(rec, check_mode)


def destroy_items(records, check_mode=False):
    """hsm_key_remove's keys for the HSM keys to destroy: every record of the label is retired with destroy_hsm_key and
    its vault confirmed the deletion; each with the identity the HSM held (the key is destroyed only if it still is)."""
    items = []
    for label in sorted(set(r['label'] for r in records)):
        mine = [r for r in records if r['label'] == label]
        if not all(_destroyable(r, check_mode) for r in mine):
            continue
        identity = next((hsm_identity(r) for r in mine if hsm_identity(r)), None)
        if not identity:
            continue  # the HSM holds no key under the label (or it could not be read): nothing to destroy
        item = {'label': label, 'fingerprint': identity}
        if mine[0].get('id'):
            item['id'] = mine[0]['id']
        items.append(item)
    return items


def note_destroys(records, results, check_mode=False):
    """The destroy step of each retired record with destroy_hsm_key, from the removal of its label ({label: result})."""
    for rec in records:
        if not (absent(rec) and rec.get('destroy_hsm_key')):
            continue
        result = results.get(rec['label'])
        if result is None:
            continue
        if result.get('failed'):
            fail(rec, 'destroy', result.get('msg'))
        elif result.get('action') == 'absent':
            note(rec, 'destroy', destroyed=False, note='the HSM holds no key labelled %s' % rec['label'])
        else:
            note(rec, 'destroy', destroyed=not check_mode, check_mode=bool(check_mode),
                 note='HSM key %s %s' % (rec['label'], 'would be destroyed' if check_mode else 'destroyed'))
    return records


# -- the import step: its vault work in order, and what it returns ------------------------------------------------------
def import_step(records, check_mode, vault):
    """The import step over the records (byok_vault_step step=import), the vault's part left to vault(kind, requests),
    which returns one result per request, requests per vault as the *_requests functions make them, and is called only
    when there are requests.  The kinds, in order, each made from the records as the kinds before left them: 'import',
    'delete' (the deletions and recoveries: state absent, or listed again), 'update' (the stated attributes, in place),
    'signature' (byok_verify_signature).  Each record gets what each part did for its key.  Returns {kind: results}."""
    done = {}

    def run(kind, requests):
        done[kind] = vault(kind, requests) if requests else []
        return done[kind]

    note_imports(records, run('import', import_requests(records, check_mode)))
    note_removals(records, run('delete', removal_requests(records)), check_mode)
    note_unchangeable(records)  # what the inventory states and the vault cannot change on a version: reported
    note_updates(records, run('update', update_requests(records)), check_mode)
    note_proofs(records, run('signature', [] if check_mode else proof_requests(records)))
    hold_shared_token_keys(records, check_mode)  # a key another host on its token needs: kept unsealed, not destroyed
    return done


class _VaultWork(Exception):
    """The import step has vault work: the module must run."""


def import_without_vault(records, check_mode):
    """The result of the import step over records that give the vault nothing to do (nothing to import, delete,
    recover, update or sign), as byok_vault_step would return it, computed without a vault: the action plugin of
    byok_vault_step returns it instead of starting the module.  None when the vault has work."""
    records = copies(records)

    def vault(kind, requests):
        raise _VaultWork(kind)

    try:
        import_step(records, check_mode, vault)
    except _VaultWork:
        return None
    return import_result(records, [], check_mode)


def import_result(records, results, check_mode, diff=None):
    """The import step's result: its records, whether a vault changed (results: each vault's results of every kind),
    the diff, and the HSM hosts the finish step must destroy keys on."""
    return dict(changed=any(r.get('changed') for r in results), records=records,
                diff=diff or {'before': {}, 'after': {}}, destroy_hosts=destroy_hosts(records, check_mode))


# -- a host that stopped, and the records of each host -------------------------------------------------------------------
def _records_in(value, host):
    """The records of host a registered step result (or a list of records) holds, or None."""
    found = value.get('records') if isinstance(value, Mapping) else value
    if isinstance(found, (str, bytes)) or not isinstance(found, Sequence):
        return None
    mine = [r for r in found if isinstance(r, Mapping) and r.get('host') == host]
    return mine if mine or not found else None


def latest(host_vars, host=None):
    """A host's records as its newest step left them (the rescue's fact, the seal, the import, the HSM step, the KEK, the
    contact, the vault read, the plan), from the host's variables; [] when the host has none (it was not planned)."""
    host = host or host_vars.get('inventory_hostname')
    for name in REGISTERS:
        try:
            value = host_vars.get(name)
        except Exception:  # pylint: disable=broad-except  # a variable that does not resolve is no record
            value = None
        if not value:
            continue
        found = _records_in(value, host)
        if found is not None:
            return copies(found)
    return []


def stopped(records, message, failed_step=None, task=None):
    """The records of a host that stopped: the reason on each, and the step the failed task was (when its module gave no
    records of its own) noted failed for each record it was for; an import that failed as a whole leaves the outcome of
    each key it was to import unknown."""
    message = message or 'failed'
    destroying = set(i['label'] for i in destroy_items(records)) if failed_step == 'finish' else set()
    for rec in records:
        rec['stopped'] = message
        rec['stopped_at'] = task or 'a task'
        if failed_step == 'import':
            if action(rec) == decisions.IMPORT and ok(rec, 'wrap') and step(rec, 'import') is None:
                fail(rec, 'import', 'the import step failed as a whole (%s); some keys may have landed: re-run to confirm'
                     % message, outcome_unknown=True)
        elif failed_step == 'read' and step(rec, 'read') is None:
            fail(rec, 'read', 'vault %s could not be read: %s' % (rec['vault'], user_terms.in_vault_terms(message, rec['vault'])))
        elif failed_step == 'kek' and action(rec) == decisions.IMPORT and step(rec, 'kek') is None:
            fail(rec, 'kek', 'the KEK of vault %s could not be had: %s' % (rec['vault'], message))
        elif failed_step in ('contact', 'transfer') and step(rec, 'contact' if failed_step == 'contact' else 'keygen') is None:
            fail(rec, 'contact' if failed_step == 'contact' else 'keygen', message)
        elif failed_step == 'finish' and step(rec, 'destroy') is None and rec['label'] in destroying:
            fail(rec, 'destroy', message)
        elif failed_step == 'finish' and step(rec, 'seal') is None and seal_plan([rec]).get(rec['label']) == 'seal':
            fail(rec, 'seal', message, sealed=False)
    return records


def step_of(task):
    """The step a failed task of the transfer role was (its module's step option), or None."""
    args = task.get('args') if isinstance(task, Mapping) else None
    name = args.get('step') if isinstance(args, Mapping) else None
    return name if name in VAULT_STEPS + HSM_STEPS else None


def collect(hosts_vars):
    """Every record of the hosts, each host's as its newest step left them."""
    out = []
    for hv in hosts_vars or []:
        out.extend(latest(hv))
    return out


# -- the row: what happened to the key, derived from its steps ----------------------------------------------------------
def _version(kid):
    return (kid or '').rstrip('/').rsplit('/', 1)[-1] if kid else '-'


def _hsm_failure(rec):
    for name in ('keygen', 'contact'):
        s = step(rec, name)
        if s is not None and s.get('failed'):
            return s.get('msg') or 'failed'
    return None


def row(rec):
    """The report row of a record (report.ROW_FIELDS), derived from what each step did for the key."""
    stop = in_inventory_terms(rec.get('stopped')) if rec.get('stopped') else None
    hsm_step = step(rec, 'keygen') or step(rec, 'contact') or {}
    identity, source = vault_identity(rec)
    held = step(rec, 'read') or {}
    r = report.new_row(dict(rec, label=rec.get('label') or rec.get('name'),
                            key_size=hsm_step.get('key_size') or rec.get('key_size'), curve=hsm_step.get('curve') or rec.get('curve'),
                            hsm_fingerprint=hsm_identity(rec), vault_fingerprint=identity,
                            vault_kid=held.get('kid') if not held.get('failed') else None),
                       rec.get('host'), token=dict((f, (rec.get('token') or {}).get(f)) for f in TOKEN_FIELDS),
                       identity_source=source)
    kek = step(rec, 'kek')
    if kek and not kek.get('failed'):
        r.update(kek_kid=kek.get('kid'), kek_fingerprint=kek.get('fingerprint'))
    wrap = step(rec, 'wrap')
    if wrap and not wrap.get('failed'):
        # how the HSM wrapped it: the method asked for, and the mechanisms its known-answer tests proved and it used
        r.update(wrap_method=wrap.get('wrap_method'), wrap_mechanism=wrap.get('wrap_mechanism'))
    _outcome(rec, r, stop)
    r['signature'] = report.signature(r, rec.get('verify_signature'), step(rec, 'import') or step(rec, 'proof'))
    if stop and r['result'] in report.DONE and stop not in r['message']:
        # the key's own steps went through; the step that stopped the host came after (or was about other keys)
        r['message'] = '; '.join(m for m in (r['message'], 'this host then stopped: %s' % stop) if m)
    _seal(rec, r)
    made = step(rec, 'keygen') or {}
    if made.get('authenticated') is False and r['result'] in report.DONE:
        _add(r, UNAUTHENTICATED)
    return r


def _outcome(rec, r, stop):
    """Set the row's result and message from the steps."""
    read = step(rec, 'read')
    stopped_why = stop or STOPPED_UNSEEN
    from_bundle = _bundle_failure(rec)
    if from_bundle and not in_vault(rec):
        r.update(result='failed', message=in_inventory_terms(from_bundle))
        return
    if read is None:
        r.update(result='not done', message='the vault read did not run: %s' % stopped_why)
        return
    if read.get('failed'):
        r.update(result='failed', message=in_inventory_terms(read.get('msg')))
        return
    decided = step(rec, 'decide')
    hsm_failure = _hsm_failure(rec)
    if decided is None:
        if in_vault(rec):
            # a key the vault holds is never failed because the HSM could not be asked: its vault version stays
            why = 'the HSM step failed: %s' % in_inventory_terms(hsm_failure) if hsm_failure else (
                _without_not_done(from_bundle) if from_bundle else stopped_why)
            r.update(proof=None, match=None, result='not done', message='the vault holds version %s; not compared with the '
                     'HSM key: %s' % (_version(r.get('kid')), why))
        elif hsm_failure:
            r.update(result='failed', message='the HSM step failed: %s' % in_inventory_terms(hsm_failure))
        else:
            r.update(result='not done', message='not wrapped or imported: %s' % stopped_why)
        return
    if decided['action'] == decisions.CONFLICT:
        held = step(rec, 'read') or {}
        kept = decided.get('refused') == 'replace'
        if not in_vault(rec) and held.get('deleted') and not absent(rec) and not kept:
            # force cannot help: Key Vault refuses a new key of the name while it holds one soft-deleted
            r.update(result='failed', message=_deleted_conflict(rec))
            return
        done = 'nothing was imported' if _from_bundle(rec) else 'nothing was wrapped or imported'
        if replaced_identity(rec):
            hsm_step = step(rec, 'keygen') or step(rec, 'contact') or {}
            where = 'current version' if in_vault(rec) else 'soft-deleted key'
            r.update(result='failed', message="HSM key %s (%s) differs from byok_keys entry %s (%s)%s; %s. %s"
                     % (rec['label'], replaced_identity(rec), rec['name'], hsm_step.get('reason') or 'it differs',
                        ': it is the key of the vault\'s %s, and replacing it (byok_regenerate: full_idempotence) would '
                        'destroy the only HSM copy of that vault key, so it was kept' % where
                        if kept else ', and byok_regenerate would replace it, but the vault key %s is not known to be '
                        'that key' % rec['name'], done,
                        'To move to a new HSM key, give the entry a new label (with force: true: a rotation); to keep '
                        'this one, make the entry say what the key is' if kept else
                        'Set force: true on byok_keys entry %s to replace the HSM key and import it as a %s, or make the '
                        'entry say what the HSM key is' % (rec['name'], decisions.rotation_text(rec['name']))))
        elif decided.get('refused') == 'rollback':
            r.update(result='failed', message='%s; %s' % (decided['reason'], done))
        elif not decisions.known(hsm_identity(rec)) and absent(rec):
            r.update(result='failed', message="vault key %s is not deleted: the HSM holds no key labelled %s, so nothing "
                     "shows that the vault key is the HSM key the entry retires. Give byok_keys entry %s the label of the "
                     "HSM key the vault holds, or, if you are sure, delete the vault key yourself (az keyvault key delete)"
                     % (rec['name'], rec['label'], rec['name']))
        elif not decisions.known(hsm_identity(rec)) and not _from_bundle(rec):
            r.update(result='failed', message="vault key %s exists and the HSM holds no key labelled %s; nothing was generated "
                     "or imported. Give byok_keys entry %s the label of the HSM key the vault holds, or set force: true to "
                     "generate a new HSM key and import it as a %s"
                     % (rec['name'], rec['label'], rec['name'], decisions.rotation_text(rec['name'])))
        elif not decisions.known(vault_identity(rec)[0]) and ki.identified_by_kcv(rec.get('key_type')) and not held.get('disabled'):
            r.update(result='failed', message="vault key %s cannot be compared with HSM key %s: %s (the vault computes no KCV "
                     "of an AES key that may not encrypt, and its byok-kcv tag holds no identity: a 3-byte KCV an earlier "
                     "release wrote?); %s. Give byok_keys entry %s encrypt in key_ops for one run, so that the vault proves "
                     "the key and the tag is written again, or set force: true to import the HSM key as a %s"
                     % (rec['name'], rec['label'], decided['reason'], done, rec['name'], decisions.rotation_text(rec['name'])))
        elif not decisions.known(vault_identity(rec)[0]):
            r.update(result='failed', message="vault key %s cannot be compared with HSM key %s: %s (a disabled version without "
                     "the collection's identity tag shows no key material); %s. Enable the vault key so that it can be read, "
                     "or set force: true on byok_keys entry %s to import the HSM key as a %s"
                     % (rec['name'], rec['label'], decided['reason'], done, rec['name'], decisions.rotation_text(rec['name'])))
        else:
            r.update(result='failed', message="vault key %s is not HSM key %s: %s; %s. Set force: true on byok_keys entry %s "
                     "to import the HSM key as a %s (a rotation), or use another name"
                     % (rec['name'], rec['label'], decided['reason'], done, rec['name'], decisions.rotation_text(rec['name'])))
        return
    if decided['action'] == decisions.KEEP and not hsm_failure:
        _kept(rec, r, stop)
        return
    if decided['action'] in (decisions.DELETE, decisions.ABSENT, decisions.RECOVER):
        _removed(rec, r, decided, stop)
        return
    outcome = step(rec, 'import')
    kek, wrap = step(rec, 'kek'), step(rec, 'wrap')
    if outcome is None:
        if kek is not None and kek.get('failed'):
            r.update(result='failed', message=in_inventory_terms(kek.get('msg')))
        elif hsm_failure:
            r.update(result='failed', message='the HSM step failed: %s' % in_inventory_terms(hsm_failure))
        elif wrap is not None and wrap.get('failed'):
            r.update(result='failed', message='the wrap failed: %s' % in_inventory_terms(wrap.get('msg')))
        elif kek is None and not stop:
            r.update(result='not done', message='no KEK of vault %s was fetched for it (the HSM contact found nothing to move '
                     'for it); run again' % rec['vault'])
        else:
            r.update(result='not done', message='not imported: the import step did not run%s' % (' (%s)' % stop if stop else ''))
        return
    if outcome.get('outcome_unknown'):
        r.update(result='unknown', message=outcome.get('msg') or '')
        return
    if outcome.get('failed'):
        r.update(result='failed', message=outcome.get('msg') or '')
        if outcome.get('kid'):
            r['kid'] = outcome['kid']  # the version the failed import made, disabled: the message says why
        return
    if outcome.get('changed') and outcome.get('kid') is None:
        # a planned rotation (force: true over another vault key) is not a first transfer: say so
        rotation = decided.get('rotation')
        r.update(result='would rotate' if rotation else 'would transfer', message=_rotation_message(rec) if rotation else '')
        if replaced_identity(rec):
            _add(r, 'HSM key %s would be replaced, destroying the key it holds (%s): byok_regenerate full_idempotence'
                 % (rec['label'], replaced_identity(rec)))
        return
    r.update(result='transferred' if outcome.get('changed') else 'in place', kid=outcome.get('kid'),
             vault_fingerprint=outcome.get('fingerprint'), attempts=outcome.get('attempts'))
    report.set_proof(r, outcome.get('identity_source'))
    if outcome.get('changed') and decided.get('rotation'):
        r['message'] = _rotation_message(rec)
    if replaced_identity(rec):
        _add(r, 'HSM key %s replaced: the key it held before (%s) was destroyed (byok_regenerate: full_idempotence)'
             % (rec['label'], replaced_identity(rec)))


def _deleted_conflict(rec):
    """Why a key listed as present is not recovered from the vault's soft-deleted keys, and what to do."""
    hsm_key = hsm_identity(rec)
    what = ('the HSM holds no key labelled %s (destroyed?)' % rec['label'] if not hsm_key else
            'its identity (%s) is not HSM key %s (%s)' % ((step(rec, 'read') or {}).get('deleted_fingerprint') or 'unknown',
                                                          rec['label'], hsm_key))
    return ('vault %s holds key %s soft-deleted, and %s, so it is not recovered; Key Vault refuses a new key of that name '
            'until the deleted one is recovered or purged (force cannot change that), and the collection never purges. '
            'Recover it yourself (az keyvault key recover) to use the vault\'s copy, or purge it (az keyvault key purge, '
            'after its retention if the vault has purge protection) and run again to import the HSM key, or use another '
            'name' % (rec['vault'], rec['name'], what))


def _rotation_message(rec):
    """A new version of the key: why (force, or rotate_after with the version's age) and from which HSM key."""
    text = decisions.rotation_text(rec['name'])
    if rec.get('rotating'):
        text += ' from HSM key %s (rotate_after %s)' % (rec['label'], (step(rec, 'read') or {}).get('rotation_reason'))
    return text


def _kept(rec, r, stop):
    """A key in place: its attributes as the inventory states them (updated, would be, or the update failed), and a key
    disabled in the vault that the inventory does not say to disable (drift, left as it is)."""
    r['result'] = 'in place'
    held = step(rec, 'read') or {}
    update = step(rec, 'update')
    changes = attribute_changes(rec)
    if update is not None and update.get('outcome_unknown'):
        r.update(result='unknown', message='the vault holds the key; its answer to the update of its attributes (%s) was lost, '
                 'so they may or may not be applied: run again to confirm (%s)'
                 % (changes_text(update.get('fields') or changes), in_inventory_terms(update.get('msg'))))
    elif update is not None and update.get('failed') and update.get('vault_identity'):
        # enabled for a moment, the version showed another key's material: nothing of the inventory was written to it
        r.update(result='failed', message='none of its attributes was updated (%s): %s'
                 % (changes_text(update.get('fields') or changes), in_inventory_terms(update.get('msg'))))
    elif update is not None and update.get('failed'):
        r.update(result='failed', message='the vault holds the key, but its attributes could not be updated (%s): %s'
                 % (changes_text(update.get('fields') or changes), in_inventory_terms(update.get('msg'))))
    elif update is not None:
        r.update(result='would update' if update.get('check_mode') else 'updated', message=changes_text(update.get('fields')))
    elif changes:
        r.update(result='not done', message='its attributes differ from the inventory (%s) and were not updated%s'
                 % (changes_text(changes), ': this host stopped' if stop else ''))
    if held.get('enabled') is False and 'enabled' not in (rec.get('stated') or ()):
        _add(r, 'disabled in the vault, which the inventory does not state (enabled not set): left disabled')
    if r['result'] == 'in place' and r.get('proof') == report.PROOF_TAG and not _tag_only_stated(rec, held):
        # the vault showed nothing of the key: a tag anyone allowed to tag a key can write (its value is in every
        # manifest) is all that says it is the HSM key, and the inventory does not say why nothing more can be shown
        before = r.get('message')
        r.update(result='not done', message=TAG_ONLY % (rec['name'], rec['name']))
        if before:
            _add(r, before)


#: a key in place that only its identity tag says is the HSM key, where the inventory does not explain why
TAG_ONLY = ("cannot be compared: only the collection's identity tag says the current version of vault key %s is the HSM "
            "key (a disabled version shows no key material), and a tag proves nothing: anyone allowed to tag a key can "
            "write it; nothing was changed. State enabled: true on byok_keys entry %s to let the run enable it and prove "
            "it, enabled: false to keep it disabled (it stays unverified), or force: true to import the HSM key as a new "
            "version")


def _tag_only_stated(rec, held):
    """Whether the inventory itself says why the vault cannot show the key: it states the key disabled, or an AES key
    that may neither encrypt nor wrap (the vault computes no KCV of it, nor a key wrap the HSM step can compare)."""
    if held.get('disabled'):
        return 'enabled' in (rec.get('stated') or ()) and rec.get('enabled') is False
    ops = rec.get('key_ops') or ()
    # stage 3 of the staged flow has no HSM to compute the key wrap with, and an HSM may refuse AES-ECB with the key
    # (its policy, not the vault's doing): an AES key that may not encrypt then stays unverified
    made = step(rec, 'keygen') or step(rec, 'contact') or {}
    hsm_cannot = held.get('wrap_check') is not None and made.get('vault_wrap', False) is None
    return ki.identified_by_kcv(rec.get('key_type')) and 'encrypt' not in ops and (
        'wrapKey' not in ops or _from_bundle(rec) or hsm_cannot)


def _removed(rec, r, decided, stop):
    """A key listed as absent (deleted, would be, or absent already), or listed again and recovered."""
    _removed_from_vault(rec, r, decided, stop)
    if absent(rec) and rec.get('destroy_hsm_key') and r['result'] != 'failed':
        _destroyed(rec, r)


def _destroyed(rec, r):
    """What destroy_hsm_key did to the HSM key of a retired key, on its row (a failed destruction fails the row)."""
    done = step(rec, 'destroy')
    if done is None and not hsm_identity(rec) and ok(rec, 'contact'):
        _add(r, 'the HSM holds no key labelled %s' % rec['label'])
    elif done is None and action(rec) == decisions.ABSENT and not _deleted_earlier(rec):
        _add(r, 'HSM key not destroyed: the vault holds no key named %s, current or soft-deleted, that is this HSM key, so '
                'nothing shows that no vault key needs it (a wrong name or vault, or a purged key); once you know no vault '
                'uses it, remove it with the playbook hsm_keys (docs/hsm-keys.md)' % rec['name'])
    elif done is None:
        _add(r, 'HSM key not destroyed: its vault deletion was not confirmed in this run, or another entry of its label is '
                'not retired with destroy_hsm_key')
    elif done.get('failed'):
        r.update(result='failed', message='%s; the HSM key could not be destroyed: %s'
                 % (r.get('message') or '', in_inventory_terms(done.get('msg'))))
    else:
        _add(r, done.get('note'))


def _removed_from_vault(rec, r, decided, stop):
    if decided['action'] == decisions.ABSENT:
        r.update(result='absent', kid=None, vault_fingerprint=None, proof=None, match=None,
                 message='the vault holds no current version of %s' % rec['name'])
        return
    name = 'delete' if decided['action'] == decisions.DELETE else 'recover'
    done = step(rec, name)
    kept = '' if rec.get('destroy_hsm_key') else '; the HSM key is kept'
    verb = {'delete': ('deleted', 'would delete', 'soft delete, recoverable until it is purged%s' % kept),
            'recover': ('recovered', 'would recover', 'recovered from the soft-deleted keys (not imported again)')}[name]
    if done is None:
        r.update(result='not done', message='not %s: %s' % (verb[0], stop or 'the vault step did not run'))
    elif done.get('failed'):
        r.update(result='failed', message='%s could not be %s: %s' % (rec['name'], verb[0], in_inventory_terms(done.get('msg'))))
    elif done.get('gone'):
        # between the read and the deletion, someone else deleted it: absent, but not by this run
        r.update(result='absent', message='the vault no longer held %s when this run came to delete it (deleted meanwhile by '
                 'someone else)%s' % (rec['name'], kept))
    else:
        r.update(result=verb[1] if done.get('check_mode') else verb[0], message=verb[2])
        if done.get('answer_lost'):
            _add(r, "the vault's answer to the deletion was lost; it holds the version this run deleted soft-deleted")
        if name == 'recover' and done.get('kid'):
            r['kid'] = done['kid']
        if name == 'recover' and (done.get('held') or {}).get('fingerprint') and not ki.identified_by_kcv(rec.get('key_type')):
            # the recovery's answer holds the version's public key: its fingerprint is the proof of what came back
            r['vault_fingerprint'] = done['held']['fingerprint']
            report.set_proof(r, SOURCE_JWK)
        if name == 'recover':
            _recovered_attributes(rec, r, stop)
        if name == 'delete' and (step(rec, 'read') or {}).get('disabled'):
            _add(r, "its version was disabled: what identified it as the HSM key was only the collection's own "
                    "identity tag (a disabled version's key material cannot be read)")


def _recovered_attributes(rec, r, stop):
    """A recovered version's stated attributes, kept on it in the same run (updated, failed, or not done)."""
    update = step(rec, 'update')
    changes = attribute_changes(rec)
    if update is not None and update.get('failed'):
        r.update(result='failed', message='%s; but its attributes could not be updated (%s): %s'
                 % (r['message'], changes_text(update.get('fields') or changes), in_inventory_terms(update.get('msg'))))
    elif update is not None:
        _add(r, 'its attributes updated: %s' % changes_text(update.get('fields')))
    elif changes:
        r.update(result='not done', message='%s; its attributes differ from the inventory (%s) and were not updated%s'
                 % (r['message'], changes_text(changes), ': this host stopped' if stop else ''))


def _add(r, text):
    r['message'] = '%s; %s' % (r['message'], text) if r.get('message') else text


def _seal(rec, r):
    """What the seal step did, on the row: hsm_sealed and a note; a key the seal failed for is a failed row."""
    s = step(rec, 'seal')
    if s is None:
        return
    r['hsm_sealed'] = bool(s.get('sealed'))
    if s.get('failed'):
        if r['result'] not in ('failed', 'unknown'):
            before = r.get('message')
            r['result'] = 'failed'
            r['message'] = ('the vault holds the key, but the HSM key was not sealed: %s; run again to seal it'
                            % in_inventory_terms(s.get('msg')))
            if before:
                r['message'] = '%s; %s' % (before, r['message'])
        return
    text = s.get('note')
    if text and (r['result'] in IN_VAULT or text != NOT_EVERY_VAULT):
        _add(r, text)


def rows(records):
    """The report rows of records."""
    return [row(rec) for rec in records or [] if isinstance(rec, Mapping)]


# -- the report of a run ------------------------------------------------------------------------------------------------
def _get(host_vars, name):
    try:
        return host_vars.get(name)
    except Exception:  # pylint: disable=broad-except  # a variable that does not resolve is not there
        return None


def report_of(hosts_vars, outside_rows=None):
    """The report of a run from the variables of the HSM hosts it planned: {'rows', 'silent', 'stopped', 'started',
    'failed'}.  Each key's row is derived from its record as the host's newest step left it (a host holding
    byok_transfer_report rows, the staged import, gives those); silent are the hosts with neither (they failed before
    the plan); stopped maps each host that stopped to 'TASK: why'; failed says whether the run must fail."""
    out_rows, silent, stopped_hosts, started = [], [], {}, []
    for hv in hosts_vars or []:
        host = _get(hv, 'inventory_hostname')
        given = _get(hv, 'byok_transfer_report')
        plan = _get(hv, 'byok_plan')
        if isinstance(plan, Mapping) and plan.get('started'):
            started.append(plan['started'])
        if _get(hv, '_byok_run_started'):
            started.append(_get(hv, '_byok_run_started'))
        if isinstance(given, list):
            out_rows.extend(given)
            continue
        if not isinstance(plan, Mapping) or 'records' not in plan:
            silent.append(host)
            continue
        records = latest(hv, host)
        out_rows.extend(rows(records))
        for rec in records:
            if rec.get('stopped'):
                stopped_hosts.setdefault(host, '%s: %s' % (rec.get('stopped_at') or 'a task', in_inventory_terms(rec['stopped'])))
    out_rows.extend(outside_rows or [])
    must_fail = bool(report.not_done(out_rows) or report.unproven(out_rows) or silent or stopped_hosts)
    imported = next((_get(hv, 'byok_imported') for hv in hosts_vars or [] if isinstance(_get(hv, 'byok_imported'), Mapping)), {})
    return {'rows': out_rows, 'silent': silent, 'stopped': stopped_hosts, 'started': min(started) if started else None,
            'failed': must_fail, 'keks': report.kek_lines(imported.get('keks_deleted'))}
