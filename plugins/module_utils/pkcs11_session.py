# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A PKCS#11 session for BYOK, over python-pkcs11: one library load, one token, one login per module run, the
token's facts, and the one place PKCS#11 errors become messages.

TokenSession loads the library (clearing the OpenSSL error queue some libraries leave filled), selects the token by
label or serial, logs in once and lists the mechanisms; explain() turns a PKCS11Error into a line naming the call, the
mechanism, the CKR_ code and what to do.  The PIN is only handed to C_Login; no object here keeps it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import os
import traceback

from ansible_collections.byok.keyvault.plugins.module_utils import host_lock
from ansible_collections.byok.keyvault.plugins.module_utils import vendors
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError

PKCS11_IMPORT_ERROR = None
try:
    import pkcs11
    from pkcs11 import exceptions as p11e
except ImportError:  # pragma: no cover - exercised on hosts without the library
    PKCS11_IMPORT_ERROR = traceback.format_exc()


class HsmError(ByokError):
    """A failure with a message that names the input and the fix; never carries a secret."""


def clear_openssl_errors():
    """Empty OpenSSL's per-thread error queue, which some PKCS#11 libraries leave filled on load.

    An error left there makes the next TLS read in this thread fail after the request was sent.
    """
    name = ctypes.util.find_library('crypto')
    if not name:
        return
    try:
        ctypes.CDLL(name).ERR_clear_error()
    except (OSError, AttributeError):
        pass


#: what to do about a CKR_ code, where the code alone does not say it
_FIX = {
    'PinIncorrect': 'user_pin was refused by the token; it was tried once and not retried, because HSMs lock a user '
                    'after a few failures: check user_pin before the next run',
    'PinLocked': 'the token user is locked after too many wrong PINs; the HSM security officer must unlock or reset the '
                 'user PIN',
    'PinExpired': 'the user PIN has expired; set a new PIN with the vendor tool',
    'PinLenRange': 'user_pin has a length the token does not accept; check user_pin',
    'UserPinNotInitialized': 'the token has no user PIN yet; initialise the token user first',
    'TokenNotPresent': 'the token is not present; check the HSM connection and the slot',
    'DeviceRemoved': 'the HSM went away during the operation; check the connection and run again',
    'DeviceError': 'the HSM reported a device error; check the HSM logs and run again',
    'DeviceMemory': 'the HSM is out of memory; free objects on the token',
    'GeneralError': 'the token reported a general failure; check the HSM and its client logs, then run again',
    'KeyUnextractable': 'the key is not extractable: it was generated without CKA_EXTRACTABLE, or sealed after its transfer '
                        '(hsm_seal, byok_hsm_seal_after_transfer), so the HSM will not wrap it and it can go to no further '
                        'vault; generate a new key under another label (or with regenerate: always, which destroys this one)',
    'KeyNotWrappable': 'the HSM refuses to wrap this key; check the key policy on the HSM',
    'MechanismInvalid': 'the token does not offer this mechanism',
    'MechanismParamInvalid': 'the token refused the mechanism parameters',
    'TemplateInconsistent': 'the token refused this combination of key attributes; check the vendor policy for them',
    'AttributeValueInvalid': 'the token refused a value of the key attributes; check the vendor policy for them',
    'SessionCount': 'the token has no free session; close other applications and run again',
    'TokenWriteProtected': 'the token is write-protected; log in as a user that may create keys',
}


def explain(exc, action, call=None, mechanism=None, template=None):
    """One line for a PKCS11Error raised while doing `action`: the PKCS#11 call, the mechanism, the CKR_ code, the
    attributes asked for (template: a dict of names to values, never key material) and what to do."""
    name = type(exc).__name__
    where = ' '.join(x for x in (call, ('with %s' % vendors.mechanism_name(mechanism)) if mechanism is not None else '')
                     if x)
    line = 'PKCS#11 %s failed%s: %s' % (action, (' (%s)' % where) if where else '', exc_code(exc))
    if template:
        line += ' for the attributes %s' % ', '.join('%s=%s' % (k, v) for k, v in template.items())
    fix = _FIX.get(name)
    return line + ('; %s' % fix if fix else '')


def exc_code(exc):
    """The CKR_ name of a python-pkcs11 exception (its class name in CKR_ spelling), or its text."""
    name = type(exc).__name__
    if name == 'PKCS11Error':
        text = str(exc).strip()
        if 'buffer' in text.lower() and 'small' in text.lower():
            return 'CKR_BUFFER_TOO_SMALL'
        return text or 'an unnamed PKCS#11 error'
    return ckr_name(name)


#: python-pkcs11 class names whose CKR_ spelling is not their upper-case snake form
_CKR_SPELLING = {'TokenNotRecognised': 'CKR_TOKEN_NOT_RECOGNIZED', 'RandomNoRNG': 'CKR_RANDOM_NO_RNG',
                 'AnotherUserAlreadyLoggedIn': 'CKR_USER_ANOTHER_ALREADY_LOGGED_IN'}


def ckr_name(class_name):
    if class_name in _CKR_SPELLING:
        return _CKR_SPELLING[class_name]
    out = []
    for i, ch in enumerate(class_name):
        if ch.isupper() and i and not class_name[i - 1].isupper():
            out.append('_')
        out.append(ch.upper())
    return 'CKR_' + ''.join(out)


def token_label(token):
    return (token.label or '').strip()


def token_serial(token):
    serial = token.serial
    if isinstance(serial, bytes):
        serial = serial.decode('ascii', 'replace')
    return (serial or '').strip()


def version_text(value):
    if value is None:
        return None
    if isinstance(value, tuple):
        return '.'.join(str(v) for v in value)
    return str(value)


class TokenSession(object):
    """One PKCS#11 library, one token, one logged-in session; use as a context manager."""

    def __init__(self, module_path, token_label=None, token_serial=None, vendor='auto'):
        if PKCS11_IMPORT_ERROR:
            raise HsmError('python-pkcs11 is not installed on this host')
        self.module_path = module_path
        self.token_label = token_label
        self.token_serial = token_serial
        self.vendor = vendor
        self.lib = None
        self.token = None
        self.session = None
        self.profile = None
        self._mechanisms = None

    # -- opening -----------------------------------------------------------------------------
    def _load(self):
        path = self.module_path or vendors.default_library(self.vendor)
        if not path:
            raise HsmError('pkcs11_module is not set and no default library of vendor %s was found; set pkcs11_module '
                           '(or PKCS11_MODULE) to the path of the HSM\'s PKCS#11 library' % self.vendor)
        if not os.path.exists(path):
            raise HsmError("pkcs11_module %s does not exist; set pkcs11_module to the HSM's PKCS#11 library "
                           "(e.g. libCryptoki2_64.so for Luna, libcknfast.so for nShield)" % path)
        if self.vendor not in (None, 'auto'):
            profile = vendors.get_profile(self.vendor)
            for name, value in vendors.library_environment(profile).items():
                os.environ[name] = value
            missing = vendors.missing_files(profile)
            if missing:
                raise HsmError('%s client configuration is missing: %s; install and configure the vendor client first'
                               % (profile['display_name'], ', '.join(missing)))
        try:
            self.lib = pkcs11.lib(path)
        except (RuntimeError, OSError, p11e.PKCS11Error) as exc:
            raise HsmError('pkcs11_module %s could not be loaded as a PKCS#11 library (%s); check the path and that the vendor '
                           'client is installed for this architecture' % (path, exc))
        finally:
            clear_openssl_errors()
        self.module_path = path

    def _is_chosen(self, token):
        """Whether a token matches the token_label and token_serial asked for (either may be unset)."""
        label_ok = not self.token_label or token_label(token) == self.token_label
        serial_ok = not self.token_serial or token_serial(token) == self.token_serial
        return label_ok and serial_ok

    def _select_token(self):
        if not self.token_label and not self.token_serial:
            raise HsmError('neither token_label nor token_serial is set; set one (or PKCS11_TOKEN_LABEL) to choose the token')
        try:
            tokens = list(self.lib.get_tokens())
            chosen = [t for t in tokens if self._is_chosen(t)]
        except p11e.PKCS11Error as exc:
            raise HsmError(explain(exc, 'listing of the tokens of %s' % self.module_path, call='C_GetSlotList/C_GetTokenInfo'))
        if not chosen:
            available = ', '.join("'%s' (serial %s)" % (token_label(t), token_serial(t)) for t in tokens if token_label(t))
            wanted = ' and '.join(x for x in (
                ("token_label '%s'" % self.token_label) if self.token_label else '',
                ("token_serial '%s'" % self.token_serial) if self.token_serial else '') if x)
            available = available or 'none (initialise a token first)'
            # where the vendor profile knows the variable that points the library at its tokens, name what it read
            config = vendors.configuration_read(self._library_profile())
            if config and not config[2]:
                raise HsmError('no token with %s in %s, which read its default configuration %s because %s is not set; '
                               'available tokens: %s; set %s to the configuration that lists the token, or fix '
                               'token_label/token_serial'
                               % (wanted, self.module_path, config[1], config[0], available, config[0]))
            if config:
                raise HsmError('no token with %s in %s, configured by %s=%s; available tokens: %s; fix '
                               'token_label/token_serial or %s'
                               % (wanted, self.module_path, config[0], config[1], available, config[0]))
            raise HsmError('no token with %s in %s; available tokens: %s; fix token_label/token_serial'
                           % (wanted, self.module_path, available))
        if len(chosen) > 1:
            raise HsmError("%d tokens carry the label '%s'; set token_serial to choose one (serials: %s)"
                           % (len(chosen), self.token_label, ', '.join(token_serial(t) for t in chosen)))
        self.token = chosen[0]
        manufacturer = '%s %s %s' % (self.token.manufacturer_id, self.token.model, self.lib.manufacturer_id)
        self.profile = vendors.resolve(self.vendor, manufacturer, version_text(getattr(self.token, 'firmware_version', None)))

    def _library_profile(self):
        """The vendor profile of the loaded library (before a token is chosen): the vendor asked for, or detected."""
        try:
            return vendors.resolve(self.vendor, getattr(self.lib, 'manufacturer_id', ''))
        except vendors.VendorError:
            return vendors.get_profile('generic')

    def open(self, user_pin):
        """Load the library, select the token and log in once.  user_pin is used here and not kept."""
        self._load()
        self._select_token()
        if not user_pin:
            raise HsmError("user_pin is not set; give the %s (option user_pin or PKCS11_USER_PIN)" % self.profile['user_role'])
        try:
            self.session = self.token.open(rw=True, user_pin=user_pin)
        except p11e.PKCS11Error as exc:
            raise HsmError(explain(exc, "login to token '%s'" % token_label(self.token), call='C_Login'))
        return self

    def close(self):
        if self.session is not None:
            try:
                self.session.close()
            except p11e.PKCS11Error:
                pass
            self.session = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- facts -------------------------------------------------------------------------------
    @property
    def mechanisms(self):
        if self._mechanisms is None:
            try:
                self._mechanisms = set(int(m) for m in self.token.slot.get_mechanisms())
            except p11e.PKCS11Error as exc:
                raise HsmError(explain(exc, "listing of the mechanisms of token '%s'" % token_label(self.token),
                                       call='C_GetMechanismList'))
        return self._mechanisms

    def info_basic(self):
        """Token facts for results and manifests (no secrets), without testing anything."""
        return {
            'vendor': self.profile['name'],
            'vendor_name': self.profile['display_name'],
            'library': self.module_path,
            'library_description': (self.lib.library_description or '').strip(),
            'library_version': version_text(self.lib.library_version),
            'manufacturer': (self.token.manufacturer_id or '').strip(),
            'model': (self.token.model or '').strip(),
            'label': token_label(self.token),
            'serial': token_serial(self.token),
            'firmware_version': version_text(getattr(self.token, 'firmware_version', None)),
            'hardware_version': version_text(getattr(self.token, 'hardware_version', None)),
        }

    def check_generation(self, spec):
        """Refuse, before anything is created, a key type the token does not list a generation mechanism for."""
        mechanism = vendors.GENERATION_MECHANISMS[spec['key_type']]
        if mechanism not in self.mechanisms:
            raise HsmError("token '%s' cannot generate %s keys: it does not offer %s; nothing was generated. Use a key type "
                           "the token generates, or another HSM"
                           % (token_label(self.token), spec['key_type'], vendors.mechanism_name(mechanism)))

    def lock(self):
        """An exclusive lock per token on this host, so two runs do not create the same key twice."""
        return host_lock.exclusive('token', self.module_path, token_serial(self.token), token_label(self.token),
                                   error=HsmError)
