# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PKCS#11 sessions and key operations for BYOK, over python-pkcs11.

One library load, one token, one login per module run.  Finds and generates target keys,
wraps them under a KEK inside the HSM (one-shot CKM_RSA_AES_KEY_WRAP or the two steps, an RFC 5649
AES key wrap and CKM_RSA_PKCS_OAEP) with the path pkcs11_wrap proved on this token, and maps
PKCS11Error to messages a person can act on.
The PIN is only handed to C_Login; no object here keeps it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import ctypes
import ctypes.util
import os
import traceback

from ansible_collections.byok.keyvault.plugins.module_utils import host_lock
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import option_specs
from ansible_collections.byok.keyvault.plugins.module_utils import pkcs11_wrap
from ansible_collections.byok.keyvault.plugins.module_utils import user_terms
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
    return option_specs.module_argument_spec()


class HsmError(ByokError):
    """A failure with a message that names the input and the fix; never carries a secret."""


_mechanism = pkcs11_wrap.pkcs11_mechanism


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
    line = 'PKCS#11 %s failed%s: %s' % (action, (' (%s)' % where) if where else '', pkcs11_wrap.exc_code(exc))
    if template:
        line += ' for the attributes %s' % ', '.join('%s=%s' % (k, v) for k, v in template.items())
    fix = _FIX.get(name)
    return line + ('; %s' % fix if fix else '')


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


_ATTRIBUTE_NAMES = {}
if not PKCS11_IMPORT_ERROR:
    _ATTRIBUTE_NAMES = {Attribute.TOKEN: 'CKA_TOKEN', Attribute.PRIVATE: 'CKA_PRIVATE', Attribute.SENSITIVE: 'CKA_SENSITIVE',
                        Attribute.EXTRACTABLE: 'CKA_EXTRACTABLE', Attribute.WRAP_WITH_TRUSTED: 'CKA_WRAP_WITH_TRUSTED'}


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
            'fingerprint': ki.identity(self.key_type, self.fingerprint, self.kcv),
            'kcv': self.kcv,
            'public_key_pem': ki.public_pem(self.public_key) if self.public_key is not None else None,
            'sealed': sealed(self),
        }
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
        self._proof = None

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
        try:
            tokens = list(self.lib.get_tokens())
            chosen = [t for t in tokens if self._is_chosen(t)]
        except p11e.PKCS11Error as exc:
            raise HsmError(explain(exc, 'listing of the tokens of %s' % self.module_path, call='C_GetSlotList/C_GetTokenInfo'))
        if not chosen:
            available = ', '.join("'%s' (serial %s)" % (_token_label(t), _token_serial(t)) for t in tokens if _token_label(t))
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
                           % (len(chosen), self.token_label, ', '.join(_token_serial(t) for t in chosen)))
        self.token = chosen[0]
        manufacturer = '%s %s %s' % (self.token.manufacturer_id, self.token.model, self.lib.manufacturer_id)
        self.profile = vendors.resolve(self.vendor, manufacturer, _version(getattr(self.token, 'firmware_version', None)))

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
            raise HsmError(explain(exc, "login to token '%s'" % _token_label(self.token), call='C_Login'))
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
                raise HsmError(explain(exc, "listing of the mechanisms of token '%s'" % _token_label(self.token),
                                       call='C_GetMechanismList'))
        return self._mechanisms

    def info_basic(self):
        """Token facts for results and manifests (no secrets), without testing anything."""
        return {
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

    def info(self):
        """Token facts for results and manifests (no secrets); a profile that gates private-key wrapping (Luna 5/6)
        adds whether this partition allows it, as its test wraps showed."""
        facts = self.info_basic()
        if self.profile.get('private_key_wrap') and self.session is not None:
            try:
                self.wrap_path('EC', 'auto')
            except vendors.VendorError as exc:
                facts['private_key_wrap'] = 'refused: %s' % exc
            except HsmError as exc:
                facts['private_key_wrap'] = 'unknown: %s' % exc
            else:
                facts['private_key_wrap'] = 'allowed'
        return facts

    def proof(self):
        """What this token's wrap mechanisms compute (pkcs11_wrap.prove), as plain data; proved once per login.

        Test wraps on session objects only (CKA_TOKEN false, destroyed here, gone at logout even if the run is killed),
        so nothing is ever left on the token.  Why a test and not the mechanism list: a name or a number proves
        nothing (SoftHSM's CKM_AES_KEY_WRAP_PAD is the standard's CKM_AES_KEY_WRAP_KWP), and a partition that may not
        wrap private keys (a Luna 5/6 cloning model, or a Key Export one with partition policy 1 off) lists the same
        mechanisms as one that may: the one sound test is the operation itself.
        """
        if self._proof is None:
            try:
                proof = pkcs11_wrap.prove(self.session, self.mechanisms, vendors.kwp_candidates(self.profile),
                                          self.profile['private_key_attributes'], rsa_aes_key_wrap_params,
                                          try_combined='combined' in self.profile['preferred_wrap'])
            except pkcs11_wrap.ProofError as exc:
                raise HsmError('%s on token \'%s\'; check the HSM and run again' % (exc, _token_label(self.token)))
            self._proof = proof.as_dict()
        return self._proof

    def wrap_path(self, key_type, requested):
        """The proved wrap path for a target key type (vendors.choose_wrap_path); VendorError when there is none.

        A profile that gates private-key wrapping (Luna 5/6) refuses with its own explanation."""
        cls = pkcs11_wrap.key_class(key_type)
        try:
            return vendors.choose_wrap_path(self.profile, requested, self.proof(), cls)
        except vendors.VendorError:
            if cls == pkcs11_wrap.PRIVATE and self.profile.get('private_key_wrap'):
                i = self.info_basic()
                vendors.refuse_private_key_wrap(self.profile, i['label'], i['model'], i['firmware_version'],
                                                'test wraps of a session key: %s' % vendors.tried(self.proof(), self.profile, cls))
            raise

    def check_generation(self, spec):
        """Refuse, before anything is created, a key type the token does not list a generation mechanism for."""
        mechanism = vendors.GENERATION_MECHANISMS[spec['key_type']]
        if mechanism not in self.mechanisms:
            raise HsmError("token '%s' cannot generate %s keys: it does not offer %s; nothing was generated. Use a key type "
                           "the token generates, or another HSM"
                           % (_token_label(self.token), spec['key_type'], vendors.mechanism_name(mechanism)))

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
            raise HsmError(explain(exc, 'object search', call='C_FindObjects'))

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

    def remove_lone_public_objects(self, objects, label):
        """Remove public objects that lone_public_objects() found, once a search in a fresh session confirms that no
        private key with their label and CKA_ID exists.  A token may briefly not list a key it holds (an HA group or a
        replica catching up): destroying the public half on a guess would leave that key without it."""
        try:
            with self.token.open(rw=False) as fresh:
                for obj in objects:
                    obj_id = self._attr(obj, Attribute.ID)
                    attrs = {Attribute.LABEL: label, Attribute.CLASS: ObjectClass.PRIVATE_KEY}
                    if obj_id:
                        attrs[Attribute.ID] = bytes(obj_id)
                    if list(fresh.get_objects(attrs)):
                        raise HsmError("token '%s' holds a private key labelled '%s'%s that its first search did not list "
                                       "(a second search, in a fresh session, did); nothing was removed or generated. Run "
                                       "again; if it recurs, check the HSM (an HA group or a replica that lags)"
                                       % (_token_label(self.token), label,
                                          (' (CKA_ID %s)' % bytes(obj_id).hex()) if obj_id else ''))
        except p11e.PKCS11Error as exc:
            raise HsmError(explain(exc, "search that confirms no private key labelled '%s' exists" % label,
                                   call='C_FindObjects'))
        for obj in objects:
            try:
                obj.destroy()
            except p11e.PKCS11Error as exc:
                raise HsmError(explain(exc, "removal of a public key object left over from an interrupted generation of '%s'"
                                       % label, call='C_DestroyObject'))

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
            asked = dict((_ATTRIBUTE_NAMES.get(k, str(k)), v) for k, v in private_template.items())
            if spec['key_type'] == 'oct':
                asked['CKA_ENCRYPT'] = True
            raise HsmError(explain(exc, "generation of %s key '%s'" % (spec['key_type'], label),
                                   call='C_GenerateKey' if spec['key_type'] == 'oct' else 'C_GenerateKeyPair',
                                   mechanism=vendors.GENERATION_MECHANISMS[spec['key_type']], template=asked))
        # the objects the token returned, described as find() would (their attributes read back from the token)
        return self._describe(label, obj, pub)

    def destroy(self, key):
        for obj in (key.private, key.public):
            if obj is not None:
                try:
                    obj.destroy()
                except p11e.PKCS11Error as exc:
                    raise HsmError(explain(exc, "removal of key '%s'" % key.label, call='C_DestroyObject'))

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
            raise HsmError(explain(exc, 'import of the KEK public key as a session object', call='C_CreateObject'))

    def wrap(self, key, kek_public_key, path):
        """Wrap `key` under the KEK inside the HSM on a proved path (wrap_path); returns the BYOK ciphertext
        (OAEP part || RFC 5649 part).

        The KEK public key and the ephemeral AES key are session objects, destroyed before returning.
        """
        kek = self._import_kek(kek_public_key)
        aes = None
        call, mechanism = 'C_WrapKey', path['mechanism']
        try:
            if path['method'] == 'combined':
                with rsa_aes_key_wrap_params(256) as params:
                    return kek.wrap_key(key.private, mechanism=_mechanism(vendors.CKM_RSA_AES_KEY_WRAP), mechanism_param=params)
            call, mechanism = 'C_GenerateKey', vendors.GENERATION_MECHANISMS['oct']
            aes = self.session.generate_key(KeyType.AES, 256, store=False, template={
                Attribute.TOKEN: False, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True,
                Attribute.WRAP: True, Attribute.ENCRYPT: False, Attribute.DECRYPT: False, Attribute.UNWRAP: False})
            call, mechanism = 'C_WrapKey', path['mechanism']
            key_part = aes.wrap_key(key.private, mechanism=_mechanism(path['mechanism']))
            mechanism = vendors.CKM_RSA_PKCS_OAEP
            rsa_part = kek.wrap_key(aes, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=(Mechanism.SHA_1, MGF.SHA1, None))
            return rsa_part + key_part
        except p11e.PKCS11Error as exc:
            raise HsmError(explain(exc, "wrap of key '%s' (%s)" % (key.label, path['method']), call=call, mechanism=mechanism))
        finally:
            for obj in (aes, kek):
                if obj is not None:
                    try:
                        obj.destroy()
                    except p11e.PKCS11Error:
                        pass


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

    def fail(self, exc, **result):
        """Fail as ByokModule does, naming PKCS11_* instead of the option where the value came from the environment."""
        if isinstance(exc, ByokError):
            result = dict(self.failure_details(exc), **result)
        self.module.fail_json(msg=user_terms.in_environment_terms(str(exc), self.options_from_environment()), **result)

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
        raise HsmError(explain(exc, "seal of key '%s' (setting CKA_EXTRACTABLE to false)" % key.label, call='C_SetAttributeValue'))
    return token._attr(key.private, Attribute.EXTRACTABLE) is False
