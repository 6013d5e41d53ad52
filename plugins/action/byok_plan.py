# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

"""byok_plan: check the inventory of every HSM host of a play against the role's argument spec and plan the transfer.

Runs on the controller, in-process, before any vault call, KEK, HSM login or file write.  It reads only the
variables the role declares (and flags undeclared byok_* variables), never returns a secret, and fails with every
problem of the fleet, one line each.
"""

import datetime
import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.parsing.yaml.loader import AnsibleLoader
from ansible_collections.byok.keyvault.plugins.plugin_utils.action import ByokAction
from ansible_collections.byok.keyvault.plugins.action.byok_manifest import manifest_dir

from ansible_collections.byok.keyvault.plugins.module_utils import fleet_plan
from ansible_collections.byok.keyvault.plugins.module_utils import inventory
from ansible_collections.byok.keyvault.plugins.module_utils import owned_dir
from ansible_collections.byok.keyvault.plugins.module_utils import record

ARGUMENT_SPEC = dict(
    hosts=dict(type='list', elements='str'),
    outside_hosts=dict(type='list', elements='str', default=[]),
    role=dict(type='str', default='transfer'),
    entry_point=dict(type='str', default='main'),
    vaults_required=dict(type='bool', default=True),
    flow=dict(type='str', default='transfer', choices=['transfer', 'staged']),
)
ROLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'roles')
#: byok_* variables that are declared elsewhere than the role being planned (other roles, outputs of the roles)
OTHER_DECLARED = ('byok_manifest_dir', 'byok_report_hosts', 'byok_bundle_dir', 'byok_expected_kek_fingerprints',
                  'byok_expected_bundle_digests', 'byok_airgap_unauthenticated', 'byok_transfer_report',
                  # what the audit (playbook verify) registers
                  'byok_audit') + record.REGISTERS  # the key records the steps register (a later serial batch sees them)
DEBUG_OPT_IN = 'byok_allow_secrets_in_debug_log'
#: what the plan reads of an HSM host outside the run: its keys, their vaults and its token
OUTSIDE_VARIABLES = ('byok_keys', 'byok_vaults', 'byok_token_serial', 'byok_token_label')


def _looks_like_ours(name):
    """A variable name that is, or nearly is, in the byok_ namespace (any case, - for _)."""
    return isinstance(name, str) and name.lower().replace('-', '_').startswith('byok')


def load_spec(role, entry_point):
    """The options of a role entry point, from the role's meta/argument_specs.yml (the one declaration of its variables)."""
    path = os.path.join(ROLES_DIR, role, 'meta', 'argument_specs.yml')
    with open(path, 'rb') as f:
        data = AnsibleLoader(f.read().decode('utf-8')).get_single_data()
    return inventory_options(data['argument_specs'][entry_point].get('options') or {})


def inventory_options(options):
    """Argument-spec options as plain dicts (YAML objects and all), for the pure checker."""
    out = {}
    for name, option in options.items():
        plain = dict(option)
        if isinstance(plain.get('options'), dict):
            plain['options'] = inventory_options(plain['options'])
        out[name] = plain
    return out


def _manifest_dirs(hostvars, hosts):
    """[(host, its byok_manifest_dir or None)] of the hosts hostvars knows (the controller first)."""
    out = []
    for host in hosts:
        try:
            out.append((host, hostvars[host].get('byok_manifest_dir')))
        except (KeyError, AnsibleError):
            continue
    return out


def _shown_dir(value):
    if value is None:
        return 'unset (the default)'
    return "'%s'" % value if isinstance(value, str) and '\n' not in value else inventory.show(value)


def _first_line(text):
    return ' '.join(to_native(text).split())[:300]


class ActionModule(ByokAction):

    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def act(self, args, task_vars, result):
        hosts = args['hosts'] if args['hosts'] is not None else list(task_vars.get('ansible_play_hosts_all') or [])
        spec = load_spec(args['role'], args['entry_point'])
        if not args['vaults_required'] and 'byok_vaults' in spec:
            spec['byok_vaults'] = dict(spec['byok_vaults'], required=False, default={})
        hostvars = task_vars.get('hostvars') or {}
        values, problems = {}, []
        for host in hosts:
            values[host] = self._declared(hostvars, host, spec, problems)
        # the HSM hosts this run leaves out: read for what a key of this run must not take from them, their problems unsaid
        # (only the variables that say so: their secrets and lookups are not this run's to resolve)
        shared = dict((name, spec[name]) for name in OUTSIDE_VARIABLES if name in spec)
        outside = dict((h, self._declared(hostvars, h, shared, [])) for h in args.get('outside_hosts') or [] if h not in values)
        plan, found = fleet_plan.plan_fleet(spec, values, vaults_required=args['vaults_required'], outside=outside)
        problems.extend(found)
        problems.extend(fleet_plan.flow_problems(values, args.get('flow') or 'transfer'))
        problems.extend(self._debug_problems(values))
        if args['vaults_required']:  # the connected runs (transfer, staged fetch and import); the report writes there
            problems.extend(self._manifest_problems(task_vars, hosts))
        lines = inventory.format_problems(problems, hosts)
        result['changed'] = False
        if lines:
            result['failed'] = True
            result['msg'] = ('%s in the inventory; nothing was done (no vault call, no KEK, no HSM login, no file):\n%s'
                             % (inventory.count(len(lines), 'problem'), '\n'.join(lines)))
        else:
            # the key records go to the transfer's steps; started is the start of the run (its audit manifest's)
            started = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
            result.update(plan=plan, records=plan.pop('records'), started=started, msg='plan: %s' % plan['summary'])
        return result

    def _declared(self, hostvars, host, spec, problems):
        """A host's values of the declared variables (templated by Ansible); undeclared byok_* names are problems."""
        try:
            hv = hostvars[host]
        except KeyError:
            problems.append(inventory.Problem(host, 'inventory', 'is not a host of this inventory; check the play hosts'))
            return {}
        out = {}
        try:
            names = list(hv.keys())
        except AnsibleError as exc:
            names = list(spec)
            problems.append(inventory.Problem(host, 'host variables', 'cannot be read: %s' % _first_line(exc)))
        for name in names:
            if _looks_like_ours(name) and name not in spec and name not in OTHER_DECLARED:
                # a near miss of a declared name (byok-keys, Byok_keys, byok_kyes) is a typo that would silently fall back
                # to a default; other byok_* names (a survey's answers, the user's own variables) are not ours to judge
                match = inventory.nearest(name, list(spec) + list(OTHER_DECLARED), cutoff=0.85)
                if match:
                    note = ' (names are case-sensitive and use _, not -)' if name.lower().replace('-', '_') == match else ''
                    problems.append(inventory.Problem(host, name, 'unknown variable; did you mean %s?%s' % (match, note)))
        for name in spec:
            if name not in names:
                continue
            try:
                out[name] = hv[name]
            except AnsibleError as exc:
                secret = spec[name].get('no_log')
                problems.append(inventory.Problem(host, name, 'cannot be resolved%s; define what it refers to (in the inventory, '
                                                  'a vars file, Ansible Vault or an AWX credential)'
                                                  % ('' if secret else ': %s' % _first_line(exc))))
        return out

    def _manifest_problems(self, task_vars, hosts=()):
        """The audit manifest folder on this controller must be this user's own, checked before any key moves; and one
        value: the report writes with the controller's (its play), or with an HSM host's (a --limit that leaves the
        controller out), so a value that differs between them would be checked here and not be the one used."""
        controller = task_vars.get('byok_controller') or 'localhost'
        value = task_vars.get('byok_manifest_dir')
        value = self._templar.template(value) if value is not None else None
        seen = _manifest_dirs(task_vars.get('hostvars') or {}, [controller] + [h for h in hosts if h != controller])
        if seen:
            first = seen[0]
            differ = [(h, v) for h, v in seen[1:] if v != first[1]]
            if differ:
                return [inventory.Problem(h, 'byok_manifest_dir', '%s here and %s on %s; the report writes the audit manifest '
                                          'with one value: set byok_manifest_dir once, under all: vars:'
                                          % (_shown_dir(v), _shown_dir(first[1]), first[0])) for h, v in differ]
            value = first[1]
        problem = manifest_dir_type_problem(value)
        if problem:
            return [inventory.Problem(controller, 'byok_manifest_dir', problem)]
        value = manifest_dir(value)
        problem = owned_dir.problem_of(to_native(value))
        if problem is None:
            return []
        return [inventory.Problem(controller, 'byok_manifest_dir',
                                  '%s; point byok_manifest_dir (or BYOK_MANIFEST_DIR) at a directory of this user that only it '
                                  'may write, by its real path (mkdir -m 0700 DIR)' % problem)]

    def _debug_problems(self, values):
        """ANSIBLE_DEBUG makes ansible-core log module arguments: refuse to pass a secret then, unless the user opted in."""
        reasons = _secret_exposing_settings()
        if not reasons:
            return []
        problems = []
        for host, hv in sorted(values.items()):
            if hv.get(DEBUG_OPT_IN) is True or str(hv.get(DEBUG_OPT_IN)).lower() in ('true', 'yes', '1'):
                continue
            secrets = [name for name in ('byok_user_pin',) if hv.get(name)]
            azure = hv.get('byok_azure') if isinstance(hv.get('byok_azure'), dict) else {}
            secrets += ['byok_azure.%s' % k for k in ('secret', 'x509_certificate_password') if azure.get(k)]
            for name in secrets:
                if 'ANSIBLE_DEBUG' in reasons:
                    problems.append(inventory.Problem(host, name, 'ANSIBLE_DEBUG is on, and ansible-core then writes module '
                                                      'arguments to its debug output, this secret among them; unset ANSIBLE_DEBUG, '
                                                      'pass the secret as an environment variable instead, or set %s: true to '
                                                      'accept that' % DEBUG_OPT_IN))
                if 'ANSIBLE_KEEP_REMOTE_FILES' in reasons:
                    problems.append(inventory.Problem(host, name, 'ANSIBLE_KEEP_REMOTE_FILES is on, and ansible-core then turns '
                                                      'pipelining off and leaves every module payload on the host, in its remote '
                                                      'tmp directory, with the module arguments in clear, this secret among them; '
                                                      'unset ANSIBLE_KEEP_REMOTE_FILES, pass the secret as an environment variable '
                                                      'instead, or set %s: true to accept that' % DEBUG_OPT_IN))
        return problems


def manifest_dir_type_problem(value):
    """byok_manifest_dir must be a path (a string): YAML reads 0755 as the octal number 493, which would name ./493."""
    if value is None or isinstance(value, str):
        return None
    return ('%s is %s, not a string (a path); write the path of the folder, in quotes if YAML could read it as a number or '
            'boolean' % (inventory.show(value), inventory.kind_of(value)))


def _secret_exposing_settings():
    """The debugging aids that are on and would show or keep module arguments (secrets among them)."""
    from ansible import constants as C
    out = []
    if getattr(C, 'DEFAULT_DEBUG', False):
        out.append('ANSIBLE_DEBUG')
    if getattr(C, 'DEFAULT_KEEP_REMOTE_FILES', False):
        out.append('ANSIBLE_KEEP_REMOTE_FILES')
    return out
