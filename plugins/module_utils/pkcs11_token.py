# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PKCS#11 side's module base: HsmModule (the PKCS#11 options, the libraries checked) and HsmToken.

The PKCS#11 side is one file per concern, as python-pkcs11 is cut (library, token, session, keys):

- pkcs11_session.py: library load, token selection, login, the token's facts and mechanisms, and the one place
  PKCS#11 errors become messages (explain);
- pkcs11_keys.py: target keys: find, describe, generate, destroy, lone public objects, seal;
- pkcs11_wrap.py: the known-answer proof of the wrap mechanisms, the wrap path chosen from it, and the wrap itself;
- vendors.py: vendor profiles as data;
- this file: HsmToken, composed of the three, and the module base a module's main() builds on.

A module imports this side or the Azure side (keyvault.py), never both.  The PIN is only handed to C_Login; no object
keeps it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import option_specs
from ansible_collections.byok.keyvault.plugins.module_utils import user_terms
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError
from ansible_collections.byok.keyvault.plugins.module_utils.module_base import ByokModule
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_keys import KeysMixin
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_session import PKCS11_IMPORT_ERROR, TokenSession
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_wrap import WrapMixin


def pkcs11_argument_spec():
    """Options every HSM-side module shares (documented in the byok.keyvault.pkcs11 doc fragment)."""
    return option_specs.module_argument_spec()


class HsmToken(KeysMixin, WrapMixin, TokenSession):
    """One PKCS#11 library, one token, one logged-in session (TokenSession), with the key operations (KeysMixin) and
    the proved wraps (WrapMixin); use as a context manager."""

    def __init__(self, module_path, token_label=None, token_serial=None, vendor='auto'):
        super(HsmToken, self).__init__(module_path, token_label, token_serial, vendor)
        self._proof = None


class HsmModule(ByokModule):
    """ByokModule with the PKCS#11 options merged in and the libraries checked."""

    def __init__(self, argument_spec, **kwargs):
        libraries = [('python-pkcs11', PKCS11_IMPORT_ERROR), ('cryptography', ki.CRYPTOGRAPHY_IMPORT_ERROR)]
        super(HsmModule, self).__init__(argument_spec, common=pkcs11_argument_spec(), requirements=libraries, **kwargs)

    def options_from_environment(self):
        """The PKCS#11 options whose value came from the environment (PKCS11_*), not from the task's arguments."""
        try:
            from ansible.module_utils.basic import _load_params
            given = _load_params()
        except Exception:  # pylint: disable=broad-except  # a private helper of ansible-core: compare values instead
            given = None
        out = []
        for option, variable in user_terms.OPTION_ENVIRONMENT.items():
            value = os.environ.get(variable)
            if not value or self.params.get(option) != value:
                continue
            if given is None or option not in given:
                out.append(option)
        return out

    #: a module run by a role for a host (byok_hsm_step) names that host and the role's inventory variables
    speaks_for = None

    def message(self, exc):
        """The one-line message of an error, naming PKCS11_* instead of the option where the value came from the
        environment (and, with speaks_for, the host and the inventory variables instead of the options)."""
        text = self.plain_message(exc)
        if self.speaks_for:
            text = '%s: %s' % (self.speaks_for, user_terms.in_inventory_terms(text))
        return text

    def plain_message(self, exc):
        """The one-line message of an error, naming PKCS11_* instead of the option where the value came from the
        environment (a key's own message: the report names its host)."""
        return user_terms.in_environment_terms(str(exc), self.options_from_environment())

    def fail(self, exc, **result):
        """Fail as ByokModule does, naming PKCS11_* instead of the option where the value came from the environment."""
        if isinstance(exc, ByokError):
            result = dict(self.failure_details(exc), **result)
        self.module.fail_json(msg=self.message(exc), **self._with_invocation(result))

    def open_token(self, on_failure=None):
        """The opened token of this run; fails the module with a one-line message when it cannot be opened (with the
        result fields on_failure(message) gives, when given)."""
        p = self.params
        token = HsmToken(p['pkcs11_module'], p['token_label'], p['token_serial'], p['vendor'])
        try:
            return token.open(p['user_pin'])
        except ByokError as exc:
            token.close()
            self.fail(exc, **(on_failure(self.plain_message(exc)) if on_failure else {}))
