# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PKCS#11 options and their choice lists, written once.

Every HSM-side module takes the same PKCS#11 options (library, token label, serial, PIN, vendor, lock timeout), and
every role that reaches an HSM repeats them as its own variables (byok_token_label, luna_token_label, ...) with the
wrap method and the regenerate policy.  This file is their one declaration:

- module_argument_spec(): the options of the HSM modules (pkcs11_token.HsmModule);
- MODULE_OPTIONS: their documentation, which scripts/gen-specs.py writes into the pkcs11 doc fragment;
- role_options(role): the variables of a role, which scripts/gen-specs.py writes into the generated sections of
  roles/ROLE/meta/argument_specs.yml and roles/ROLE/defaults/main.yml;
- AWX_FIELDS and awx_injectors(): the AWX credential type awx/credential_types/hsm_pkcs11.yml.

The choice lists come from where they are decided: vendors.VENDOR_CHOICES and vendors.WRAP_METHODS,
decisions.REGENERATE_CHOICES.  A role variable that names a vendor also takes the empty string, which means auto (an
AWX credential without a vendor injects it).  A unit test fails when a generated file is stale.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback

from ansible_collections.byok.keyvault.plugins.module_utils import decisions
from ansible_collections.byok.keyvault.plugins.module_utils import host_lock
from ansible_collections.byok.keyvault.plugins.module_utils import user_terms
from ansible_collections.byok.keyvault.plugins.module_utils import vendors

#: a role variable naming a vendor: empty means auto (what an AWX credential without a vendor gives)
ROLE_VENDOR_CHOICES = ('',) + tuple(vendors.VENDOR_CHOICES)
#: the vendors that have a role of their own (roles/luna, roles/nshield), which the generic_pkcs11 role leaves to them
VENDOR_ROLES = ('luna', 'nshield')
#: what generic_pkcs11_vendor takes
GENERIC_ROLE_VENDOR_CHOICES = tuple(v for v in ROLE_VENDOR_CHOICES if v not in VENDOR_ROLES)


#: the options of the HSM modules, in the order the doc fragment lists them: argument spec fields and documentation
MODULE_OPTIONS = (
    ('pkcs11_module', {
        'type': 'path',
        'description': [
            'Path of the HSM\'s PKCS#11 library on the HSM host, for example C(/usr/safenet/lunaclient/lib/libCryptoki2_64.so) '
            '(Thales Luna), C(/opt/nfast/toolkits/pkcs11/libcknfast.so) (Entrust nShield) or C(/usr/lib/softhsm/libsofthsm2.so).',
            'When not set, the environment variable E(PKCS11_MODULE) is used, then the first default path of O(vendor) that '
            'exists (the vendor profiles in plugins/module_utils/vendors.py list them).',
        ],
    }),
    ('token_label', {
        'type': 'str',
        'no_log': False,
        'description': [
            'Label of the token (Luna partition, nShield softcard/OCS/module token, SoftHSM token) that holds the keys.',
            'When not set, the environment variable E(PKCS11_TOKEN_LABEL) is used.',
            'One of O(token_label) and O(token_serial) is needed; with both, the token must match both.',
        ],
    }),
    ('token_serial', {
        'type': 'str',
        'no_log': False,
        'description': ['Serial number of the token, to choose among tokens with the same label.'],
    }),
    ('user_pin', {
        'type': 'str',
        'no_log': True,
        'description': [
            'PIN of the token user (Luna Crypto Officer, nShield softcard/OCS passphrase, SoftHSM user PIN).',
            'When not set, the environment variable E(PKCS11_USER_PIN) is used.',
            'A wrong PIN is tried once and never retried, since HSMs lock a user after a few failures.',
        ],
    }),
    ('vendor', {
        'type': 'str',
        'default': 'auto',
        'choices': list(vendors.VENDOR_CHOICES),
        'description': [
            'HSM vendor profile that decides library defaults, environment, key attributes, wrap preference, firmware gates '
            'and quirks.',
            'V(auto) recognises the vendor from the token\'s manufacturer and falls back to V(generic), which serves any '
            'PKCS#11 HSM (Utimaco, Securosys, Fortanix, Marvell, IBM, Futurex, Yubico, ...).',
        ],
    }),
    ('lock_timeout', {
        'type': 'int',
        'default': host_lock.DEFAULT_TIMEOUT,
        'description': [
            'Seconds to wait while another run on this host works with the same token, before failing with a message that '
            'names the token\'s lock and, where it can, the process holding it (pid, host, start time).',
            'Locks are files in C($TMPDIR/byok-keyvault-locks-<uid>), which must belong to the running user with mode 0700; '
            'a folder made by another user, or a symbolic link, is refused, and lock files are never followed through links.',
        ],
    }),
)

_SPEC_FIELDS = ('type', 'default', 'choices', 'no_log', 'required', 'elements')


def module_argument_spec():
    """The argument spec of the PKCS#11 options every HSM-side module shares (environment fallbacks included)."""
    spec = {}
    for name, doc in MODULE_OPTIONS:
        option = dict((k, v) for k, v in doc.items() if k in _SPEC_FIELDS)
        if 'choices' in option:
            option['choices'] = list(option['choices'])
        if name in user_terms.OPTION_ENVIRONMENT:
            option['fallback'] = (env_fallback, [user_terms.OPTION_ENVIRONMENT[name]])
        spec[name] = option
    return spec


# -- role variables -----------------------------------------------------------------------------------------------------
#: the fields of each role's PKCS#11 block, in the order the argument specs and defaults list them
ROLE_FIELDS = ('vendor', 'pkcs11_module', 'token_label', 'token_serial', 'user_pin', 'environment', 'wrap_method',
               'regenerate')

#: the variable of each field, per role (a role without a field has no such variable: luna and nshield fix their vendor)
ROLE_VARIABLES = {
    'transfer': dict(user_terms.HOST_OPTION_VARS, environment=user_terms.HOST_ENVIRONMENT_VAR),
    'generic_pkcs11': {'vendor': 'generic_pkcs11_vendor', 'pkcs11_module': 'generic_pkcs11_module',
                       'token_label': 'generic_pkcs11_token_label', 'token_serial': 'generic_pkcs11_token_serial',
                       'user_pin': 'generic_pkcs11_user_pin', 'environment': 'generic_pkcs11_environment',
                       'wrap_method': 'generic_pkcs11_wrap_method', 'regenerate': 'generic_pkcs11_regenerate'},
}
for _vendor in VENDOR_ROLES:
    ROLE_VARIABLES[_vendor] = dict((f, '%s_%s' % (_vendor, f)) for f in ROLE_FIELDS if f != 'vendor')
ROLE_VARIABLES['staged'] = ROLE_VARIABLES['transfer']

#: how each role names the token, its user's secret and the environment its library needs
_WORDS = {
    'transfer': {
        'token': 'Token', 'pin': 'Token user PIN, quoted', 'pin_tail': '; keep it in Ansible Vault or an AWX credential',
        'environment': 'Environment for the HSM tasks (for example SOFTHSM2_CONF, ChrystokiConfigurationPath, CKNFAST_*).',
        'wrap_method': 'Wrap path (see byok.keyvault.byok_wrap).',
    },
    'generic_pkcs11': {
        'token': 'Token', 'pin': 'PIN of the token user', 'pin_tail': '',
        'environment': 'Environment the vendor library needs (for example C(SOFTHSM2_CONF) or the vendor\'s configuration '
                       'variable).',
        'wrap_method': 'Wrap path; V(auto) lets the profile choose from the token\'s mechanisms.',
    },
    'luna': {
        'token': 'Partition', 'pin': 'Crypto Officer password of the partition', 'pin_tail': '',
        'environment': ['Environment of the HSM tasks, for example C(ChrystokiConfigurationPath) when Chrystoki.conf is not '
                        'in /etc. Unset Luna variables get the profile\'s defaults.'],
        'wrap_method': 'Wrap path; V(auto) lets the profile choose from the partition\'s mechanisms.',
    },
    'nshield': {
        'token': 'Token', 'pin': 'Softcard or OCS passphrase', 'pin_tail': '',
        'token_label': 'Token label - C(accelerator) for module-protected keys, or the softcard / OCS card set name (empty '
                       'for E(PKCS11_TOKEN_LABEL)).',
        'token_serial': 'Token serial number, to choose among tokens with the same label (one per module with load-sharing '
                        'off).',
        'environment': ['Environment of the HSM tasks, for example C(CKNFAST_LOADSHARING), C(CKNFAST_FAKE_ACCELERATOR_LOGIN) '
                        'or C(NFAST_KMLOCAL). Unset CKNFAST_* variables get the profile\'s defaults.'],
        'wrap_method': 'Wrap path; V(auto) lets the profile choose from the token\'s mechanisms.',
    },
}
_WORDS['staged'] = _WORDS['transfer']


def _library_description(role):
    if role in VENDOR_ROLES:
        profile = vendors.PROFILES[role]
        return ['Path of the PKCS#11 library. Empty for the first default of the %s profile that exists (its library_paths '
                'in plugins/module_utils/vendors.py) or E(PKCS11_MODULE).' % profile['display_name'],
                'Tests point it at SoftHSM or the CKM_RSA_AES_KEY_WRAP test shim; the %s profile still applies.'
                % profile['display_name']]
    if role == 'generic_pkcs11':
        return 'Path of the HSM\'s PKCS#11 library on the HSM host.'
    return 'PKCS#11 library path on the HSM host (empty for the vendor default or PKCS11_MODULE).'


def _field_option(role, field):
    """The argument spec option of one field of a role (type, default, choices, no_log, description)."""
    words = _WORDS[role]
    if field == 'vendor':
        if role == 'generic_pkcs11':
            return {'type': 'str', 'default': 'generic', 'choices': list(GENERIC_ROLE_VENDOR_CHOICES), 'description': [
                'Vendor profile passed to the modules. V(generic) serves any PKCS#11 HSM; V(auto) (or empty) recognises the '
                'vendor from the token\'s manufacturer; V(softhsm) adds the SoftHSM zero-padding warning. Use the %s role '
                'for those vendors.' % ' or '.join(VENDOR_ROLES)]}
        return {'type': 'str', 'default': 'auto', 'choices': list(ROLE_VENDOR_CHOICES),
                'description': 'Vendor profile of the HSM (empty means auto, as an AWX credential without a vendor gives it).'}
    if field == 'pkcs11_module':
        if role == 'generic_pkcs11':
            return {'type': 'str', 'required': True, 'description': _library_description(role)}
        return {'type': 'str', 'default': '', 'description': _library_description(role)}
    if field == 'token_label':
        description = words.get('token_label') or '%s label (empty for E(PKCS11_TOKEN_LABEL)).' % words['token']
        return {'type': 'str', 'default': '', 'description': description}
    if field == 'token_serial':
        description = words.get('token_serial') or '%s serial number, to choose among %ss with the same label.' % (
            words['token'], words['token'].lower())
        return {'type': 'str', 'default': '', 'description': description}
    if field == 'user_pin':
        return {'type': 'str', 'default': '', 'no_log': True,
                'description': '%s (empty for E(PKCS11_USER_PIN))%s.' % (words['pin'], words['pin_tail'])}
    if field == 'environment':
        return {'type': 'dict', 'default': {}, 'description': words['environment']}
    if field == 'wrap_method':
        return {'type': 'str', 'default': 'auto', 'choices': list(vendors.WRAP_METHODS), 'description': words['wrap_method']}
    if field == 'regenerate':
        return {'type': 'str', 'default': 'fail', 'choices': list(decisions.REGENERATE_CHOICES),
                'description': 'Policy for a key that exists with the label on the token but differs (see '
                               'byok.keyvault.hsm_keygen).'}
    raise KeyError(field)


def role_options(role):
    """[(variable, argument spec option)] of a role's PKCS#11 block, in ROLE_FIELDS order."""
    names = ROLE_VARIABLES[role]
    return [(names[field], _field_option(role, field)) for field in ROLE_FIELDS if field in names]


# -- AWX credential type ------------------------------------------------------------------------------------------------
#: the fields of the AWX credential type "HSM (PKCS#11)": module option -> (label, help text)
AWX_FIELDS = (
    ('pkcs11_module', 'PKCS#11 library',
     'Path of the HSM\'s PKCS#11 library on the hosts that run the HSM tasks, e.g. '
     '/usr/safenet/lunaclient/lib/libCryptoki2_64.so or /opt/nfast/toolkits/pkcs11/libcknfast.so. Leave empty for the '
     'vendor\'s default path.'),
    ('token_label', 'Token label', 'Label of the partition / softcard / token that holds the keys.'),
    ('token_serial', 'Token serial', 'Serial number of the token, to choose among tokens with the same label (optional).'),
    ('user_pin', 'User PIN', 'PIN of the token user (Luna Crypto Officer password, nShield softcard/OCS passphrase). A wrong '
                             'PIN is tried once and never retried.'),
    ('vendor', 'Vendor profile', 'Empty or auto recognises the vendor of each host\'s token from its manufacturer, which is '
                                 'what a fleet of several vendors needs. Choose a vendor only when every host of the job uses '
                                 'it.'),
)


def awx_inputs():
    """The inputs of the AWX credential type: its fields (the PIN a secret) and what is required."""
    fields = []
    for name, label, help_text in AWX_FIELDS:
        field = {'id': name, 'label': label, 'type': 'string'}
        if dict(MODULE_OPTIONS)[name].get('no_log'):
            field['secret'] = True
        if name == 'vendor':
            field.update(choices=list(ROLE_VENDOR_CHOICES), default='')
        field['help_text'] = help_text
        fields.append(field)
    return {'fields': fields, 'required': ['user_pin']}


def awx_injectors():
    """What the credential injects: the options with an environment fallback go into the environment (the PIN only
    there), the others into the extra vars the transfer role reads."""
    env = dict((var, '{{ %s }}' % name) for name, var in user_terms.OPTION_ENVIRONMENT.items())
    extra = dict((user_terms.HOST_OPTION_VARS[name], '{{ %s }}' % name)
                 for name, dummy, dummy2 in AWX_FIELDS if name not in user_terms.OPTION_ENVIRONMENT)
    return {'env': env, 'extra_vars': extra}
