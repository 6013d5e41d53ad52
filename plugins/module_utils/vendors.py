# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HSM vendor profiles as data, and the decisions made from them.

Every vendor difference lives here: default library paths, the environment a library needs,
how a token is recognised, attributes a vendor needs on generated keys, the preferred wrap path,
firmware gates and known quirks.  Modules and roles never branch on a vendor name; they ask a
profile.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError

VENDOR_CHOICES = ('auto', 'luna', 'nshield', 'softhsm', 'generic')
WRAP_METHODS = ('auto', 'combined', 'two_step')

# CKM_RSA_AES_KEY_WRAP (PKCS#11 v2.40); python-pkcs11 0.10 has no enum member for it
CKM_RSA_AES_KEY_WRAP = 0x00001054
CKM_AES_KEY_WRAP_PAD = 0x0000210A
CKM_RSA_PKCS_OAEP = 0x00000009


class VendorError(ByokError, ValueError):
    """A vendor gate refused the operation; the message says why and what to do."""


PROFILES = {
    'luna': {
        'display_name': 'Thales Luna 7',
        'library_paths': ['/usr/safenet/lunaclient/lib/libCryptoki2_64.so', '/usr/lib/libCryptoki2_64.so',
                          '/opt/safenet/lunaclient/lib/libCryptoki2_64.so'],
        # The Luna client finds its configuration through this variable (default /etc/Chrystoki.conf)
        'environment_defaults': {'ChrystokiConfigurationPath': '/etc'},
        'required_files': [('ChrystokiConfigurationPath', 'Chrystoki.conf')],
        'manufacturers': ('safenet', 'thales', 'gemalto'),
        'token_selection': 'partition label (token_label) or partition serial number (token_serial)',
        'user_role': 'Crypto Officer',
        'preferred_wrap': ('combined', 'two_step'),
        'min_firmware': (7, 3),
        # (key_type, key_size) -> minimum firmware for that target
        'firmware_gates': {('RSA', 4096): (7, 4)},
        'private_key_attributes': {'extractable': True, 'sensitive': True, 'private': True},
        'quirks': {},
        'legacy_methods': {},
    },
    'nshield': {
        'display_name': 'Entrust nShield',
        'library_paths': ['/opt/nfast/toolkits/pkcs11/libcknfast.so'],
        # Load-sharing presents one slot per protection (module, softcards, OCS) across modules
        'environment_defaults': {'CKNFAST_LOADSHARING': '1'},
        'required_files': [],
        'manufacturers': ('ncipher', 'entrust'),
        'token_selection': 'the module token (label "accelerator"), a softcard or an OCS card set by label (token_label)',
        'user_role': 'softcard or OCS passphrase (module-protected keys need none)',
        'preferred_wrap': ('combined', 'two_step'),
        'min_firmware': None,
        'firmware_gates': {},
        # nShield only lets a key be wrapped when it is created extractable; CKA_SENSITIVE keeps it
        # out of reach in clear, and CKNFAST_OVERRIDE_SECURITY_ASSURANCES is not needed for this.
        'private_key_attributes': {'extractable': True, 'sensitive': True, 'private': True},
        'quirks': {},
        'legacy_methods': {
            'KeyTransferRemote': (
                "The legacy nShield BYOK method (KeyTransferRemote.exe with region-specific Security World packages) "
                "was deprecated by Microsoft and is unsupported since 30 June 2021; Azure no longer accepts its "
                "packages. Use the current vendor-agnostic method, which this collection implements: leave "
                "nshield_legacy_method unset; the nshield role generates and wraps on the HSM host (hsm_keygen, "
                "byok_wrap) and the controller fetches the KEK and imports (byok_kek_fetch, keyvault_import), as the "
                "transfer role does."),
        },
    },
    'softhsm': {
        'display_name': 'SoftHSM v2',
        'library_paths': ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
                          '/usr/lib64/pkcs11/libsofthsm2.so', '/usr/local/lib/softhsm/libsofthsm2.so'],
        'environment_defaults': {},
        'required_files': [],
        'manufacturers': ('softhsm',),
        'token_selection': 'token label (token_label) or serial (token_serial)',
        'user_role': 'user PIN',
        'preferred_wrap': ('combined', 'two_step'),
        'min_firmware': None,
        'firmware_gates': {},
        'private_key_attributes': {'extractable': True, 'sensitive': True, 'private': True},
        'quirks': {
            # SoftHSM < 2.7 zero-pads a private key's PKCS#8 encoding to a multiple of 8 bytes before
            # any symmetric wrap, also for RFC 5649 (padded) key wrap.
            'private_key_wrap_zero_padding': {'library_below': (2, 7)},
        },
        'legacy_methods': {},
    },
    'generic': {
        'display_name': 'PKCS#11 HSM',
        'library_paths': [],
        'environment_defaults': {},
        'required_files': [],
        'manufacturers': (),
        'token_selection': 'token label (token_label) or serial (token_serial)',
        'user_role': 'user PIN',
        'preferred_wrap': ('combined', 'two_step'),
        'min_firmware': None,
        'firmware_gates': {},
        'private_key_attributes': {'extractable': True, 'sensitive': True, 'private': True},
        'quirks': {},
        'legacy_methods': {},
    },
}


def get_profile(name):
    if name not in PROFILES:
        raise VendorError("vendor '%s' is unknown; use one of %s" % (name, ', '.join(VENDOR_CHOICES)))
    return dict(PROFILES[name], name=name)


def detect(manufacturer_id):
    """The profile name for a token/library manufacturer string; 'generic' when none matches."""
    text = (manufacturer_id or '').lower()
    for name, profile in PROFILES.items():
        if any(m in text for m in profile['manufacturers']):
            return name
    return 'generic'


def resolve(vendor, manufacturer_id):
    """The profile for a vendor option value ('auto' reads the manufacturer)."""
    return get_profile(detect(manufacturer_id) if vendor in (None, 'auto') else vendor)


def default_library(vendor, exists=os.path.exists):
    """The first existing default library path of a vendor, or None."""
    if vendor in (None, 'auto'):
        candidates = [p for name in ('luna', 'nshield', 'softhsm') for p in PROFILES[name]['library_paths']]
    else:
        candidates = get_profile(vendor)['library_paths']
    for path in candidates:
        if exists(path):
            return path
    return None


def library_environment(profile, environ=None):
    """Variables the vendor library needs that are not set yet (name -> default value)."""
    environ = os.environ if environ is None else environ
    return dict((k, v) for k, v in profile['environment_defaults'].items() if k not in environ)


def missing_files(profile, environ=None, exists=os.path.exists):
    """Configuration files the vendor library needs that are absent, as readable strings."""
    environ = os.environ if environ is None else environ
    missing = []
    for var, filename in profile['required_files']:
        directory = environ.get(var, profile['environment_defaults'].get(var, ''))
        path = os.path.join(directory, filename)
        if not exists(path):
            missing.append('%s (from %s=%s)' % (path, var, directory))
    return missing


def _version_tuple(value):
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return tuple(int(p) for p in str(value).split('.') if p.isdigit())


def _fmt(version):
    return '.'.join(str(v) for v in version)


def check_firmware(profile, firmware, key_type=None, key_size=None):
    """Raise VendorError when the token firmware is below what the vendor needs for this target."""
    fw = _version_tuple(firmware)
    if fw is None:
        return
    minimum = profile.get('min_firmware')
    if minimum and fw < tuple(minimum):
        raise VendorError('%s firmware %s is below %s, the minimum for BYOK to Azure Key Vault; upgrade the HSM firmware'
                          % (profile['display_name'], _fmt(fw), _fmt(minimum)))
    gate = profile.get('firmware_gates', {}).get((key_type, key_size))
    if gate and fw < tuple(gate):
        raise VendorError('%s firmware %s cannot transfer %s-%s keys to Azure (needs %s or later); upgrade the firmware or '
                          'choose another key size' % (profile['display_name'], _fmt(fw), key_type, key_size, _fmt(gate)))


def choose_wrap_method(profile, requested, mechanisms):
    """combined or two_step from the wrap_method option and the token's mechanism list (ints)."""
    mechanisms = set(int(m) for m in mechanisms)
    has_combined = CKM_RSA_AES_KEY_WRAP in mechanisms
    has_two_step = CKM_AES_KEY_WRAP_PAD in mechanisms and CKM_RSA_PKCS_OAEP in mechanisms
    available = {'combined': has_combined, 'two_step': has_two_step}
    if requested in (None, 'auto'):
        for method in profile['preferred_wrap']:
            if available[method]:
                return method
        raise VendorError('the token offers neither CKM_RSA_AES_KEY_WRAP nor CKM_AES_KEY_WRAP_PAD with CKM_RSA_PKCS_OAEP; '
                          'it cannot wrap keys for Azure BYOK (check the HSM firmware and its mechanism policy)')
    if not available[requested]:
        need = 'CKM_RSA_AES_KEY_WRAP' if requested == 'combined' else 'CKM_AES_KEY_WRAP_PAD and CKM_RSA_PKCS_OAEP'
        other = 'two_step' if requested == 'combined' else 'combined'
        hint = (" or wrap_method: %s, which this token supports" % other) if available[other] else ''
        raise VendorError('wrap_method %s needs %s, which the token does not offer; use wrap_method: auto%s'
                          % (requested, need, hint))
    return requested


def zero_padding_quirk(profile, library_version):
    """True when this library zero-pads private keys before a symmetric wrap (see the softhsm profile)."""
    quirk = profile.get('quirks', {}).get('private_key_wrap_zero_padding')
    if not quirk:
        return False
    version = _version_tuple(library_version)
    return version is not None and version < tuple(quirk['library_below'])


def legacy_method_error(profile, method):
    """The message for a retired vendor method, or None when the method is not a known legacy one."""
    return profile.get('legacy_methods', {}).get(method)
