# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One check of the inventory schema.

The plan (byok_plan, inventory.py) checks every HSM host's variables against the transfer role's argument spec before
anything is touched, and reports every problem of the inventory in one run, naming host and path.  Ansible then
validates the same variables against the argument spec of the role entry point that runs (transfer, or a stage of
staged).  That second check must never be the one that speaks: every variable and keyword Ansible validates is one the
plan knows, and a value the plan accepts is one Ansible accepts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import os

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.byok.keyvault.plugins.action.byok_plan import OTHER_DECLARED, load_spec
from ansible_collections.byok.keyvault.plugins.module_utils import fleet_plan, inventory

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
SPEC = load_spec('transfer', 'main')
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
#: the entry points that run after the plan checked their hosts against the transfer role's spec
PLANNED = [('transfer', 'main'), ('staged', 'fetch'), ('staged', 'wrap'), ('staged', 'import')]
#: the argument-spec keywords the plan's checker reads (description is documentation only)
KEYWORDS = {'type', 'required', 'default', 'choices', 'elements', 'options', 'no_log', 'description'}
TYPES = {'str', 'path', 'raw', 'int', 'bool', 'list', 'dict'}
BASE = {'byok_vaults': {'prod': {'url': 'https://contoso.vault.azure.net'}}, 'byok_user_pin': '1234',
        'byok_keys': [{'name': 'app-rsa', 'vault': 'prod'}]}


_ENTRIES = {}


def _entry(role, entry):
    if (role, entry) not in _ENTRIES:
        _ENTRIES[(role, entry)] = _read_entry(role, entry)
    return _ENTRIES[(role, entry)]


def _read_entry(role, entry):
    with open(os.path.join(ROOT, 'roles', role, 'meta', 'argument_specs.yml')) as f:
        return yaml.safe_load(f)['argument_specs'][entry].get('options') or {}


def _walk(options, path=''):
    for name, option in options.items():
        where = '%s.%s' % (path, name) if path else name
        yield where, option
        yield from _walk(option.get('options') or {}, where)


@pytest.mark.parametrize('role, entry', PLANNED)
def test_every_variable_ansible_validates_is_known_to_the_plan(role, entry):
    for name, option in _entry(role, entry).items():
        assert name in SPEC or name in OTHER_DECLARED, '%s %s: %s is validated by Ansible only' % (role, entry, name)
        if name in SPEC:
            for key in ('type', 'elements', 'choices'):
                assert option.get(key) == SPEC[name].get(key), '%s %s: %s.%s differs from the plan' % (role, entry, name, key)


def test_the_plan_reads_every_keyword_and_type_of_the_spec():
    for path, option in _walk(SPEC):
        assert set(option) <= KEYWORDS, '%s: %s' % (path, sorted(set(option) - KEYWORDS))
        kind = option.get('type', 'str')
        # a float of byok_azure is checked by the plan's own numbers table, with its range
        assert kind in TYPES or path.split('.')[-1] in inventory.AZURE_NUMBERS, '%s: type %s' % (path, kind)


def _samples(option):
    kind = option.get('type', 'str')
    values = {'str': ['x', '', 5, True, ['a'], {'a': 'b'}], 'path': ['/x', 5, ['a']],
              'int': [3, '3', 'x', True, 2.5, ''], 'float': [0.5, '0.5', 'x', True, 1],
              'bool': [True, False, 'yes', 'no', 'True', 'y', 'maybe', 1, 2],
              'list': [[], ['a'], 'a', {'a': 1}], 'dict': [{}, {'a': 'b'}, 'a', ['a']], 'raw': [None]}[kind]
    for choice in option.get('choices') or ():
        values += [choice, choice.upper() if isinstance(choice, str) else choice]
    return values


def _cases():
    """(variable path, value): each top-level variable, each byok_azure field and each byok_keys field."""
    for name in sorted(SPEC):
        if SPEC[name].get('options'):
            for sub, option in sorted(SPEC[name]['options'].items()):
                for value in _samples(option):
                    yield (name, sub), value
        elif name not in ('byok_keys', 'byok_vaults'):
            for value in _samples(SPEC[name]):
                yield (name,), value


def _set(values, where, value):
    if where[0] == 'byok_keys':
        values['byok_keys'][0][where[1]] = value
    elif len(where) == 2:
        values.setdefault(where[0], {})[where[1]] = value
    else:
        values[where[0]] = value


def _ansible_errors(role, entry, values):
    options = _entry(role, entry)
    spec = copy.deepcopy(options)  # the validator changes the spec it is given
    given = dict((k, v) for k, v in values.items() if k in spec)
    for name, option in spec.items():  # what the staged stages require besides the transfer's variables
        if option.get('required') and name not in given:
            given[name] = {'path': '/bundle', 'dict': {}, 'list': [{}]}.get(option.get('type'), 'x')
    return ArgumentSpecValidator(spec).validate(given, validate_role_argument_spec=True).error_messages


def test_the_baseline_inventory_passes_both_checks():
    plan, problems = fleet_plan.plan_fleet(SPEC, {'hsm1': copy.deepcopy(BASE)}, now=NOW)
    assert not problems
    for role, entry in PLANNED:
        assert not _ansible_errors(role, entry, copy.deepcopy(BASE)), (role, entry)


@pytest.mark.parametrize('where, value', list(_cases()), ids=repr)
def test_what_the_plan_accepts_ansible_accepts(where, value):
    values = copy.deepcopy(BASE)
    _set(values, where, copy.deepcopy(value))
    plan, problems = fleet_plan.plan_fleet(SPEC, {'hsm1': copy.deepcopy(values)}, now=NOW)
    if problems:
        return  # refused by the plan, in one run with the other problems: Ansible's check never runs
    for role, entry in PLANNED:
        if where[0] in _entry(role, entry):
            errors = _ansible_errors(role, entry, values)
            assert not errors, '%s accepted by the plan, refused by Ansible for %s %s: %s' % ('.'.join(where), role, entry, errors)
