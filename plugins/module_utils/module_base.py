# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of the collection shares: one-line failures and the per-key loop.

HsmModule (pkcs11_token.py) and KeyVaultModule (keyvault.py) build on ByokModule; neither this file
nor its users import both sides.  A module's main() is run(): its argument spec, one backend
function (which runs each key through run_keys(), a ByokError becoming that key's one-line message) and the exit with its
result: the module fails when any key failed (naming each), or exits with every key's result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.byok.keyvault.plugins.module_utils import host_lock
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError
from ansible_collections.byok.keyvault.plugins.module_utils.progress import NoProgress


class ByokModule(object):
    """AnsibleModule with the collection's conventions."""

    @classmethod
    def run(cls, request, argument_spec, **kwargs):
        """A module's main(): the module built with its argument spec (and AnsibleModule's other keywords), its one backend
        call request(module), and the exit with the result."""
        module = cls(argument_spec=argument_spec, **kwargs)
        module.exit(request(module))

    def __init__(self, argument_spec, common=None, requirements=(), **kwargs):
        """common: the options of one side (PKCS#11 or Azure), merged under the module's own; requirements: (library
        name, import traceback or None) pairs, a missing library failing the Ansible way."""
        spec = dict(common or {})
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        #: how far a long step has got, for the progress callback (module_utils/progress.py); a step sets its own
        self.progress = NoProgress()
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        for library, import_error in requirements:
            if import_error:
                self.module.fail_json(msg=missing_required_lib(library), exception=import_error)
        if 'lock_timeout' in spec:
            self.guard(host_lock.set_timeout, self.params.get('lock_timeout'))

    def fail(self, exc, **result):
        """Fail with the one-line message of a ByokError (or any message)."""
        if isinstance(exc, ByokError):
            result = dict(self.failure_details(exc), **result)
        self.module.fail_json(msg=str(exc), **self._with_invocation(result))

    def _with_invocation(self, result):
        """result with the task's invocation, the key records counted rather than repeated: the records a step takes
        are the ones it returns (RV(records)), and every byte of a result is copied, masked and templated again by Ansible
        for each host and callback (at 1000 keys, the records in the invocation were 40 % of a step's result)."""
        if 'invocation' in result or not isinstance(self.params.get('records'), list):
            return result
        args = dict(self.params, records='%d key records (returned in records)' % len(self.params['records']))
        return dict(result, invocation={'module_args': args})

    def guard(self, func, *args, **kwargs):
        """func(*args, **kwargs), failing the module with its message when it raises a ByokError."""
        try:
            return func(*args, **kwargs)
        except ByokError as exc:
            self.fail(exc)

    def failure_details(self, exc):
        """Extra result fields of a failure (subclasses add status codes)."""
        return {}

    def run_keys(self, items, func, key_field):
        """[func(item)] for each item; an item whose func raises ByokError gets {key_field, changed, failed, msg} instead."""
        results = []
        for item in items:
            try:
                results.append(func(item))
            except ByokError as exc:
                results.append(failed_result(item, key_field, exc))
            self.progress.tick()
        return results

    def outcome(self, results, single, **extra):
        """The module's result for its keys' results (single: the one key's fields at top level): failed, with a message
        naming every key that failed (the first one's, when single), or every key's result.  exit() ends with it."""
        failed = [r for r in results if r.get('failed')]
        changed = any(r.get('changed') for r in results)
        if single:
            if failed:
                details = dict((k, v) for k, v in failed[0].items() if k not in ('msg', 'failed', 'changed', 'name', 'label'))
                details.update(extra)
                return dict(details, failed=True, msg=failed[0]['msg'], changed=False)
            out = dict(results[0])
            out.update(extra)
            return out
        if failed:
            return dict(extra, failed=True, changed=changed, keys=results, msg='%d of %d keys failed: %s' % (
                len(failed), len(results), ' | '.join('%s: %s' % (r.get('name') or r.get('label'), r['msg']) for r in failed)))
        return dict(extra, changed=changed, keys=results)

    def exit(self, result):
        """Exit with a module result: fail() with its msg when it failed, else exit_json."""
        if result.get('failed'):
            result = dict(result)
            result.pop('failed')
            self.fail(result.pop('msg'), **result)
        self.module.exit_json(**self._with_invocation(result))

    def finish(self, results, single, **extra):
        """Exit with the results (single: the one key's fields at top level), or fail naming every key that failed."""
        self.exit(self.outcome(results, single, **extra))


def repeated(values):
    """The values that occur more than once, sorted (for 'X lists ... twice' refusals)."""
    values = list(values)
    return sorted(set(v for v in values if values.count(v) > 1))


def failed_result(item, key_field, exc):
    """The result of one key that failed."""
    result = {key_field: item.get(key_field) if isinstance(item, dict) else item, 'changed': False, 'failed': True,
              'msg': str(exc)}
    for attr, field in (('status', 'status_code'), ('code', 'error_code')):
        if getattr(exc, attr, None) is not None:
            result[field] = getattr(exc, attr)
    if getattr(exc, 'outcome_unknown', False):
        result['outcome_unknown'] = True
    if getattr(exc, 'kid', None):
        result['kid'] = exc.kid  # a version the failed step made (and disabled): the record keeps it
    if getattr(exc, 'identity', None):
        result['vault_identity'] = exc.identity  # what the vault showed the version holds (not the HSM key)
    return result
