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
# Thales Luna's vendor-defined CKM_AES_KWP (RFC 5649 / SP 800-38F KWP), what Luna 5/6 firmware offers for the AES step
CKM_LUNA_AES_KWP = 0x80000171
#: AES key-wrap-with-padding mechanisms for the two-step wrap, in the order a profile without kwp_mechanisms tries them
DEFAULT_KWP_MECHANISMS = (CKM_AES_KEY_WRAP_PAD,)
MECHANISM_NAMES = {CKM_RSA_AES_KEY_WRAP: 'CKM_RSA_AES_KEY_WRAP', CKM_AES_KEY_WRAP_PAD: 'CKM_AES_KEY_WRAP_PAD',
                   CKM_RSA_PKCS_OAEP: 'CKM_RSA_PKCS_OAEP', CKM_LUNA_AES_KWP: 'CKM_AES_KWP (Luna, 0x80000171)'}


class VendorError(ByokError, ValueError):
    """A vendor gate refused the operation; the message says why and what to do."""


#: what every profile has unless it says otherwise: a PKCS#11 HSM chosen by label or serial, with a user PIN, the
#: wrap path chosen from the token's mechanisms, and target keys made private, sensitive and extractable
DEFAULTS = {
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
    # True where the token supports trusted wrapping keys (CKA_TRUSTED, set by its security officer) and the wrap path
    # uses one: target keys are then generated with CKA_WRAP_WITH_TRUSTED, so only a trusted key can wrap them out
    'trusted_wrapping_keys': False,
    'quirks': {},
    'legacy_methods': {},
}

#: what the Luna client gives every Luna profile
LUNA_CLIENT = {
    'library_paths': ['/usr/safenet/lunaclient/lib/libCryptoki2_64.so', '/usr/lib/libCryptoki2_64.so',
                      '/opt/safenet/lunaclient/lib/libCryptoki2_64.so'],
    # The Luna client finds its configuration through this variable (default /etc/Chrystoki.conf)
    'environment_defaults': {'ChrystokiConfigurationPath': '/etc'},
    'required_files': [('ChrystokiConfigurationPath', 'Chrystoki.conf')],
    'token_selection': 'partition label (token_label) or partition serial number (token_serial)',
    'user_role': 'Crypto Officer',
}


def _profile(*parts, **fields):
    """A profile: DEFAULTS, then each part, then the fields (later ones win)."""
    out = dict(DEFAULTS)
    for part in parts:
        out.update(part)
    out.update(fields)
    return out


PROFILES = {
    'luna': _profile(
        LUNA_CLIENT,
        display_name='Thales Luna 7',
        manufacturers=('safenet', 'thales', 'gemalto', 'luna'),
        min_firmware=(7, 3),
        # (key_type, key_size) -> minimum firmware for that target
        firmware_gates={('RSA', 4096): (7, 4)},
        # a Luna token whose firmware falls in a variant's firmware_range takes that variant's profile
        variants=('luna56',),
    ),
    # Microsoft's BYOK table: "SafeNet Luna HSM 5 & 6 family (Key Export variant only)".  The Key Export (KE) models
    # let a private key leave the partition wrapped when partition policy 1 "Allow private key wrapping" is on; the
    # cloning models (and a KE partition with the policy off) only clone private keys to other Luna HSMs.
    'luna56': _profile(
        LUNA_CLIENT,
        display_name='Thales Luna 5/6 (Key Export)',
        family='luna',
        firmware_range=((5, 0), (7, 0)),
        manufacturers=(),  # reached through the luna profile's variants, never detected on its own
        # firmware 5/6 has no CKM_RSA_AES_KEY_WRAP: the two steps, the AES one with Luna's CKM_AES_KWP (RFC 5649), the
        # RSA one with CKM_RSA_PKCS_OAEP (SHA-1, MGF1-SHA-1, no label: what Azure unwraps)
        preferred_wrap=('two_step',),
        kwp_mechanisms=(CKM_LUNA_AES_KWP, CKM_AES_KEY_WRAP_PAD),
        # the largest target sizes (Azure's own largest; no smaller limit of Luna 5/6 firmware applies)
        max_key_sizes={'RSA': 4096},
        # private keys must be wrappable off the partition: probed at login, before any key is generated
        private_key_wrap={
            'policy': 'partition policy 1 "Allow private key wrapping"',
            'refused': ('a cloning (non Key Export) Luna 5/6, or a Key Export partition with partition policy 1 "Allow '
                        'private key wrapping" off'),
            'fix': ('use a Luna 5/6 Key Export HSM whose partition SO turns the policy on (lunacm or lunash: partition '
                    'changePolicy -policy 1 -value 1, which needs policy 0 "Allow private key cloning" off), or a Luna 7 '
                    'with firmware 7.3 or later'),
        },
    ),
    'nshield': _profile(
        display_name='Entrust nShield',
        library_paths=['/opt/nfast/toolkits/pkcs11/libcknfast.so'],
        # Load-sharing presents one slot per protection (module, softcards, OCS) across modules
        environment_defaults={'CKNFAST_LOADSHARING': '1'},
        manufacturers=('ncipher', 'entrust'),
        token_selection='the module token (label "accelerator"), a softcard or an OCS card set by label (token_label)',
        user_role='softcard or OCS passphrase (module-protected keys need none)',
        # nShield only lets a key be wrapped when it is created extractable; CKA_SENSITIVE keeps it
        # out of reach in clear, and CKNFAST_OVERRIDE_SECURITY_ASSURANCES is not needed for this.
        legacy_methods={
            'KeyTransferRemote': (
                "The legacy nShield BYOK method (KeyTransferRemote.exe with region-specific Security World packages) "
                "was deprecated by Microsoft and is unsupported since 30 June 2021; Azure no longer accepts its "
                "packages. Use the current vendor-agnostic method, which this collection implements: leave "
                "nshield_legacy_method unset; the nshield role generates and wraps on the HSM host (hsm_keygen, "
                "byok_wrap) and the controller fetches the KEK and imports (byok_kek_fetch, keyvault_import), as the "
                "transfer role does."),
        },
    ),
    'softhsm': _profile(
        display_name='SoftHSM v2',
        library_paths=['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
                       '/usr/lib64/pkcs11/libsofthsm2.so', '/usr/local/lib/softhsm/libsofthsm2.so'],
        manufacturers=('softhsm',),
        quirks={
            # SoftHSM < 2.7 zero-pads a private key's PKCS#8 encoding to a multiple of 8 bytes before
            # any symmetric wrap, also for RFC 5649 (padded) key wrap.
            'private_key_wrap_zero_padding': {'library_below': (2, 7)},
        },
    ),
    'generic': _profile(),
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


def resolve(vendor, manufacturer_id, firmware=None):
    """The profile for a vendor option value ('auto' reads the manufacturer), refined by firmware to a variant."""
    profile = get_profile(detect(manufacturer_id) if vendor in (None, 'auto') else vendor)
    return variant_for_firmware(profile, firmware)


def variant_for_firmware(profile, firmware):
    """The variant of profile whose firmware_range holds firmware (low included, high excluded), else profile."""
    fw = _version_tuple(firmware)
    if not fw:
        return profile
    for name in profile.get('variants', ()):
        low, high = PROFILES[name]['firmware_range']
        if tuple(low) <= fw < tuple(high):
            return get_profile(name)
    return profile


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
    largest = profile.get('max_key_sizes', {}).get(key_type)
    if largest and key_size and key_size > largest:
        raise VendorError('%s cannot transfer %s-%s keys (at most %s-%s); choose a smaller key_size'
                          % (profile['display_name'], key_type, key_size, key_type, largest))
    gate = profile.get('firmware_gates', {}).get((key_type, key_size))
    if gate and fw < tuple(gate):
        raise VendorError('%s firmware %s cannot transfer %s-%s keys to Azure (needs %s or later); upgrade the firmware or '
                          'choose another key size' % (profile['display_name'], _fmt(fw), key_type, key_size, _fmt(gate)))


def kwp_mechanism(profile, mechanisms):
    """The AES key-wrap-with-padding mechanism (int) for the two-step wrap that the token offers, or None."""
    mechanisms = set(int(m) for m in mechanisms)
    for mechanism in profile.get('kwp_mechanisms') or DEFAULT_KWP_MECHANISMS:
        if mechanism in mechanisms:
            return mechanism
    return None


def _kwp_names(profile):
    return ' or '.join(MECHANISM_NAMES.get(m, '0x%08x' % m) for m in profile.get('kwp_mechanisms') or DEFAULT_KWP_MECHANISMS)


def choose_wrap_method(profile, requested, mechanisms):
    """combined or two_step from the wrap_method option, the profile and the token's mechanism list (ints)."""
    mechanisms = set(int(m) for m in mechanisms)
    has_combined = CKM_RSA_AES_KEY_WRAP in mechanisms
    has_two_step = kwp_mechanism(profile, mechanisms) is not None and CKM_RSA_PKCS_OAEP in mechanisms
    available = {'combined': has_combined and 'combined' in profile['preferred_wrap'], 'two_step': has_two_step}
    if requested in (None, 'auto'):
        for method in profile['preferred_wrap']:
            if available[method]:
                return method
        if 'combined' not in profile['preferred_wrap']:
            raise VendorError('%s needs %s with CKM_RSA_PKCS_OAEP for the two-step wrap, which the token does not offer; '
                              'check the HSM firmware and its mechanism policy' % (profile['display_name'], _kwp_names(profile)))
        raise VendorError('the token offers neither CKM_RSA_AES_KEY_WRAP nor %s with CKM_RSA_PKCS_OAEP; '
                          'it cannot wrap keys for Azure BYOK (check the HSM firmware and its mechanism policy)'
                          % _kwp_names(profile))
    if requested == 'combined' and 'combined' not in profile['preferred_wrap']:
        raise VendorError('wrap_method combined needs CKM_RSA_AES_KEY_WRAP, which %s firmware does not have; use wrap_method: '
                          'auto or two_step' % profile['display_name'])
    if not available[requested]:
        need = 'CKM_RSA_AES_KEY_WRAP' if requested == 'combined' else '%s and CKM_RSA_PKCS_OAEP' % _kwp_names(profile)
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


def needs_private_key_wrap_probe(profile, key_type):
    """True when the profile must prove, before generating, that the partition lets private keys be wrapped."""
    return bool(profile.get('private_key_wrap')) and key_type in ('RSA', 'EC')


def refuse_private_key_wrap(profile, token_label, model, firmware, cause):
    """Raise VendorError for a partition that will not wrap private keys (cause: what the probe saw)."""
    rule = profile['private_key_wrap']
    what = (token_label, profile['display_name'], model or 'model unknown', firmware, cause, rule['refused'], rule['fix'])
    raise VendorError("partition '%s' (%s %s, firmware %s) does not let private keys be wrapped off the HSM (%s): it is %s; "
                      "nothing was generated. To fix, %s" % what)
