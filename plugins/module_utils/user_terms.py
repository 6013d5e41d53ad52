# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The names a message gives to a value: the ones the user wrote.

A module's message names its options (user_pin).  The value of an option may have come from the environment
instead (PKCS11_USER_PIN, which an AWX credential injects), and the roles fill the options from inventory variables
(byok_user_pin) and hand the HSM modules byok_hsm_environment (SOFTHSM2_CONF).  Both tables are here, and the two
translations that use them:

- in_environment_terms(message, options): a module names the environment variable for each option it read from
  the environment (HsmModule.fail);
- in_inventory_terms(message): a role names the inventory variable for each option it set, and
  byok_hsm_environment.NAME for each vendor configuration variable (report.failed_rows, sealing).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.byok.keyvault.plugins.module_utils import vendors

#: the environment variable each PKCS#11 option falls back to when it is not given
OPTION_ENVIRONMENT = {'pkcs11_module': 'PKCS11_MODULE', 'token_label': 'PKCS11_TOKEN_LABEL', 'user_pin': 'PKCS11_USER_PIN'}

#: the module option each HSM host variable of the transfer and staged roles becomes (module_defaults of the hsm group)
HOST_OPTION_VARS = {'user_pin': 'byok_user_pin', 'token_label': 'byok_token_label', 'token_serial': 'byok_token_serial',
                    'pkcs11_module': 'byok_pkcs11_module', 'vendor': 'byok_hsm_vendor', 'wrap_method': 'byok_wrap_method',
                    'regenerate': 'byok_regenerate'}

#: the host variable whose entries the roles give the HSM modules as their environment
HOST_ENVIRONMENT_VAR = 'byok_hsm_environment'
#: a name an environment option or variable may set (a shell variable's name)
ENV_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*\Z')
#: parts of an environment variable's name (split at _, any case) that say it holds a secret
SECRET_NAME_PARTS = ('PIN', 'PASSWORD', 'PASSWD', 'PWD', 'PASS', 'PASSCODE', 'PASSPHRASE', 'SECRET')


def secret_variables(environment):
    """The names of an environment (a dict) that say they hold a secret (PKCS11_USER_PIN, HSM_PASSWORD, ...), sorted."""
    return sorted(str(name) for name in (environment or {}) if any(_secret_part(part) for part in str(name).upper().split('_')))


def _secret_part(part):
    """A part of a variable's name (split at _) that says it holds a secret: a word of SECRET_NAME_PARTS, or a word of
    five letters or more that ends in PIN (HSMPIN, USERPIN, SOPIN; not SPIN)."""
    return part in SECRET_NAME_PARTS or (len(part) >= 5 and part.endswith('PIN'))


def _names_re(names):
    """A whole word of names, not part of a longer name nor after a dot (byok_hsm_environment.X stays as it is)."""
    return re.compile(r'(?<![\w.])(%s)(?![\w])' % '|'.join(re.escape(n) for n in sorted(names, key=len, reverse=True)))


_OPTION_RE = _names_re(HOST_OPTION_VARS)
_CONFIG_RE = _names_re(vendors.config_variables())


def in_environment_terms(message, options):
    """message with each of these options (read from the environment) named by its environment variable."""
    names = [o for o in options or () if o in OPTION_ENVIRONMENT]
    if not names:
        return message or ''
    return _names_re(names).sub(lambda m: OPTION_ENVIRONMENT[m.group(1)], message or '')


def in_inventory_terms(message):
    """A module's message as a role run reports it: option names replaced by the inventory variables the user wrote,
    a vendor configuration variable by its place in byok_hsm_environment."""
    message = _OPTION_RE.sub(lambda m: HOST_OPTION_VARS[m.group(1)], message or '')
    return _CONFIG_RE.sub(lambda m: '%s.%s' % (HOST_ENVIRONMENT_VAR, m.group(1)), message)


_VAULT_URL_RE = re.compile(r'(?<![\w.])vault_url(?!\w)')


def in_vault_terms(message, vault):
    """A vault module's message as a role run reports it for vault `vault` (its byok_vaults key): the module option
    vault_url named as the inventory variable the user wrote, byok_vaults.VAULT.url."""
    return _VAULT_URL_RE.sub('byok_vaults.%s.url' % vault, message or '')
