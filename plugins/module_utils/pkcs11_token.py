# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PKCS#11 sessions and key operations for BYOK, over python-pkcs11.

One library load, one token, one login per module run.  Finds and generates target keys,
wraps them under a KEK inside the HSM (one-shot CKM_RSA_AES_KEY_WRAP or the two-step
CKM_AES_KEY_WRAP_PAD + CKM_RSA_PKCS_OAEP), and maps PKCS11Error to messages a person can act on.
The PIN is only handed to C_Login; no object here keeps it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import ctypes
import ctypes.util
import os
import traceback

from ansible.module_utils.basic import env_fallback

from ansible_collections.byok.keyvault.plugins.module_utils import host_lock
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import vendors
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError
from ansible_collections.byok.keyvault.plugins.module_utils.module_base import ByokModule

PKCS11_IMPORT_ERROR = None
try:
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, MGF
    from pkcs11 import exceptions as p11e
except ImportError:  # pragma: no cover - exercised on hosts without the library
    PKCS11_IMPORT_ERROR = traceback.format_exc()


def pkcs11_argument_spec():
    """Options every HSM-side module shares (documented in the byok.keyvault.pkcs11 doc fragment)."""
    return dict(
        pkcs11_module=dict(type='path', fallback=(env_fallback, ['PKCS11_MODULE'])),
        token_label=dict(type='str', no_log=False, fallback=(env_fallback, ['PKCS11_TOKEN_LABEL'])),
        token_serial=dict(type='str', no_log=False),
        user_pin=dict(type='str', no_log=True, fallback=(env_fallback, ['PKCS11_USER_PIN'])),
        vendor=dict(type='str', default='auto', choices=list(vendors.VENDOR_CHOICES)),
        lock_timeout=dict(type='int', default=host_lock.DEFAULT_TIMEOUT),
    )


class HsmError(ByokError):
    """A failure with a message that names the input and the fix; never carries a secret."""


def _mechanism(value):
    """A python-pkcs11 Mechanism for a value, also for values its enum lacks (CKM_RSA_AES_KEY_WRAP).

    python-pkcs11 0.10 accepts only Mechanism members; an int subclass instance of the enum with
    the right value passes its check and is handed to C_WrapKey as the plain number.
    """
    try:
        return Mechanism(value)
    except ValueError:
        member = int.__new__(Mechanism, value)
        member._name_ = 'VENDOR_0x%08x' % value
        member._value_ = value
        return member


class _OaepParams(ctypes.Structure):
    _fields_ = [('hashAlg', ctypes.c_ulong), ('mgf', ctypes.c_ulong), ('source', ctypes.c_ulong),
                ('pSourceData', ctypes.c_void_p), ('ulSourceDataLen', ctypes.c_ulong)]


class _RsaAesKeyWrapParams(ctypes.Structure):
    _fields_ = [('ulAESKeyBits', ctypes.c_ulong), ('pOAEPParams', ctypes.POINTER(_OaepParams))]


CKM_SHA_1 = 0x220
CKG_MGF1_SHA1 = 0x1
CKZ_DATA_SPECIFIED = 0x1


@contextlib.contextmanager
def rsa_aes_key_wrap_params(aes_bits=256):
    """CK_RSA_AES_KEY_WRAP_PARAMS as raw bytes (OAEP SHA-1, MGF1-SHA-1, no label).

    The bytes point at the inner OAEP struct, which stays alive for the duration of the block.
    """
    oaep = _OaepParams(CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, None, 0)
    outer = _RsaAesKeyWrapParams(aes_bits, ctypes.pointer(oaep))
    yield bytes(outer)
    del outer, oaep


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


_FIX = {
    'PinIncorrect': 'user_pin was refused by the token (CKR_PIN_INCORRECT); it was tried once and not retried, because HSMs '
                    'lock a user after a few failures: check the PIN (PKCS11_USER_PIN) before the next run',
    'PinLocked': 'the token user is locked (CKR_PIN_LOCKED) after too many wrong PINs; the HSM security officer must unlock '
                 'or reset the user PIN',
    'PinExpired': 'the user PIN has expired (CKR_PIN_EXPIRED); set a new PIN with the vendor tool',
    'PinLenRange': 'user_pin has a length the token does not accept (CKR_PIN_LEN_RANGE); check the PIN',
    'UserPinNotInitialized': 'the token has no user PIN yet (CKR_USER_PIN_NOT_INITIALIZED); initialise the token user first',
    'TokenNotPresent': 'the token is not present (CKR_TOKEN_NOT_PRESENT); check the HSM connection and the slot',
    'DeviceRemoved': 'the HSM went away during the operation (CKR_DEVICE_REMOVED); check the connection and run again',
    'DeviceError': 'the HSM reported a device error (CKR_DEVICE_ERROR); check the HSM logs and run again',
    'DeviceMemory': 'the HSM is out of memory (CKR_DEVICE_MEMORY); free objects on the token',
    'KeyUnextractable': 'the key is not extractable (CKR_KEY_UNEXTRACTABLE): it was generated without CKA_EXTRACTABLE, or sealed '
                        'after its transfer (hsm_seal, byok_hsm_seal_after_transfer), so the HSM will not wrap it and it can go '
                        'to no further vault; generate a new key under another label (or with regenerate: always, which '
                        'destroys this one)',
    'KeyNotWrappable': 'the HSM refuses to wrap this key (CKR_KEY_NOT_WRAPPABLE); check the key policy on the HSM',
    'MechanismInvalid': 'the token does not offer the mechanism (CKR_MECHANISM_INVALID); use wrap_method: auto',
    'MechanismParamInvalid': 'the token refused the mechanism parameters (CKR_MECHANISM_PARAM_INVALID); use '
                             'wrap_method: two_step',
    'TemplateInconsistent': 'the token refused the key attributes (CKR_TEMPLATE_INCONSISTENT); check the vendor policy for '
                            'extractable, sensitive keys',
    'SessionCount': 'the token has no free session (CKR_SESSION_COUNT); close other applications and run again',
    'TokenWriteProtected': 'the token is write-protected (CKR_TOKEN_WRITE_PROTECTED); log in as a user that may create keys',
}


def explain(exc, action):
    """One line for a PKCS11Error raised while doing `action`."""
    name = type(exc).__name__
    detail = _FIX.get(name)
    if detail is None:
        text = str(exc).strip()
        detail = 'the token answered %s%s' % (name, (': ' + text) if text else '')
    return 'PKCS#11 %s failed: %s' % (action, detail)


#: the CKR_ names of python-pkcs11's exception classes a wrap can raise (what an HSM log and the vendor docs show)
_CKR_NAMES = {'KeyNotWrappable': 'CKR_KEY_NOT_WRAPPABLE', 'KeyUnextractable': 'CKR_KEY_UNEXTRACTABLE',
              'KeyFunctionNotPermitted': 'CKR_KEY_FUNCTION_NOT_PERMITTED', 'MechanismInvalid': 'CKR_MECHANISM_INVALID',
              'MechanismParamInvalid': 'CKR_MECHANISM_PARAM_INVALID', 'KeyTypeInconsistent': 'CKR_KEY_TYPE_INCONSISTENT',
              'WrappingKeyTypeInconsistent': 'CKR_WRAPPING_KEY_TYPE_INCONSISTENT', 'FunctionFailed': 'CKR_FUNCTION_FAILED',
              'GeneralError': 'CKR_GENERAL_ERROR'}


#: answers of a wrap that say nothing about the partition's policy (the HSM or the session failed): not a refusal
_NOT_A_POLICY = ('DeviceError', 'DeviceRemoved', 'DeviceMemory', 'HostMemory', 'TokenNotPresent', 'SessionClosed',
                 'SessionHandleInvalid', 'UserNotLoggedIn', 'OperationActive')


def _ckr_name(exc):
    name = type(exc).__name__
    if name in _CKR_NAMES:
        return _CKR_NAMES[name]
    text = str(exc).strip()
    return '%s%s' % (name, (' (%s)' % text) if text else '')


def _token_label(token):
    return (token.label or '').strip()


def _token_serial(token):
    serial = token.serial
    if isinstance(serial, bytes):
        serial = serial.decode('ascii', 'replace')
    return (serial or '').strip()


def _version(value):
    if value is None:
        return None
    if isinstance(value, tuple):
        return '.'.join(str(v) for v in value)
    return str(value)


class HsmKey(object):
    """A target key found in or generated on the token (handles only, never key material)."""

    def __init__(self, label, key_id, key_type, key_size, curve, private, public=None, extractable=None,
                 sensitive=None, on_token=None, never_extractable=None):
        self.label = label
        self.key_id = key_id
        self.key_type = key_type
        self.key_size = key_size
        self.curve = curve
        self.private = private
        self.public = public
        self.extractable = extractable
        self.sensitive = sensitive
        self.on_token = on_token
        self.never_extractable = never_extractable
        self.public_key = None
        self.fingerprint = None
        self.kcv = None

    def matches(self, spec):
        """Differences between this key and a wanted spec, as readable strings (empty when it matches)."""
        diffs = []
        if self.key_type != spec['key_type']:
            diffs.append('key_type is %s, wanted %s' % (self.key_type, spec['key_type']))
        elif spec['key_type'] == 'EC' and self.curve != spec['curve']:
            diffs.append('curve is %s, wanted %s' % (self.curve, spec['curve']))
        elif spec['key_type'] != 'EC' and self.key_size != spec['key_size']:
            diffs.append('key_size is %s, wanted %s' % (self.key_size, spec['key_size']))
        if self.extractable is False and not sealed(self):
            diffs.append('CKA_EXTRACTABLE is false (the HSM cannot wrap it)')
        if self.sensitive is False:
            diffs.append('CKA_SENSITIVE is false (the key could be read in clear)')
        if self.on_token is False:
            diffs.append('it is a session object, not a token object')
        return diffs

    def as_dict(self):
        d = {
            'label': self.label,
            'id': self.key_id.hex() if self.key_id else None,
            'key_type': self.key_type,
            'key_size': self.key_size,
            'curve': self.curve,
            'fingerprint': self.fingerprint,
            'kcv': self.kcv,
            'public_key_pem': ki.public_pem(self.public_key) if self.public_key is not None else None,
            'sealed': sealed(self),
        }
        if self.key_type == 'oct':
            d['fingerprint'] = self.kcv
        return d


class HsmToken(object):
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
        self._private_key_wrap = None

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
        label_ok = not self.token_label or _token_label(token) == self.token_label
        serial_ok = not self.token_serial or _token_serial(token) == self.token_serial
        return label_ok and serial_ok

    def _select_token(self):
        if not self.token_label and not self.token_serial:
            raise HsmError('neither token_label nor token_serial is set; set one (or PKCS11_TOKEN_LABEL) to choose the token')
        tokens = list(self.lib.get_tokens())
        chosen = [t for t in tokens if self._is_chosen(t)]
        if not chosen:
            available = ', '.join("'%s' (serial %s)" % (_token_label(t), _token_serial(t)) for t in tokens if _token_label(t))
            wanted = ' and '.join(x for x in (
                ("token_label '%s'" % self.token_label) if self.token_label else '',
                ("token_serial '%s'" % self.token_serial) if self.token_serial else '') if x)
            raise HsmError('no token with %s in %s; available tokens: %s; fix token_label/token_serial'
                           % (wanted, self.module_path, available or 'none (initialise a token first)'))
        if len(chosen) > 1:
            raise HsmError("%d tokens carry the label '%s'; set token_serial to choose one (serials: %s)"
                           % (len(chosen), self.token_label, ', '.join(_token_serial(t) for t in chosen)))
        self.token = chosen[0]
        manufacturer = '%s %s %s' % (self.token.manufacturer_id, self.token.model, self.lib.manufacturer_id)
        self.profile = vendors.resolve(self.vendor, manufacturer, _version(getattr(self.token, 'firmware_version', None)))

    def open(self, user_pin):
        """Load the library, select the token and log in once.  user_pin is used here and not kept."""
        self._load()
        self._select_token()
        if not user_pin:
            raise HsmError("user_pin is not set; give the %s (option user_pin or PKCS11_USER_PIN)" % self.profile['user_role'])
        try:
            self.session = self.token.open(rw=True, user_pin=user_pin)
        except p11e.PKCS11Error as exc:
            raise HsmError(explain(exc, "login to token '%s'" % _token_label(self.token)))
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
            self._mechanisms = set(int(m) for m in self.token.slot.get_mechanisms())
        return self._mechanisms

    def info(self):
        """Token facts for results and manifests (no secrets)."""
        facts = {
            'vendor': self.profile['name'],
            'vendor_name': self.profile['display_name'],
            'library': self.module_path,
            'library_description': (self.lib.library_description or '').strip(),
            'library_version': _version(self.lib.library_version),
            'manufacturer': (self.token.manufacturer_id or '').strip(),
            'model': (self.token.model or '').strip(),
            'label': _token_label(self.token),
            'serial': _token_serial(self.token),
            'firmware_version': _version(getattr(self.token, 'firmware_version', None)),
            'hardware_version': _version(getattr(self.token, 'hardware_version', None)),
        }
        if self.profile.get('private_key_wrap') and self.session is not None:
            try:
                cause = self.private_key_wrap()
            except HsmError as exc:
                facts['private_key_wrap'] = 'unknown: %s' % exc
            else:
                facts['private_key_wrap'] = 'refused: %s' % cause if cause else 'allowed'
        return facts

    def private_key_wrap(self):
        """None when the partition lets private keys be wrapped off the HSM, else what refused it (e.g. CKR_KEY_NOT_WRAPPABLE).

        Asked only for profiles that need it (vendors.needs_private_key_wrap_probe), once per login.  Why a probe wrap:
        a Luna 5/6 cloning model and a Key Export model with partition policy 1 off look the same through standard
        PKCS#11 - the same CK_TOKEN_INFO flags, the same mechanism list (CKM_AES_KWP stays offered, since secret keys
        may still be wrapped) - and the partition policies are readable only through Luna's own CA_* extension
        functions, outside PKCS#11.  The one sound test is the operation itself, on keys that cost nothing: a session
        (CKA_TOKEN false) EC P-256 key pair with the attributes hsm_keygen gives target keys (private, sensitive,
        extractable), wrapped with the same AES key-wrap mechanism under a session AES key.  The HSM applies the same
        policy to it as to a token key; session objects are destroyed here, and vanish at logout even if the run is killed,
        so nothing is ever left on the partition.
        """
        if self._private_key_wrap is None:
            self._private_key_wrap = self._probe_private_key_wrap() or ''
        return self._private_key_wrap or None

    def _probe_private_key_wrap(self):
        kwp = vendors.kwp_mechanism(self.profile, self.mechanisms)
        if kwp is None:
            return 'the partition offers no AES key wrap with padding (%s)' % vendors.MECHANISM_NAMES[vendors.CKM_LUNA_AES_KWP]
        wanted = self.profile['private_key_attributes']
        objects = []
        try:
            try:
                params = self.session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: ki.CURVES['P-256'][1]}, local=True)
                pub, priv = params.generate_keypair(store=False, public_template={Attribute.TOKEN: False}, private_template={
                    Attribute.TOKEN: False, Attribute.PRIVATE: wanted['private'], Attribute.SENSITIVE: wanted['sensitive'],
                    Attribute.EXTRACTABLE: wanted['extractable']})
                objects.extend([pub, priv])
                aes = self.session.generate_key(KeyType.AES, 256, store=False, template={
                    Attribute.TOKEN: False, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True, Attribute.WRAP: True,
                    Attribute.ENCRYPT: False, Attribute.DECRYPT: False, Attribute.UNWRAP: False})
                objects.append(aes)
            except p11e.PKCS11Error as exc:
                raise HsmError(explain(exc, 'generation of the session keys that test whether the partition wraps private keys'))
            try:
                aes.wrap_key(priv, mechanism=_mechanism(kwp))
            except p11e.PKCS11Error as exc:
                if type(exc).__name__ in _NOT_A_POLICY:
                    raise HsmError(explain(exc, 'test wrap of a session key (does the partition wrap private keys?)'))
                return 'a test wrap of a session key was refused with %s' % _ckr_name(exc)
            return None
        finally:
            for obj in objects:
                try:
                    obj.destroy()
                except p11e.PKCS11Error:
                    pass

    def check_private_key_wrap(self):
        """Raise VendorError (before any key is generated) when the profile needs private-key wrapping and it is refused."""
        cause = self.private_key_wrap()
        if cause:
            i = self.info()
            vendors.refuse_private_key_wrap(self.profile, i['label'], i['model'], i['firmware_version'], cause)

    def generator(self, tool):
        i = self.info()
        return '%s; %s %s firmware %s' % (tool, i['manufacturer'] or i['vendor_name'], i['model'], i['firmware_version'])

    def lock(self):
        """An exclusive lock per token on this host, so two runs do not create the same key twice."""
        return host_lock.exclusive('token', self.module_path, _token_serial(self.token), _token_label(self.token),
                                   error=HsmError)

    # -- keys --------------------------------------------------------------------------------
    def _objects(self, attrs):
        try:
            return list(self.session.get_objects(attrs))
        except p11e.PKCS11Error as exc:
            raise HsmError(explain(exc, 'object search'))

    def labelled(self, label, key_id=None):
        """Every object with this label (and id): one search, for find() and lone_public_objects()."""
        attrs = {Attribute.LABEL: label}
        if key_id:
            attrs[Attribute.ID] = key_id
        return self._objects(attrs)

    def find(self, label, key_id=None, objects=None):
        """The target key with this label (and id), or None.  Several candidates are an error.  objects: what
        labelled() returned, when the caller searched already."""
        if objects is None:
            objects = self.labelled(label, key_id)
        private = [o for o in objects if o.object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY)]
        public = [o for o in objects if o.object_class == ObjectClass.PUBLIC_KEY]
        if not private:
            return None
        if len(private) > 1:
            raise HsmError("the token holds %d private/secret keys labelled '%s'; give id to choose one or remove the extra "
                           "objects with the vendor tool" % (len(private), label))
        obj = private[0]
        pub = None
        if obj.object_class == ObjectClass.PRIVATE_KEY:
            try:
                obj_id = obj[Attribute.ID]
            except p11e.PKCS11Error:
                obj_id = key_id
            pub = [p for p in public if not obj_id or p[Attribute.ID] == obj_id]
            pub = pub[0] if pub else None
        return self._describe(label, obj, pub)

    def lone_public_objects(self, label, key_id=None, objects=None):
        """Public key objects with this label (and id) that no private key with the label pairs with.

        A run killed inside C_GenerateKeyPair can leave such an object behind (the token stored the
        public half first).  It holds public material only.  objects: what labelled() returned.
        """
        if objects is None:
            objects = self.labelled(label, key_id)
        private_ids = set()
        for o in objects:
            if o.object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
                private_ids.add(bytes(self._attr(o, Attribute.ID) or b''))
        public = [o for o in objects if o.object_class == ObjectClass.PUBLIC_KEY]
        return [o for o in public if bytes(self._attr(o, Attribute.ID) or b'') not in private_ids]

    def destroy_objects(self, objects, label):
        for obj in objects:
            try:
                obj.destroy()
            except p11e.PKCS11Error as exc:
                raise HsmError(explain(exc, "removal of a public key object left over from an interrupted generation of '%s'"
                                       % label))

    def _attr(self, obj, attr, default=None):
        try:
            return obj[attr]
        except (p11e.PKCS11Error, KeyError):
            return default

    def _describe(self, label, obj, pub):
        key_type = obj.key_type
        key_id = self._attr(obj, Attribute.ID)
        common = dict(label=label, key_id=bytes(key_id) if key_id else None, private=obj, public=pub,
                      extractable=self._attr(obj, Attribute.EXTRACTABLE), sensitive=self._attr(obj, Attribute.SENSITIVE),
                      on_token=self._attr(obj, Attribute.TOKEN), never_extractable=self._attr(obj, Attribute.NEVER_EXTRACTABLE))
        if key_type == KeyType.RSA:
            modulus = self._attr(obj, Attribute.MODULUS) or (self._attr(pub, Attribute.MODULUS) if pub else None)
            exponent = self._attr(obj, Attribute.PUBLIC_EXPONENT) or (self._attr(pub, Attribute.PUBLIC_EXPONENT) if pub else None)
            if not modulus or not exponent:
                raise HsmError("key '%s' exposes no RSA modulus; cannot compute its fingerprint" % label)
            key = HsmKey(key_type='RSA', key_size=len(modulus) * 8, curve=None, **common)
            key.public_key = ki.public_key_from_rsa_numbers(bytes(modulus), bytes(exponent))
            key.key_size = key.public_key.key_size
        elif key_type == KeyType.EC:
            params = self._attr(obj, Attribute.EC_PARAMS) or (self._attr(pub, Attribute.EC_PARAMS) if pub else None)
            curve = ki.curve_from_ec_params(params) if params else None
            point = self._attr(pub, Attribute.EC_POINT) if pub else None
            if point is None:
                point = self._attr(obj, Attribute.EC_POINT)
            if not curve or point is None:
                raise HsmError("EC key '%s' has no public key object with CKA_EC_POINT on the token; cannot compute its "
                               "fingerprint (generate it with hsm_keygen)" % label)
            key = HsmKey(key_type='EC', key_size=ki.CURVE_BITS[curve], curve=curve, **common)
            key.public_key = ki.public_key_from_ec_point(curve, point)
        elif key_type == KeyType.AES:
            length = self._attr(obj, Attribute.VALUE_LEN)
            key = HsmKey(key_type='oct', key_size=int(length) * 8 if length else None, curve=None, **common)
            key.kcv = self.kcv(obj)
            return key
        else:
            raise HsmError("key '%s' is of type %s, which Azure Key Vault cannot import; use RSA, EC or AES keys"
                           % (label, getattr(key_type, 'name', key_type)))
        key.fingerprint = ki.fingerprint(key.public_key)
        return key

    def kcv(self, secret_key):
        """KCV of an AES key, computed inside the HSM (AES-ECB of a zero block); None if the key may not encrypt.

        This is the one place where "no KCV" is decided: python-pkcs11 gives a key without CKA_ENCRYPT
        no encrypt method at all (vendor tools make such keys), and a token may refuse the operation.
        None means the key's identity is unknown; callers never treat two unknowns as equal.
        """
        encrypt = getattr(secret_key, 'encrypt', None)
        if encrypt is None:
            return None
        try:
            return ki.kcv_from_block(encrypt(b'\x00' * 16, mechanism=Mechanism.AES_ECB))
        except p11e.PKCS11Error:
            return None

    def generate(self, spec, label, key_id=None):
        """Generate a target key as a token object: private, sensitive, extractable (so the HSM may wrap it)."""
        key_id = key_id or os.urandom(16)
        wanted = self.profile['private_key_attributes']
        private_template = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: wanted['private'],
            Attribute.SENSITIVE: wanted['sensitive'],
            Attribute.EXTRACTABLE: wanted['extractable'],
        }
        if self.profile.get('trusted_wrapping_keys'):
            private_template[Attribute.WRAP_WITH_TRUSTED] = True  # only wrapping keys with CKA_TRUSTED may wrap it
        try:
            if spec['key_type'] == 'RSA':
                pub, obj = self.session.generate_keypair(KeyType.RSA, spec['key_size'], label=label, id=key_id, store=True,
                                                         public_template={Attribute.TOKEN: True},
                                                         private_template=private_template)
            elif spec['key_type'] == 'EC':
                params = self.session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: ki.CURVES[spec['curve']][1]}, local=True)
                pub, obj = params.generate_keypair(label=label, id=key_id, store=True,
                                                   public_template={Attribute.TOKEN: True}, private_template=private_template)
            else:
                template = dict(private_template)
                template[Attribute.ENCRYPT] = True
                pub, obj = None, self.session.generate_key(KeyType.AES, spec['key_size'], label=label, id=key_id, store=True,
                                                           template=template)
        except p11e.PKCS11Error as exc:
            raise HsmError(explain(exc, "generation of %s key '%s'" % (spec['key_type'], label)))
        # the objects the token returned, described as find() would (their attributes read back from the token)
        return self._describe(label, obj, pub)

    def destroy(self, key):
        for obj in (key.private, key.public):
            if obj is not None:
                try:
                    obj.destroy()
                except p11e.PKCS11Error as exc:
                    raise HsmError(explain(exc, "removal of key '%s'" % key.label))

    # -- wrapping ----------------------------------------------------------------------------
    def _import_kek(self, kek_public_key):
        numbers = kek_public_key.public_numbers()
        size = (kek_public_key.key_size + 7) // 8
        try:
            return self.session.create_object({
                Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                Attribute.KEY_TYPE: KeyType.RSA,
                Attribute.TOKEN: False,
                Attribute.PRIVATE: False,
                Attribute.LABEL: 'byok-kek-session',
                Attribute.MODULUS: numbers.n.to_bytes(size, 'big'),
                Attribute.PUBLIC_EXPONENT: numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, 'big'),
                Attribute.WRAP: True,
                Attribute.ENCRYPT: True,
                Attribute.VERIFY: False,
            })
        except p11e.PKCS11Error as exc:
            raise HsmError(explain(exc, 'import of the KEK public key as a session object'))

    def wrap(self, key, kek_public_key, method):
        """Wrap `key` under the KEK inside the HSM; returns the BYOK ciphertext (OAEP part || KWP part).

        The KEK public key and the ephemeral AES key are session objects, destroyed before returning.
        """
        kek = self._import_kek(kek_public_key)
        aes = None
        try:
            if method == 'combined':
                with rsa_aes_key_wrap_params(256) as params:
                    return kek.wrap_key(key.private, mechanism=_mechanism(vendors.CKM_RSA_AES_KEY_WRAP), mechanism_param=params)
            aes = self.session.generate_key(KeyType.AES, 256, store=False, template={
                Attribute.TOKEN: False, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True,
                Attribute.WRAP: True, Attribute.ENCRYPT: False, Attribute.DECRYPT: False, Attribute.UNWRAP: False})
            kwp = vendors.kwp_mechanism(self.profile, self.mechanisms) or vendors.CKM_AES_KEY_WRAP_PAD
            key_part = aes.wrap_key(key.private, mechanism=_mechanism(kwp))
            rsa_part = kek.wrap_key(aes, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=(Mechanism.SHA_1, MGF.SHA1, None))
            return rsa_part + key_part
        except p11e.PKCS11Error as exc:
            raise HsmError(explain(exc, "wrap of key '%s' (%s)" % (key.label, method)))
        finally:
            for obj in (aes, kek):
                if obj is not None:
                    try:
                        obj.destroy()
                    except p11e.PKCS11Error:
                        pass

    def zero_padding_quirk(self):
        """True when this library pads private keys with zero bytes before wrapping (see vendors)."""
        return vendors.zero_padding_quirk(self.profile, self.lib.library_version)


class HsmModule(ByokModule):
    """ByokModule with the PKCS#11 options merged in and the libraries checked."""

    def __init__(self, argument_spec, **kwargs):
        libraries = [('python-pkcs11', PKCS11_IMPORT_ERROR), ('cryptography', ki.CRYPTOGRAPHY_IMPORT_ERROR)]
        super(HsmModule, self).__init__(argument_spec, common=pkcs11_argument_spec(), requirements=libraries, **kwargs)

    def open_token(self):
        """The opened token of this run; fails the module with a one-line message when it cannot be opened."""
        p = self.params
        token = HsmToken(p['pkcs11_module'], p['token_label'], p['token_serial'], p['vendor'])
        try:
            return token.open(p['user_pin'])
        except ByokError as exc:
            token.close()
            self.fail(exc)


def sealed(key):
    """Whether a target key was sealed after its transfer: it was extractable once (CKA_NEVER_EXTRACTABLE false) and is
    not any more (CKA_EXTRACTABLE false), so the HSM wraps it no more; it is kept as it is, never regenerated."""
    return key.extractable is False and key.never_extractable is False and key.sensitive is not False


def seal(token, key):
    """Set CKA_EXTRACTABLE to false on a target key (PKCS#11 allows only true -> false); True when the token confirms it."""
    try:
        key.private[Attribute.EXTRACTABLE] = False
    except p11e.PKCS11Error as exc:
        raise HsmError(explain(exc, "seal of key '%s' (setting CKA_EXTRACTABLE to false)" % key.label))
    return token._attr(key.private, Attribute.EXTRACTABLE) is False
