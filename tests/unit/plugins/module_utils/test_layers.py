# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The design rules of the file cut (docs/architecture.md), read from the source with ast, nothing imported.

- a module reaches the PKCS#11 side or the Azure side, never both, also through the files it imports;
- plugins/ never imports the lab (tests/);
- Azure errors are mapped in azure_errors.py only: no other file imports azure.core.exceptions or has a permission table;
- PKCS#11 errors are mapped in pkcs11_session.py only: no other file has the CKR_ tables or the functions that use them;
- one explain() per side, in those two files.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

import pytest

PLUGINS = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'plugins')
PREFIX = 'ansible_collections.byok.keyvault.plugins.'
PKCS11_SIDE = ('pkcs11_session', 'pkcs11_keys', 'pkcs11_wrap', 'pkcs11_token')
AZURE_SIDE = ('azure_auth', 'azure_errors', 'azure_pacing', 'vault_client', 'keyvault')


def _files(folder):
    root = os.path.join(PLUGINS, folder)
    return dict((name[:-3], os.path.join(root, name)) for name in sorted(os.listdir(root)) if name.endswith('.py'))


def _tree(path):
    with open(path) as handle:
        return ast.parse(handle.read(), filename=path)


def _imports(path):
    """The module_utils files a plugin file imports (from ansible_collections...module_utils[.name] import ...)."""
    out = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX + 'module_utils'):
            rest = node.module[len(PREFIX + 'module_utils'):].lstrip('.')
            out.update([rest] if rest else [alias.name for alias in node.names])
    return out


def _reach(name, utils, seen=None):
    seen = set() if seen is None else seen
    for dep in _imports(utils[name]):
        if dep in utils and dep not in seen:
            seen.add(dep)
            _reach(dep, utils, seen)
    return seen


UTILS = _files('module_utils')
MODULES = _files('modules')


def test_the_sides_and_their_files_exist():
    assert set(PKCS11_SIDE + AZURE_SIDE) <= set(UTILS)


@pytest.mark.parametrize('module', sorted(MODULES))
def test_a_module_reaches_one_side_only(module):
    reached = set()
    for dep in _imports(MODULES[module]):
        if dep in UTILS:
            reached.add(dep)
            reached |= _reach(dep, UTILS)
    pkcs11 = sorted(reached & set(PKCS11_SIDE))
    azure = sorted(reached & set(AZURE_SIDE))
    assert not (pkcs11 and azure), '%s reaches the PKCS#11 side (%s) and the Azure side (%s)' % (module, pkcs11, azure)


def test_plugins_never_import_the_lab():
    for root, _dirs, names in os.walk(PLUGINS):
        for name in names:
            if name.endswith('.py'):
                for node in ast.walk(_tree(os.path.join(root, name))):
                    modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                        [node.module or ''] if isinstance(node, ast.ImportFrom) else []
                    for module in modules:
                        assert not (module == 'lab' or module.startswith(('lab.', 'tests.', 'tests'))), (name, module)


def _names_defined(path):
    return set(t.id for node in ast.walk(_tree(path)) if isinstance(node, ast.Assign)
               for t in node.targets if isinstance(t, ast.Name))


def _imports_azure_exceptions(path):
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module == 'azure.core' and any(a.name == 'exceptions' for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == 'azure.core.exceptions':
            return True
        if isinstance(node, ast.Import) and any(a.name == 'azure.core.exceptions' for a in node.names):
            return True
    return False


def test_azure_errors_are_mapped_in_azure_errors_only():
    mapping = [name for name, path in UTILS.items() if _imports_azure_exceptions(path) or 'PERMISSION_HINT' in _names_defined(path)]
    mapping += ['modules/%s' % name for name, path in MODULES.items() if _imports_azure_exceptions(path)]
    assert mapping == ['azure_errors']


def _functions(path):
    return set(node.name for node in ast.walk(_tree(path)) if isinstance(node, ast.FunctionDef))


def test_pkcs11_errors_are_mapped_in_pkcs11_session_only():
    tables = [name for name, path in UTILS.items() if set(['_FIX', '_CKR_SPELLING']) & _names_defined(path)]
    assert tables == ['pkcs11_session']
    mappers = [name for name, path in UTILS.items() if set(['exc_code', 'ckr_name']) & _functions(path)]
    assert mappers == ['pkcs11_session']


def test_one_explain_per_side():
    assert sorted(name for name, path in UTILS.items() if 'explain' in _functions(path)) == ['azure_errors', 'pkcs11_session']
