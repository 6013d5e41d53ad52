# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each fact once: the PKCS#11 options and their choice lists are declared in plugins/module_utils/option_specs.py, and
the YAML that repeats them (role argument specs and defaults, the pkcs11 doc fragment, the AWX credential type) is
written from it by scripts/gen-specs.py.  A generated file edited by hand, or a source changed without running the
generator, fails here (and so make test)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import os
import shutil

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.byok.keyvault.plugins.module_utils import decisions
from ansible_collections.byok.keyvault.plugins.module_utils import option_specs
from ansible_collections.byok.keyvault.plugins.module_utils import user_terms
from ansible_collections.byok.keyvault.plugins.module_utils import vendors

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
#: the role entry points that take the PKCS#11 variables
ENTRY_POINTS = {'transfer': 'main', 'staged': 'wrap', 'generic_pkcs11': 'main', 'luna': 'main', 'nshield': 'main'}


def _generator():
    spec = importlib.util.spec_from_file_location('gen_specs', os.path.join(ROOT, 'scripts', 'gen-specs.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _yaml(path, root=ROOT):
    with open(os.path.join(root, path)) as f:
        return yaml.safe_load(f)


def _options(role, entry=None):
    return _yaml('roles/%s/meta/argument_specs.yml' % role)['argument_specs'][entry or ENTRY_POINTS[role]]['options']


# -- the generated files are current -----------------------------------------------------------------------------------
def test_every_generated_section_is_current():
    diff = _generator().stale()
    assert not diff, 'generated sections are out of date; run scripts/gen-specs.py\n%s' % diff[:6000]


def _copy_targets(gen, dest):
    for path in gen.targets():
        os.makedirs(os.path.dirname(os.path.join(dest, path)), exist_ok=True)
        shutil.copy(os.path.join(ROOT, path), os.path.join(dest, path))


@pytest.mark.parametrize('path, old, new', [
    # a choice list trimmed by hand in a role's argument spec
    ('roles/luna/meta/argument_specs.yml', 'choices: [auto, combined, two_step]', 'choices: [auto, combined]'),
    # a default changed by hand in a role's defaults
    ('roles/staged/defaults/main.yml', 'byok_regenerate: fail', 'byok_regenerate: never'),
    # a vendor added by hand to the AWX credential
    ('awx/credential_types/hsm_pkcs11.yml', 'choices: ["", auto,', 'choices: ["", auto, utimaco,'),
    # an option's documentation edited in the doc fragment
    ('plugins/doc_fragments/pkcs11.py', '    default: 300', '    default: 600'),
])
def test_a_generated_file_edited_by_hand_is_stale(tmp_path, path, old, new):
    gen = _generator()
    _copy_targets(gen, str(tmp_path))
    assert gen.stale(str(tmp_path)) == ''
    edited = tmp_path / path
    text = edited.read_text()
    assert old in text, 'the test expects %r in %s' % (old, path)
    edited.write_text(text.replace(old, new, 1))
    diff = gen.stale(str(tmp_path))
    assert path in diff and new.strip() in diff, diff


def test_the_check_mode_exits_1_on_a_stale_file_and_0_on_current_ones(tmp_path, monkeypatch, capsys):
    gen = _generator()
    _copy_targets(gen, str(tmp_path))
    monkeypatch.setattr(gen, 'ROOT', tmp_path)
    assert gen.main(['--check']) == 0
    path = tmp_path / 'roles' / 'transfer' / 'defaults' / 'main.yml'
    path.write_text(path.read_text().replace('byok_wrap_method: auto', 'byok_wrap_method: combined'))
    assert gen.main(['--check']) == 1
    assert 'roles/transfer/defaults/main.yml' in capsys.readouterr().out
    assert gen.main([]) == 0  # rewrites the section
    assert gen.main(['--check']) == 0


def test_a_section_without_its_markers_is_refused(tmp_path, monkeypatch):
    gen = _generator()
    _copy_targets(gen, str(tmp_path))
    path = tmp_path / 'roles' / 'nshield' / 'defaults' / 'main.yml'
    path.write_text(path.read_text().replace(gen.END, '# end'))
    with pytest.raises(gen.StaleError):
        gen.stale(str(tmp_path))


# -- what the files say is what the source says (read back as YAML, independent of the rendering) ----------------------
@pytest.mark.parametrize('role', sorted(ENTRY_POINTS))
def test_role_specs_and_defaults_say_what_the_source_says(role):
    options = _options(role)
    defaults = _yaml('roles/%s/defaults/main.yml' % role)
    for name, option in option_specs.role_options(role):
        assert options[name] == option, name
        if 'default' in option:
            assert defaults[name] == option['default'], name
        else:
            assert name not in defaults, name


def test_the_doc_fragment_documents_the_module_argument_spec():
    from ansible_collections.byok.keyvault.plugins.doc_fragments.pkcs11 import ModuleDocFragment
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    spec = option_specs.module_argument_spec()
    assert list(documented) == list(spec)
    for name, option in spec.items():
        for key in ('type', 'default', 'choices'):
            assert documented[name].get(key) == option.get(key), (name, key)
    assert spec['vendor']['choices'] == list(vendors.VENDOR_CHOICES)


def test_the_awx_credential_injects_what_the_roles_read():
    cred = _yaml('awx/credential_types/hsm_pkcs11.yml')
    fields = dict((f['id'], f) for f in cred['inputs']['fields'])
    assert fields['vendor']['choices'] == list(option_specs.ROLE_VENDOR_CHOICES)
    assert fields['user_pin'].get('secret') is True
    # the PIN only in the environment, never in extra vars
    assert cred['injectors']['env'] == dict((v, '{{ %s }}' % k) for k, v in user_terms.OPTION_ENVIRONMENT.items())
    assert not [v for v in cred['injectors']['extra_vars'].values() if 'user_pin' in v]
    transfer = _options('transfer')
    for variable, template in cred['injectors']['extra_vars'].items():
        assert variable in transfer
        field = template.strip('{} ')
        for choice in fields[field].get('choices') or ():
            assert choice in transfer[variable]['choices'], (variable, choice)


# -- one choice list per fact, wherever a role repeats it ----------------------------------------------------------------
CHOICE_LISTS = {'wrap_method': list(vendors.WRAP_METHODS), 'regenerate': list(decisions.REGENERATE_CHOICES)}


@pytest.mark.parametrize('role', sorted(ENTRY_POINTS))
def test_a_role_writes_the_choice_lists_only_in_its_generated_section(role):
    generated = dict(option_specs.role_options(role))
    for entry, spec in _yaml('roles/%s/meta/argument_specs.yml' % role)['argument_specs'].items():
        for name, option in (spec.get('options') or {}).items():
            choices = set(option.get('choices') or ())
            if choices & (set(vendors.WRAP_METHODS[1:]) | set(decisions.REGENERATE_CHOICES) | set(vendors.VENDOR_CHOICES[1:])):
                assert generated.get(name) == option, '%s %s: %s repeats a choice list by hand' % (role, entry, name)


@pytest.mark.parametrize('role', sorted(r for r in ENTRY_POINTS if 'vendor' in option_specs.ROLE_VARIABLES[r]))
def test_an_empty_vendor_means_auto_in_every_role(role):
    """An AWX credential without a vendor injects byok_hsm_vendor: "" - every role that names a vendor takes it."""
    variable = option_specs.ROLE_VARIABLES[role]['vendor']
    spec = dict((k, dict((f, v) for f, v in o.items() if f != 'description')) for k, o in _options(role).items())
    values = dict((k, o['default']) for k, o in spec.items() if 'default' in o)
    values.update((k, {'str': '/x', 'path': '/x', 'dict': {'a': 'b'}, 'list': [{'label': 'k'}]}[o.get('type', 'str')])
                  for k, o in spec.items() if o.get('required'))
    values[variable] = ''
    result = ArgumentSpecValidator(spec).validate(values, validate_role_argument_spec=True)
    assert not result.error_messages, result.error_messages
