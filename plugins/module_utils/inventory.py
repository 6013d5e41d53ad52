# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory of one HSM host as a checked contract.

``check_host(spec, host, values)`` takes the transfer role's argument spec (the ``options`` of its
``meta/argument_specs.yml``, the one declaration of every inventory variable) and the declared variables of one HSM
host, and checks everything Azure or the HSM would refuse, each rule once: every problem as a one-line Problem that
names the host, the variable path the user wrote, the value, the rule and the fix (format_problems writes them).  The
rules across hosts and the plan are in fleet_plan.py.  Pure Python: no SDK, no PKCS#11, no I/O.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import difflib
import math
import re

from ansible_collections.byok.keyvault.plugins.module_utils import attributes
from ansible_collections.byok.keyvault.plugins.module_utils import byok_file
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import release_policy
from ansible_collections.byok.keyvault.plugins.module_utils import rotation
from ansible_collections.byok.keyvault.plugins.module_utils import user_terms
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import VAULT_KIND_CHOICES, VaultTarget, VaultUrlError, key_name_key
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import kind_from_host
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import byok_refusal

#: the fields of each value of byok_vaults (a dictionary keyed by names the user chooses, which an argument spec
#: cannot declare): written like an argument spec and checked by the same interpreter
VAULT_OPTIONS = {
    'url': {'type': 'str', 'required': True},
    'type': {'type': 'str', 'default': 'auto', 'choices': list(VAULT_KIND_CHOICES)},
    'kek_name': {'type': 'str', 'default': 'byok-kek'},
    'kek_size': {'type': 'int', 'default': 4096, 'choices': list(ki.KEK_SIZES)},
    'kek_expires_on': {'type': 'str'},
}
#: variables whose value is a secret: checked, never returned
SECRET_VARS = ('byok_user_pin',)
PARALLEL_RANGE = (1, 16)
VAULT_KIND_NAMES = {'premium': 'Key Vault (Premium)', 'managed_hsm': 'Managed HSM'}
_CONTROL_RE = re.compile(r'[\x00-\x1f\x7f]')
_DIGITS_RE = re.compile(r'[0-9]+\Z')
#: a vault short name (a key of byok_vaults) names folders and files of a transfer bundle: an identifier only
VAULT_NAME_RE = re.compile(r'[A-Za-z0-9_-]{1,64}\Z')
#: the strings taken as booleans: those both Ansible's argument specs and its bool filter (which the roles use) read
#: alike, in any case; y, n, t and f are refused (the bool filter does not know them)
_BOOL_TRUE = ('yes', 'on', '1', 'true')
_BOOL_FALSE = ('no', 'off', '0', 'false')
#: an expiry date must leave the key (or the KEK) usable for at least this long after the plan
MIN_LIFETIME = datetime.timedelta(hours=1)
#: key operations a BYOK target key may have, and what a list of them looks like for each key type
TARGET_OPS = ('encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey')
OPS_EXAMPLE = {'RSA': '[sign, verify]', 'EC': '[sign, verify]', 'oct': '[encrypt, decrypt]', None: '[sign, verify]'}


class _Invalid(object):
    """A value that was refused (already reported).  ``assumed`` is what it would be once the user fixes the reported
    mistake (a choice in another case, say), so that checks that depend on it still run in the same pass."""

    def __init__(self, raw=None, assumed=None):
        self.raw = raw
        self.assumed = assumed

    def __repr__(self):
        return '<invalid>'


_INVALID = _Invalid()


def _bad(value):
    return isinstance(value, _Invalid)


def _would_be(value, normalize=None):
    """A checked value, or, for a refused one, what it would be after the fix the message suggests (None: unknown)."""
    if not _bad(value):
        return value
    if value.assumed is not None:
        return value.assumed
    if normalize is not None and isinstance(value.raw, str):
        try:
            return normalize(value.raw)
        except (ValueError, TypeError):
            return None
    return None


class Problem(object):
    """One thing the inventory gets wrong: where (host, variable path) and what (value, rule, fix)."""

    def __init__(self, host, path, message):
        self.host = host
        self.path = path
        self.message = message

    def line(self, hosts=None):
        return '%s: %s: %s' % (hosts or self.host, self.path, self.message)

    def __repr__(self):
        return 'Problem(%r)' % self.line()


def _show(value):
    """A value as the user wrote it, shortened, never more than one line (a line break shows as \\n)."""
    if isinstance(value, str):
        text = "'%s'" % _escaped(value)
    elif isinstance(value, bool):
        text = 'true' if value else 'false'  # as YAML writes it
    elif isinstance(value, (int, float)) or value is None:
        text = repr(value)
    else:
        text = repr(_plain(value))
    text = ' '.join(text.split())
    return text if len(text) <= 80 else text[:77] + '...'


def show(value):
    """A value as messages show it (one line, shortened)."""
    return _show(value)


def kind_of(value):
    """'a string', 'a list', 'a dictionary', 'an integer', ... (plain names, never Python's)."""
    return attributes._kind(value)


def _escaped(text):
    """text with control characters written as escapes (a line break as \\n): one line, and visible."""
    return ''.join(c if not _CONTROL_RE.match(c) else repr(c)[1:-1] for c in str(text))


def _plain(value):
    """value with Ansible's tagged str/list/dict subclasses turned into plain ones (for repr)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return dict((_plain(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _fold(word):
    """What two variable or field names share when they differ only in case or in - against _."""
    return str(word).lower().replace('-', '_')


def nearest(word, choices, cutoff=0.65):
    """The choice word is a near miss of (same but for case or - and _, else the closest), or None."""
    if not isinstance(word, str):
        return None
    folded = dict((_fold(c), c) for c in choices)
    if _fold(word) in folded:
        return folded[_fold(word)]
    match = difflib.get_close_matches(_fold(word), list(folded), n=1, cutoff=cutoff)
    return folded[match[0]] if match else None


def suggest(word, choices, cutoff=0.65):
    """'; did you mean X?' for the nearest of choices, or ''."""
    match = nearest(word, choices, cutoff)
    return '; did you mean %s?' % match if match is not None else ''


class _Checker(object):
    """Checks values against argument-spec options (type, choices, required, default, elements, options)."""

    def __init__(self, host):
        self.host = host
        self.problems = []

    def problem(self, path, message):
        self.problems.append(Problem(self.host, path, message))

    def options(self, spec, values, path):
        """A dict of values checked against spec's options, defaults filled in; _INVALID entries for bad ones."""
        if not isinstance(values, dict):
            self.problem(path, '%s is %s, not a dictionary; use a mapping (key: value lines)'
                         % (_show(values), attributes._kind(values)))
            return _Invalid(values)
        out = {}
        for name in values:
            if name not in spec:
                hint = suggest(name, spec)
                self.problem('%s.%s' % (path, _escaped(name)) if path else _escaped(name),
                             'unknown field%s' % (hint or ' (%s takes %s)' % (path or 'this entry', ', '.join(sorted(spec)))))
        for name, option in spec.items():
            where = '%s.%s' % (path, name) if path else name
            if name not in values or values[name] is None:
                if option.get('required'):
                    self.problem(where, 'is missing; add it (%s)' % _first_line(option.get('description')))
                    out[name] = _INVALID
                else:
                    out[name] = copy.deepcopy(option.get('default'))
                continue
            out[name] = self.value(option, values[name], where)
        return out

    def value(self, option, value, path):
        kind = option.get('type', 'str')
        shown = 'the value (not shown: a secret)' if option.get('no_log') else _show(value)
        if kind in ('str', 'path'):
            if isinstance(value, (datetime.date, datetime.datetime)):
                value = value.isoformat()  # an unquoted YAML date
            if not isinstance(value, str):
                self.problem(path, "%s is %s, not a string; use quotes (YAML reads digits with a leading 0 as an octal "
                                   "number and yes/no as booleans)" % (shown, attributes._kind(value)))
                return _Invalid(value)
        elif kind == 'raw':
            return value  # checked by the caller, with messages that depend on other fields
        elif kind == 'int':
            if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _DIGITS_RE.match(value.strip()))):
                self.problem(path, '%s is not a whole number; use a number like %s' % (shown, option.get('default') or 3072))
                return _Invalid(value)
            value = int(value)
        elif kind == 'bool':
            if isinstance(value, str) and value != value.strip() and value.strip().lower() in _BOOL_TRUE + _BOOL_FALSE:
                # the argument specs would strip it, the bool filter of the role's conditions does not (it reads false)
                self.problem(path, '%s has white space around it, which the role\'s conditions read as false whatever the '
                                   'word; write %s without it' % (shown, value.strip().lower()))
                return _Invalid(value, value.strip().lower() in _BOOL_TRUE)
            if isinstance(value, str) and value.lower() in _BOOL_TRUE + _BOOL_FALSE:
                value = value.lower() in _BOOL_TRUE
            elif not isinstance(value, bool):
                self.problem(path, '%s is not a boolean; use true or false' % shown)
                return _Invalid(value)
        elif kind == 'list':
            if not isinstance(value, list):
                self.problem(path, '%s is %s, not a list; use a list like [%s]'
                             % (_show(value), attributes._kind(value),
                                ', '.join(str(c) for c in (option.get('choices') or ['a', 'b'])[:2])))
                return _Invalid(value)
            element = dict((k, v) for k, v in option.items() if k not in ('type', 'elements', 'default', 'required'))
            element['type'] = option.get('elements', 'str')
            checked = []
            for index, item in enumerate(value):
                label = ''
                if isinstance(item, dict) and isinstance(item.get('name'), str):
                    label = ' (%s)' % _escaped(item['name'])
                checked.append(self.value(element, item, '%s[%d]%s' % (path, index, label)))
            return checked
        elif kind == 'dict':
            if option.get('options'):
                return self.options(option['options'], value, path)
            if not isinstance(value, dict):
                self.problem(path, '%s is %s, not a dictionary; use a mapping (key: value lines)'
                             % (_show(value), attributes._kind(value)))
                return _Invalid(value)
        choices = option.get('choices')
        if choices and kind != 'list' and value not in choices:
            named = [str(c) if c != '' else "'' (empty)" for c in choices]  # an empty choice shown, not a stray comma
            self.problem(path, '%s is not one of %s%s' % (shown, ', '.join(named), suggest(value, choices)))
            # a choice written in another case is taken as that choice by the checks that depend on it
            folded = [c for c in choices if isinstance(value, str) and _fold(c) == _fold(value)]
            return _Invalid(value, folded[0] if len(folded) == 1 else None)
        return value


def _first_line(text):
    """The first clause of an option's description, as a hint of what to write."""
    if isinstance(text, list):
        text = ' '.join(text)
    text = (text or '').strip()
    return text.split('. ')[0].split(' (')[0].rstrip('.') if text else 'see the role documentation'


def _ok(*values):
    return all(not _bad(v) for v in values)


def _key_path(index, name):
    """byok_keys[N] (NAME): where a key's problems are, its name escaped to one line."""
    return 'byok_keys[%d]%s' % (index, ' (%s)' % _escaped(name) if isinstance(name, str) else '')


def _for_checking(spec):
    """The spec as the checker reads it: key_ops is checked by _check_key (its rules depend on the key type)."""
    keys = spec.get('byok_keys')
    if not isinstance(keys, dict) or not isinstance(keys.get('options'), dict) or 'key_ops' not in keys['options']:
        return spec
    options = dict(keys['options'], key_ops=dict(keys['options']['key_ops'], type='raw'))
    return dict(spec, byok_keys=dict(keys, options=options))


def check_host(spec, host, values, now=None, vaults_required=True):
    """(checked variables, problems) for one HSM host: every variable of the role's spec, defaults filled in.

    Every problem is reported in one pass: a check that depends on a refused value runs with the value as it would be
    once the reported mistake is fixed (RSA for 'rsa'), or is left out when that cannot be known.
    """
    checker = _Checker(host)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    declared = dict((k, v) for k, v in values.items() if k in spec)
    out = checker.options(_for_checking(spec), declared, '')
    if _bad(out):
        return {}, checker.problems
    if out.get('byok_hsm_vendor') == '':
        out['byok_hsm_vendor'] = 'auto'  # an AWX credential that leaves the vendor empty means: detect it
    for name in ('byok_import_parallel', 'byok_vault_parallel'):
        value = out.get(name)
        if _ok(value) and value is not None and not PARALLEL_RANGE[0] <= value <= PARALLEL_RANGE[1]:
            checker.problem(name, '%s is out of range; use %d to %d' % (value, PARALLEL_RANGE[0], PARALLEL_RANGE[1]))
    days = out.get('byok_expiry_warning_days')
    if _ok(days) and days is not None and days < 0:
        checker.problem('byok_expiry_warning_days', '%s is negative; give the days ahead to warn of an expiry, 0 or more' % days)
    _check_azure_numbers(checker, out.get('byok_azure'))
    _check_environment(checker, out.get(user_terms.HOST_ENVIRONMENT_VAR))
    vaults = out.get('byok_vaults')
    checked_vaults = {}
    if _ok(vaults):
        for vname, vvalue in sorted((vaults or {}).items()):
            checked_vaults[vname] = _check_vault(checker, vname, vvalue, now)
    out['byok_vaults'] = checked_vaults
    _check_same_vault(checker, checked_vaults)
    _check_clouds(checker, checked_vaults, out.get('byok_azure'))
    keys = out.get('byok_keys')
    # with byok_vaults refused as a whole, its own problem is the one to fix: the keys' vault names are not judged by it
    vaults_known = vaults_required and _ok(vaults)
    out['byok_keys'] = [_check_key(checker, index, key, checked_vaults if vaults_known else None, now)
                        for index, key in enumerate(keys or [])] if _ok(keys) else []
    _check_labels(checker, out['byok_keys'])
    _check_kek_names(checker, out['byok_keys'], checked_vaults)
    _check_verify_signature(checker, out.get('byok_verify_signature'), out['byok_keys'], now)
    return out, checker.problems


#: where the environment of the HSM steps is seen (prefixed to the command that starts each HSM module)
_ENV_SEEN = 'the environment of the HSM steps is put on the command line that starts each module (ps on the HSM host, -vvv)'


def _check_environment(checker, environment):
    """byok_hsm_environment: variable names with one plain value each, and no secret (it is on a command line)."""
    if not _ok(environment) or not isinstance(environment, dict):
        return
    var = user_terms.HOST_ENVIRONMENT_VAR
    for name, value in sorted(environment.items(), key=lambda kv: str(kv[0])):
        path = '%s.%s' % (var, name)
        if not user_terms.ENV_NAME_RE.match(str(name)):
            checker.problem(var, '%s is not an environment variable name; use letters, digits and _ (not first a digit)'
                            % show(name))
        elif name == user_terms.OPTION_ENVIRONMENT['user_pin']:
            checker.problem(path, '%s; remove the PIN from it and set byok_user_pin (from Ansible Vault, or a lookup of '
                                  'the variable)' % _ENV_SEEN)
        elif user_terms.secret_variables({name: value}):
            checker.problem(path, 'names a secret, and %s; keep secrets out of it (the token PIN goes in byok_user_pin)'
                            % _ENV_SEEN)
        elif isinstance(value, (dict, list)):
            checker.problem(path, 'is %s; give the variable one value (a string or a number)' % kind_of(value))


#: byok_azure's numbers the modules would refuse: (lowest, whether the lowest itself is allowed, highest, what to write)
AZURE_NUMBERS = {
    'pacing_share': (0, False, 1, 'more than 0 and at most 1 (1: all of each limit; 0.5 when another job uses the vaults '
                                  'at the same time)'),
    'pacing_window': (0, False, None, 'the seconds of the windows the vault counts requests in, more than 0 (Azure: 10)'),
    'lock_timeout': (0, True, None, 'seconds, 0 or more'),
    'import_confirm_timeout': (0, True, None, 'seconds, 0 or more'),
}


def _check_azure_numbers(checker, azure):
    if not isinstance(azure, dict):
        return
    for name, (low, low_ok, high, hint) in sorted(AZURE_NUMBERS.items()):
        value = azure.get(name)
        if not _ok(value) or value is None:
            continue
        try:
            number = float(value)  # the modules take numbers given as strings (extra vars, non-native templating)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or number is None or math.isnan(number):
            checker.problem('byok_azure.%s' % name, '%s is not a number; use %s' % (_show(value), hint))
        elif (number < low or (number == low and not low_ok)) or (high is not None and number > high):
            checker.problem('byok_azure.%s' % name, '%s is out of range; use %s' % (value, hint))


def vault_name_ok(vname):
    """A vault short name names bundle folders and files: an identifier only."""
    return isinstance(vname, str) and bool(VAULT_NAME_RE.match(vname))


def _check_vault(checker, vname, value, now):
    path = 'byok_vaults.%s' % _escaped(vname)
    if not vault_name_ok(vname):
        checker.problem(path, "%s is not a vault short name: use 1-64 letters, digits, - and _ (it names the folders and "
                              "files of a transfer bundle)" % _show(vname))
        return _INVALID
    vault = checker.options(VAULT_OPTIONS, value, path)
    if _bad(vault):
        return _INVALID
    declared = _would_be(vault['type'])
    if _ok(vault['url']) and declared is not None:
        try:
            target = VaultTarget.parse(vault['url'], declared, option='url')
        except VaultUrlError as exc:
            checker.problem(path + '.url', str(exc))
            # the kind its keys are checked against, as type or the host of the url says it
            host = re.match(r'(?i)^https?://([^/:?#@]+)(?:[:/?#]|$)', vault['url'])
            vault['kind'] = declared if declared != 'auto' else (kind_from_host(host.group(1)) if host else None)
            vault['url'] = _INVALID
        else:
            vault['url'], vault['kind'] = target.url, target.kind
            named = kind_from_host(target.host)
            if declared != 'auto' and named is not None and named != declared:
                checker.problem(path + '.type', "'%s' contradicts the url %s, which names a %s; set type: %s (or auto), or "
                                "correct the url" % (declared, target.url, VAULT_KIND_NAMES[named], named))
                vault['type'] = _Invalid(declared, named)
                vault['kind'] = named  # the vault the requests go to, for the checks of its keys
    if _ok(vault['kek_name']):
        message = _key_name_problem(vault['kek_name'])
        if message:
            checker.problem(path + '.kek_name', message)
            vault['kek_name'] = _INVALID
    if _ok(vault['kek_expires_on']) and vault['kek_expires_on']:
        message = _expiry_problem(None, vault['kek_expires_on'], now, 'a KEK created now')
        if message:
            field, dummy, message = message.partition(' ')
            checker.problem(path + '.kek_expires_on', message)
            vault['kek_expires_on'] = _INVALID
    if all(_ok(v) for v in vault.values()):
        return vault
    return _Invalid(value, dict((k, _would_be(v)) for k, v in vault.items()))


def _key_name_problem(name):
    """Why Key Vault would refuse name as a key name (the whole name: a final line break counts), or None."""
    try:
        byok_file.validate_key_name(name)
    except byok_file.ByokFormatError:
        hint = ' (it holds a line break or another control character)' if _CONTROL_RE.search(name) else ''
        return "%s is not a valid Key Vault key name%s: use 1-127 characters of 0-9, a-z, A-Z and '-'" % (_show(name), hint)
    return None


def _expiry_problem(not_before, expires_on, now, what):
    """Why the dates would not do (Key Vault's rules, and at least MIN_LIFETIME of life left), or None.

    The message starts with the field it is about."""
    try:
        dummy, exp = attributes.check_dates(not_before, expires_on, now, what=what)
    except attributes.KeyAttributeError as exc:
        return str(exc)
    if exp is not None and exp < now + MIN_LIFETIME:
        return ("expires_on %s is less than an hour after now (%s); %s would expire during or right after the transfer: "
                "give a date-time at least an hour ahead (like %s) or leave it out"
                % (_show(expires_on), now.strftime('%Y-%m-%dT%H:%M:%SZ'), what, attributes.DATE_EXAMPLE))
    return None


def _check_same_vault(checker, vaults):
    """Two names of byok_vaults for one vault would read, wrap for and import into it as if it were two."""
    first = {}
    for vname, vault in sorted(vaults.items()):
        if _bad(vault) or not _ok(vault.get('url')):
            continue
        if vault['url'] in first:
            checker.problem('byok_vaults.%s.url' % vname, "'%s' is the vault of byok_vaults.%s too (URLs compare without "
                            "case, default port and trailing slash); give each vault one entry of byok_vaults and point "
                            "the keys' vault at it" % (vault['url'], first[vault['url']]))
        else:
            first[vault['url']] = vname


def _check_clouds(checker, vaults, azure):
    """A vault in a cloud where Microsoft offers no BYOK is refused here, before any vault call or HSM work."""
    azure = azure if _ok(azure) and isinstance(azure, dict) else {}
    if azure.get('allow_unsupported_clouds') is True:
        return
    cloud = azure.get('cloud_environment') if _ok(azure.get('cloud_environment')) else None
    for vname, vault in sorted(vaults.items()):
        if _bad(vault) or not _ok(vault.get('url')):
            continue
        message = byok_refusal(vault['url'], cloud, option='vault',
                               override='byok_azure.allow_unsupported_clouds')
        if message:
            checker.problem('byok_vaults.%s.url' % vname, message)
            vault['url'] = _INVALID


def _check_key(checker, index, key, vaults, now):
    name = key.get('name') if isinstance(key, dict) else None
    path = _key_path(index, name)
    # the element spec is in the role's argument spec; checker.value() already ran it (defaults filled in)
    if _bad(key) or not isinstance(key, dict):
        return _INVALID
    if _ok(key.get('name')):
        message = _key_name_problem(key['name'])
        if message:
            checker.problem(path + '.name', message)
            key['name'] = _INVALID
    vault = None
    if _ok(key.get('vault')) and vaults is not None:
        if key['vault'] not in vaults:
            checker.problem(path + '.vault', "%s is not a vault of byok_vaults (%s)%s; add it to byok_vaults or fix the name"
                            % (_show(key['vault']), ', '.join(sorted(vaults)) or 'none defined', suggest(key['vault'], vaults)))
            near = nearest(key['vault'], vaults, cutoff=1.0)  # the same name but for case or - and _
            vault = _would_be(vaults[near]) if near is not None else None
            key['vault'] = _INVALID
        else:
            vault = _would_be(vaults[key['vault']])
    elif _ok(key.get('vault')) and not vault_name_ok(key['vault']):
        checker.problem(path + '.vault', "%s is not a vault short name: use 1-64 letters, digits, - and _ (it names the "
                                         "folders and files of a transfer bundle)" % _show(key['vault']))
        key['vault'] = _INVALID
    if key.get('label') in (None, '') and _ok(key.get('name')):
        key['label'] = key['name']
    elif isinstance(key.get('label'), str) and _CONTROL_RE.search(key['label']):
        checker.problem(path + '.label', "%s holds a control character (a line break, a tab, ...); use a label of printable "
                        "characters" % _show(key['label']))
        key['label'] = _INVALID
    if _ok(key.get('id')) and key.get('id'):
        try:
            bytes.fromhex(key['id'])
        except ValueError:
            checker.problem(path + '.id', "%s is not hex; give the CKA_ID as hex digits, e.g. 0a1b2c" % _show(key['id']))
            key['id'] = _INVALID
    kind = vault.get('kind') if isinstance(vault, dict) else None
    key_type = _check_key_spec(checker, path, key, kind)
    if key_type == 'oct' and isinstance(vault, dict) and kind is None and isinstance(vault.get('url'), str):
        # the vault would refuse the import only after a KEK and an HSM key were made for it
        checker.problem(path + '.key_type', "oct (AES) keys need a Managed HSM, and the url of vault %s (%s) does not say "
                        "whether it is one; set byok_vaults.%s.type: managed_hsm (or premium, which refuses oct keys)"
                        % (key['vault'] if _ok(key.get('vault')) else _raw(key.get('vault')), vault['url'],
                           key['vault'] if _ok(key.get('vault')) else _raw(key.get('vault'))))
    _check_protection(checker, path, key, key_type, kind)
    if key.get('rotate_after') is not None and _ok(key.get('rotate_after')):
        try:
            rotation.parse(key['rotate_after'])
        except rotation.DurationError as exc:
            checker.problem(path + '.rotate_after', str(exc))
            key['rotate_after'] = _Invalid(key['rotate_after'])
    _check_key_ops(checker, path, key, key_type)
    if _ok(key.get('tags')):
        for tag, message in attributes.tag_problems(key.get('tags'), key_type):
            checker.problem('%s.tags%s' % (path, '.%s' % _escaped(tag) if tag else ''), message)
    # each date alone first (a bad not_before must not hide an expires_on in the past), then the two together
    alone = [_expiry_problem(nbf, exp, now, 'the key') for nbf, exp in ((key.get('not_before'), None), (None, key.get('expires_on')))
             if _ok(nbf, exp)]
    if not any(alone) and _ok(key.get('not_before'), key.get('expires_on')):
        alone = [_expiry_problem(key.get('not_before'), key.get('expires_on'), now, 'the key')]
    for message in [m for m in alone if m]:
        field, dummy, message = message.partition(' ')
        checker.problem('%s.%s' % (path, field), message)
        key[field] = _INVALID
    return key


def _check_key_spec(checker, path, key, kind):
    """Type, size and curve against Azure's rules for the vault kind, every problem at once; the key type as it would be
    once fixed (None when unknown)."""
    key_type = _would_be(key.get('key_type'), ki.normalize_key_type)
    size = _would_be(key.get('key_size'))
    curve = _would_be(key.get('curve'), ki.normalize_curve)
    if key_type is None or (key_type == 'EC' and key.get('curve') is not None and curve is None):
        return key_type  # a field the others depend on is unknown: its own problem is reported
    # a size that is not a number (reported) is left out: the type's other rules are still checked
    valid = _ok(key.get('key_type'), key.get('key_size'), key.get('curve'))
    for dummy in range(3):  # each refusal names one field: report it and check the others without it
        try:
            spec = ki.validate_target(key_type, size, curve, kind)
        except ki.KeySpecError as exc:
            field = _spec_field(str(exc))
            checker.problem('%s.%s' % (path, field), str(exc))
            valid = False
            if field == 'curve' and key_type != 'EC':
                curve = None
            elif field == 'key_size':
                size = None
            else:
                break
        else:
            if valid:
                key.update(key_size=spec['key_size'], curve=spec['curve'])
            break
    if not valid:
        for field in ('key_type', 'key_size', 'curve'):
            if _ok(key.get(field)):
                key[field] = _Invalid(key.get(field), key.get(field))
    return key_type


def _check_protection(checker, path, key, key_type, kind):
    """exportable, release_policy and release_policy_immutable (Secure Key Release) against Azure's rules and the policy
    grammar (release_policy.check); key['release_policy'] becomes the policy document."""
    value = key.get('release_policy')
    if value is not None and not _ok(value):
        value = None  # refused by its type check already
    exportable = _would_be(key.get('exportable'))
    policy, problems = release_policy.check(value, key_type, kind, exportable, _would_be(key.get('release_policy_immutable')))
    for field, message in problems:
        checker.problem('%s.%s' % (path, field), message)
        name = field.split('.', 1)[0]
        if _ok(key.get(name)):
            key[name] = _Invalid(key.get(name), policy if name == 'release_policy' else key.get(name))
    if value is not None and _ok(key.get('release_policy')):
        key['release_policy'] = policy


def _check_key_ops(checker, path, key, key_type):
    """key_ops against what a target key of key_type may do: every operation's problem at once, with examples that fit
    the key type; key['key_ops'] becomes the checked list (the type's default when not given)."""
    ops = key.get('key_ops')
    exportable = _would_be(key.get('exportable')) is True
    allowed = list(ki.TARGET_KEY_OPS[key_type]) + (['export'] if exportable else []) if key_type else list(TARGET_OPS)
    whose = ' (the operations of %s keys)' % key_type if key_type else ''
    if ops is None:
        key['key_ops'] = list(ki.DEFAULT_KEY_OPS[key_type]) if key_type else _Invalid(None, list(TARGET_OPS))
        return
    if not isinstance(ops, list):
        checker.problem(path + '.key_ops', '%s is %s, not a list; use a list like %s%s'
                        % (_show(ops), attributes._kind(ops), OPS_EXAMPLE[key_type], whose))
        key['key_ops'] = _Invalid(ops)
        return
    if not ops:
        checker.problem(path + '.key_ops', 'is empty, a key that may do nothing (and Key Vault would give it every operation of '
                        'its type at import); list its operations, like %s%s, or leave key_ops out for %s'
                        % (OPS_EXAMPLE[key_type], whose, '[%s]' % ', '.join(ki.DEFAULT_KEY_OPS[key_type]) if key_type
                           else "the type's default"))
        key['key_ops'] = _Invalid(ops, list(ki.DEFAULT_KEY_OPS[key_type]) if key_type else None)
        return
    checked = []
    valid = True
    for index, op in enumerate(ops):
        where = '%s.key_ops[%d]' % (path, index)
        if not isinstance(op, str):
            checker.problem(where, '%s is %s, not a string; use one of %s%s'
                            % (_show(op), attributes._kind(op), ', '.join(allowed), whose))
            valid = False
            continue
        if op == 'import' or (op == 'export' and not exportable):
            checker.problem(where, "'%s' is not allowed for a BYOK target key (import belongs to a KEK only, export to keys "
                                   "with exportable: true and a release_policy); use %s%s" % (op, ', '.join(allowed), whose))
            valid = False
            continue
        if op not in TARGET_OPS + ('export',):
            near = nearest(op, TARGET_OPS)
            checker.problem(where, '%s is not one of %s%s%s' % (_show(op), ', '.join(allowed), whose,
                                                                suggest(op, allowed if near in allowed else TARGET_OPS)))
            valid = False
            if near is not None and _fold(near) == _fold(op):
                checked.append(near)  # Sign: taken as sign by the checks below
            continue
        if op not in allowed:
            checker.problem(where, "'%s' is not allowed for %s keys; use %s" % (op, key_type, ', '.join(allowed)))
            valid = False
        checked.append(op)
    dupes = sorted(set(op for op in checked if checked.count(op) > 1))
    if dupes:
        checker.problem(path + '.key_ops', 'lists %s twice; give each operation once' % ', '.join(dupes))
        valid = False
    key['key_ops'] = checked if valid and key_type else _Invalid(ops, checked)


def _check_verify_signature(checker, verify, keys, now):
    """byok_verify_signature makes the vault sign with every RSA and EC key after its import: a key without sign would be
    imported, then reported failed while the vault holds it."""
    if _would_be(verify) is not True:
        return
    for index, key in enumerate(keys):
        if _bad(key):
            continue
        key_type = _would_be(key.get('key_type'), ki.normalize_key_type)
        ops = _would_be(key.get('key_ops'))
        path = _key_path(index, _would_be(key.get('name')) or _raw(key.get('name')))
        if key_type not in ('RSA', 'EC') or _would_be(key.get('state')) == 'absent':
            continue
        if isinstance(ops, list) and 'sign' not in ops:
            checker.problem(path + '.key_ops',
                            '%s lacks sign, which byok_verify_signature: true needs (the vault signs with the key after the '
                            'import to prove it holds it); add sign to key_ops or set byok_verify_signature: false'
                            % _show(ops))
        if _would_be(key.get('enabled')) is False:
            checker.problem(path + '.enabled', 'is false, and byok_verify_signature: true makes the vault sign with the key '
                            'after the import, which a disabled key refuses (403); set byok_verify_signature: false for this '
                            'host, or import the key enabled and disable it later')
        nbf = _would_be(key.get('not_before'))
        try:
            not_before = attributes.parse_datetime(nbf, 'not_before') if isinstance(nbf, str) else None
        except attributes.KeyAttributeError:
            not_before = None  # its own problem is reported
        if not_before is not None and not_before > now:
            checker.problem(path + '.not_before', "'%s' is after now, and byok_verify_signature: true makes the vault sign "
                            "with the key right after the import, which a key not yet valid refuses (403); set "
                            "byok_verify_signature: false for this host, or leave not_before out until the run after that "
                            "date" % nbf)


def _raw(value):
    return value.raw if _bad(value) else value


def _spec_field(message):
    """The field a key spec refusal is about, from what validate_target says."""
    if message.startswith('curve ') or message.startswith("curve '") or 'does not match curve' in message:
        return 'curve'
    if 'can only be imported into Azure Managed HSM' in message or message.startswith('key_type'):
        return 'key_type'
    return 'key_size' if 'key_size' in message else 'key_type'


def _check_labels(checker, keys):
    """One token, one key per label: two entries may share a label (one HSM key into several vaults) only with one spec."""
    seen = {}
    names = {}
    for index, key in enumerate(keys):
        if _bad(key) or not _ok(key.get('label'), key.get('name'), key.get('vault')):
            continue
        path = 'byok_keys[%d] (%s)' % (index, key['name'])
        if key['label'] in seen and _other_key(key, seen[key['label']][1]):
            checker.problem(path + '.label', "'%s' is also the label of byok_keys[%d] with another type, size, curve or id; one "
                            "HSM label is one key: give this key its own label" % (key['label'], seen[key['label']][0]))
        seen.setdefault(key['label'], (index, key))
        if key.get('destroy_hsm_key') is True:
            users = [i for i, k in enumerate(keys) if i != index and not _bad(k) and _uses_label(k, key['label'])]
            if _would_be(key.get('state')) != 'absent':
                checker.problem(path + '.destroy_hsm_key', 'is true for a key that is not retired; set state: absent with '
                                'it (the HSM key is destroyed only after its vault deleted the key), or remove destroy_hsm_key')
            elif key.get('rotate_after') is not None:
                checker.problem(path + '.destroy_hsm_key', "is true for a key with rotate_after, whose HSM keys are several "
                                "generations (LABEL, LABEL.r2, ...); remove destroy_hsm_key and remove the generations nobody "
                                "uses with the playbook hsm_keys (docs/hsm-keys.md)")
            elif users:
                checker.problem(path + '.destroy_hsm_key', "is true, but byok_keys[%d] still uses HSM label '%s'; the key "
                                "cannot be destroyed while an entry needs it: remove destroy_hsm_key, or retire that entry "
                                "too" % (users[0], key['label']))
        later = rotation.looks_like_generation(key['label'])
        rotating = [i for i, k in enumerate(keys) if not _bad(k) and later and k.get('label') == later[0] and k.get('rotate_after')]
        if rotating:
            checker.problem(path + '.label', "'%s' is the label of a later generation of byok_keys[%d]'s HSM key (rotate_after "
                            "makes LABEL.r2, LABEL.r3, ...); give this key another label" % (key['label'], rotating[0]))
        where = (key['vault'], key_name_key(key['name']))
        if where in names:
            checker.problem(path + '.name', "'%s' is listed twice for vault %s on this host (byok_keys[%d]; Key Vault compares "
                            "names case-insensitively); give each vault key once" % (key['name'], key['vault'], names[where]))
        names.setdefault(where, index)


def _other_key(a, b):
    """Whether two entries of one label describe different HSM keys: a type, size or curve both give (as they would be once
    their reported mistakes are fixed) differs, or the ids both give do (hex, in any case; an entry without id takes the
    label's key whatever its id)."""
    for field in ('key_type', 'key_size', 'curve'):
        x, y = _would_be(a.get(field)), _would_be(b.get(field))
        if x is not None and y is not None and x != y:
            return True
    ids = [k.get('id') for k in (a, b)]
    return _ok(*ids) and all(isinstance(i, str) and i for i in ids) and ids[0].lower() != ids[1].lower()


def _uses_label(key, label):
    """Whether an entry needs the HSM key of label: it names it, or it rotates (rotate_after) and label is one of its
    generations (LABEL.rN); and it is not retired."""
    if _would_be(key.get('state')) == 'absent' or not isinstance(label, str):
        return False
    if key.get('label') == label:
        return True
    later = rotation.looks_like_generation(label)
    return bool(later and key.get('rotate_after') and key.get('label') == later[0])


def _check_kek_names(checker, keys, vaults):
    """A KEK is never a target: importing into a vault key whose current version is a KEK makes the KEK a usable key."""
    keks = [(VAULT_OPTIONS['kek_name']['default'], None)]
    for vname, vault in sorted(vaults.items()):
        kek = (_would_be(vault) or {}).get('kek_name')
        if isinstance(kek, str):
            keks.append((kek, vname))
    for index, key in enumerate(keys):
        if _bad(key) or not _ok(key.get('name')):
            continue
        owners = [vname for kek, vname in keks if key_name_key(kek) == key_name_key(key['name'])]
        if not owners:
            continue
        where = ', '.join('byok_vaults.%s.kek_name' % v for v in owners if v) or 'the default KEK name'
        checker.problem('byok_keys[%d] (%s).name' % (index, key['name']),
                        "'%s' is a KEK name (%s, compared case-insensitively as Key Vault does) and a KEK is never a target "
                        "key; give the key another name" % (key['name'], where))
        key['name'] = _INVALID


def count(n, word):
    return '%d %s%s' % (n, word, '' if n == 1 else 's')


def _natural(text):
    """A sort key that puts byok_keys[2] before byok_keys[10]."""
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', text)]


def format_problems(problems, all_hosts):
    """One line per problem; a problem every host shares (a fleet variable) is written once for all of them."""
    grouped = []
    index = {}
    for p in problems:
        key = (p.path, p.message)
        if key not in index:
            index[key] = len(grouped)
            grouped.append((p, []))
        grouped[index[key]][1].append(p.host)
    order = dict((h, i) for i, h in enumerate(all_hosts))
    grouped.sort(key=lambda item: (len(item[1]) < len(all_hosts), min(order.get(h, len(order)) for h in item[1]),
                                   _natural(item[0].path)))
    lines = []
    for p, hosts in grouped:
        if len(hosts) > 1 and sorted(hosts) == sorted(all_hosts):
            who = 'all HSM hosts'
        else:
            who = ', '.join(hosts)
        lines.append(p.line(who))
    return lines
