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
CKM_RSA_PKCS_OAEP = 0x00000009
# AES key wrap with padding.  PKCS#11 (v2.40, 3.x) defines CKM_AES_KEY_WRAP_PAD as RFC 3394 over PKCS#7 padding and
# CKM_AES_KEY_WRAP_KWP as RFC 5649, the only one Azure unwraps; SoftHSM 2.6.1 computes RFC 5649 under 0x210A; Thales
# Luna has its own CKM_AES_KWP.  Names and numbers prove nothing: pkcs11_wrap proves each candidate before use.
CKM_AES_KEY_WRAP_PAD = 0x0000210A
CKM_AES_KEY_WRAP_KWP = 0x0000210B
CKM_LUNA_AES_KWP = 0x80000171
#: the AES key-wrap candidates of a profile without kwp_mechanisms, in the order they are tried (standard code first)
DEFAULT_KWP_MECHANISMS = (CKM_AES_KEY_WRAP_KWP, CKM_AES_KEY_WRAP_PAD)
#: the mechanism that generates each kind of target key
GENERATION_MECHANISMS = {'RSA': 0x00000000, 'EC': 0x00001040, 'oct': 0x00001080}
MECHANISM_NAMES = {CKM_RSA_AES_KEY_WRAP: 'CKM_RSA_AES_KEY_WRAP', CKM_AES_KEY_WRAP_PAD: 'CKM_AES_KEY_WRAP_PAD (0x210A)',
                   CKM_AES_KEY_WRAP_KWP: 'CKM_AES_KEY_WRAP_KWP (0x210B)', CKM_RSA_PKCS_OAEP: 'CKM_RSA_PKCS_OAEP',
                   CKM_LUNA_AES_KWP: 'CKM_AES_KWP (Luna, 0x80000171)', 0x00000000: 'CKM_RSA_PKCS_KEY_PAIR_GEN',
                   0x00001040: 'CKM_EC_KEY_PAIR_GEN', 0x00001080: 'CKM_AES_KEY_GEN'}


def mechanism_name(mechanism):
    return MECHANISM_NAMES.get(mechanism, '0x%08x' % mechanism)


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
    'legacy_methods': {},
    # The environment variable that tells the library where its configuration (and so its tokens) is, and what the
    # library reads when it is not set; messages name both when a token is not found
    'config_variable': None,
    'config_defaults': (),
}

#: what the Luna client gives every Luna profile
LUNA_CLIENT = {
    'library_paths': ['/usr/safenet/lunaclient/lib/libCryptoki2_64.so', '/usr/lib/libCryptoki2_64.so',
                      '/opt/safenet/lunaclient/lib/libCryptoki2_64.so'],
    # The Luna client finds its configuration through this variable (default /etc/Chrystoki.conf)
    'environment_defaults': {'ChrystokiConfigurationPath': '/etc'},
    'config_variable': 'ChrystokiConfigurationPath',
    'config_defaults': ('/etc',),
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
        kwp_mechanisms=(CKM_LUNA_AES_KWP, CKM_AES_KEY_WRAP_KWP, CKM_AES_KEY_WRAP_PAD),
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
        kwp_mechanisms=(CKM_LUNA_AES_KWP, CKM_AES_KEY_WRAP_KWP, CKM_AES_KEY_WRAP_PAD),
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
        # SoftHSM 2.6.1 computes RFC 5649 under CKM_AES_KEY_WRAP_PAD and zero-pads what it wraps to a multiple of 8
        # bytes; the known-answer tests see both (pkcs11_wrap), so nothing here assumes either
        manufacturers=('softhsm',),
        # where SoftHSM finds its token directory: SOFTHSM2_CONF, else the path it was built with (Debian and Ubuntu:
        # /etc/softhsm/softhsm2.conf; Fedora and RHEL: /etc/softhsm2.conf)
        config_variable='SOFTHSM2_CONF',
        config_defaults=('/etc/softhsm/softhsm2.conf', '/etc/softhsm2.conf'),
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


def config_variables():
    """The configuration variables of every profile (SOFTHSM2_CONF, ChrystokiConfigurationPath, ...)."""
    return sorted(set(p['config_variable'] for p in PROFILES.values() if p.get('config_variable')))


def configuration_read(profile, environ=None, exists=os.path.exists):
    """(variable, what the library read, whether the variable is set) for a profile that knows its configuration
    variable, else None.  Unset, the library read its built-in default: the first default path that exists."""
    variable = profile.get('config_variable')
    if not variable:
        return None
    environ = os.environ if environ is None else environ
    if environ.get(variable):
        return variable, environ[variable], True
    defaults = profile.get('config_defaults') or ()
    found = [d for d in defaults if exists(d)]
    return variable, (found or list(defaults) or ['its built-in default'])[0], False


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


def kwp_candidates(profile):
    """The AES key-wrap mechanisms (ints) the profile lets the two-step wrap try, in order; a test decides."""
    return tuple(profile.get('kwp_mechanisms') or DEFAULT_KWP_MECHANISMS)


_USABLE = ('exact', 'zero-padded')
_KEY_CLASS_NAMES = {'secret': 'AES (oct)', 'private': 'RSA and EC'}


def tried(proof, profile, key_class):
    """What was tried for a key class, as one readable list."""
    lines = []
    combined = proof.get('combined')
    if 'combined' in profile['preferred_wrap']:
        lines.append('%s: %s' % (mechanism_name(CKM_RSA_AES_KEY_WRAP),
                                 combined.get(key_class) if combined is not None else 'not offered'))
    for mechanism, outcome in proof.get('kwp') or ():
        lines.append('%s: %s' % (mechanism_name(mechanism), outcome.get(key_class)))
    if proof.get('oaep') is not None:
        lines.append('%s (SHA-1): %s' % (mechanism_name(CKM_RSA_PKCS_OAEP), proof.get('oaep')))
    return '; '.join(lines)


def choose_wrap_path(profile, requested, proof, key_class):
    """The wrap path for one key class ('secret' or 'private') from the wrap_method option, the profile and a proof
    (pkcs11_wrap.WrapProof.as_dict()): a dict with method (combined or two_step), mechanism (the AES key-wrap
    mechanism of two_step, or CKM_RSA_AES_KEY_WRAP), its name, and zero_padded (the token pads what it wraps).

    A mechanism is used only where its test wrap of this key class unwrapped as Azure unwraps it, whatever its name;
    an exact encoding wins over a zero-padded one.  No usable path: VendorError naming everything that was tried.
    """
    paths = {}
    combined = proof.get('combined')
    if 'combined' in profile['preferred_wrap'] and combined is not None and combined.get(key_class) in _USABLE:
        paths['combined'] = {'method': 'combined', 'mechanism': CKM_RSA_AES_KEY_WRAP,
                             'zero_padded': combined[key_class] != 'exact'}
    if proof.get('oaep') is None:
        usable = [(m, o[key_class]) for m, o in proof.get('kwp') or () if o.get(key_class) in _USABLE]
        usable.sort(key=lambda mo: mo[1] != 'exact')  # stable: the profile's order within exact, then padded
        if usable:
            paths['two_step'] = {'method': 'two_step', 'mechanism': usable[0][0], 'zero_padded': usable[0][1] != 'exact'}
    for path in paths.values():
        path['mechanism_name'] = mechanism_name(path['mechanism']) + (
            ' + %s' % mechanism_name(CKM_RSA_PKCS_OAEP) if path['method'] == 'two_step' else '')
    order = profile['preferred_wrap'] if requested in (None, 'auto') else (requested,)
    # an exact encoding first, then the profile's order (a zero-padded one only where nothing else works)
    for method in sorted((m for m in order if m in paths), key=lambda m: paths[m]['zero_padded']):
        return paths[method]
    what = _KEY_CLASS_NAMES[key_class]
    if requested not in (None, 'auto') and requested not in profile['preferred_wrap']:
        raise VendorError('wrap_method %s is not possible on %s (it has no CKM_RSA_AES_KEY_WRAP); use wrap_method: auto '
                          'or two_step' % (requested, profile['display_name']))
    if requested not in (None, 'auto'):
        other = [m for m in paths if m != requested]
        raise VendorError('wrap_method %s cannot wrap %s keys on this token for Azure (tried %s); use wrap_method: auto%s'
                          % (requested, what, tried(proof, profile, key_class),
                             (' (%s works here)' % other[0]) if other else ''))
    raise VendorError('the token has no wrap path Azure can unwrap for %s keys (tried %s); check the HSM firmware and '
                      'its mechanism policy, or use another HSM' % (what, tried(proof, profile, key_class)))


def legacy_method_error(profile, method):
    """The message for a retired vendor method, or None when the method is not a known legacy one."""
    return profile.get('legacy_methods', {}).get(method)


def refuse_private_key_wrap(profile, token_label, model, firmware, cause):
    """Raise VendorError for a partition that will not wrap private keys (cause: what the probe saw)."""
    rule = profile['private_key_wrap']
    what = (token_label, profile['display_name'], model or 'model unknown', firmware, cause, rule['refused'], rule['fix'])
    raise VendorError("partition '%s' (%s %s, firmware %s) does not let private keys be wrapped off the HSM (%s): it is %s; "
                      "nothing was generated. To fix, %s" % what)
