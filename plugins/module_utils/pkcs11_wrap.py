# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a token's wrap mechanisms really compute, proved by known-answer tests before a real key is wrapped.

A mechanism's name or number proves nothing: PKCS#11 defines CKM_AES_KEY_WRAP_PAD (0x210A) as RFC 3394 over
PKCS#7 padding and CKM_AES_KEY_WRAP_KWP (0x210B) as RFC 5649, SoftHSM 2.6.1 computes RFC 5649 under 0x210A,
vendors have codes of their own (Luna's CKM_AES_KWP), and Azure unwraps only RFC 5649.  So, once per token and
run, each candidate the token lists is run on keys that cost nothing - session objects (CKA_TOKEN false), destroyed
here and gone at logout even if the run is killed - and its output is checked in software:

- the RSA-OAEP step (CKM_RSA_PKCS_OAEP, SHA-1, MGF1-SHA-1, no label) wraps a session AES key under an RSA key made
  here in software; decrypting it with ``cryptography`` proves the step and yields that AES key's value;
- each AES key-wrap candidate wraps a session AES key (a secret value, as for oct targets) and a session private key
  made with the attributes of target keys (the shape of a PKCS#8 encoding, which some tokens refuse or zero-pad)
  under the AES key learned above; RFC 5649 unwrapping in software must give back the value, or a PKCS#8 encoding
  of the test key's own public key (exact, or followed by zero bytes, which is reported);
- CKM_RSA_AES_KEY_WRAP, when listed, wraps the same two keys under the software RSA key and is unwrapped the same way.

The result is plain data (WrapProof.as_dict); vendors.choose_wrap_path decides from it.

WrapMixin gives HsmToken the proof (once per login), the path vendors.choose_wrap_path picks from it, and the wrap of a
target key on that path: one-shot CKM_RSA_AES_KEY_WRAP, or the two steps (an RFC 5649 AES key wrap, then
CKM_RSA_PKCS_OAEP), with the KEK public key and the ephemeral AES key as session objects destroyed afterwards.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import ctypes
import traceback

from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import vendors
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_session import HsmError, exc_code, explain, token_label

CRYPTO_IMPORT_ERROR = None
try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_unwrap_with_padding
except ImportError:  # pragma: no cover - hosts without cryptography fail in HsmModule
    CRYPTO_IMPORT_ERROR = traceback.format_exc()

try:
    from pkcs11 import Attribute, KeyType, Mechanism, MGF, ObjectClass
    from pkcs11 import exceptions as p11e
except ImportError:  # pragma: no cover - hosts without python-pkcs11 fail in HsmModule
    pass

#: the outcomes of one test wrap that make a path usable (anything else is the reason it is not)
EXACT = 'exact'
ZERO_PADDED = 'zero-padded'
USABLE = (EXACT, ZERO_PADDED)
#: the key classes a wrap path is proved for: oct targets are secret keys, RSA and EC targets private keys
SECRET = 'secret'
PRIVATE = 'private'

_TEST_RSA_BITS = 2048
_AES_BITS = 256


def key_class(key_type):
    """'secret' for oct (AES) targets, 'private' for RSA and EC ones."""
    return SECRET if key_type == 'oct' else PRIVATE


def _unwrap_5649(kek, blob):
    try:
        return aes_key_unwrap_with_padding(kek, blob)
    except (InvalidUnwrap, ValueError):
        return None


def _not_5649(kek, blob):
    """Why blob is not RFC 5649 under kek, as far as software can tell (the wrong IV or padding of 0x210A is named)."""
    try:
        plain = aes_key_unwrap(kek, blob)
    except (InvalidUnwrap, ValueError):
        return 'output (%d bytes) is not RFC 5649 under the test key' % len(blob)
    pad = plain[-1:]
    if pad and 0 < ord(pad) <= 16 and plain.endswith(pad * ord(pad)):
        return 'output is RFC 3394 over PKCS#7 padding, not RFC 5649 (Azure cannot unwrap it)'
    return 'output is RFC 3394, not RFC 5649 (Azure cannot unwrap it)'


def _der_length(data):
    """Length of the DER SEQUENCE at the start of data (header included), or None."""
    if len(data) < 2 or data[0:1] != b'\x30':
        return None
    first = ord(data[1:2])
    if first < 0x80:
        return 2 + first
    count = first & 0x7f
    if count == 0 or count > 3 or len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2:2 + count], 'big')


def check_private_plaintext(plain, expected_public):
    """EXACT or ZERO_PADDED when plain is the PKCS#8 encoding of the private key of expected_public (a cryptography
    public key), else the reason it is not."""
    if plain is None:
        return 'output is not RFC 5649 under the test key'
    length = _der_length(plain)
    if length is None or length > len(plain):
        return 'the unwrapped key is not a DER encoding'
    tail = plain[length:]
    if tail.strip(b'\x00'):
        return 'the unwrapped key has %d bytes after its PKCS#8 encoding that are not zero' % len(tail)
    try:
        private = serialization.load_der_private_key(plain[:length], password=None)
    except (ValueError, TypeError) as exc:
        return 'the unwrapped key is not PKCS#8 (%s)' % exc
    if ki.fingerprint(private.public_key()) != ki.fingerprint(expected_public):
        return 'the unwrapped key is not the test key'
    return ZERO_PADDED if tail else EXACT


class WrapProof(object):
    """What each wrap path did on this token's test keys.

    oaep: None when CKM_RSA_PKCS_OAEP (SHA-1) was proved, else why not.  kwp: [(mechanism, {secret: outcome, private:
    outcome})] in the order tried.  combined: {secret: outcome, private: outcome}, or None when not listed.
    """

    def __init__(self):
        self.oaep = 'not tested'
        self.kwp = []
        self.combined = None

    def as_dict(self):
        return {'oaep': self.oaep, 'kwp': [(m, dict(r)) for m, r in self.kwp],
                'combined': dict(self.combined) if self.combined is not None else None}


class _Tester(object):
    """The session objects of one proof; every object it makes is destroyed by cleanup()."""

    def __init__(self, session, mechanisms):
        self.session = session
        self.mechanisms = mechanisms
        self.objects = []
        self.software = rsa.generate_private_key(public_exponent=65537, key_size=_TEST_RSA_BITS)
        self.modulus_bytes = _TEST_RSA_BITS // 8

    def keep(self, *objects):
        self.objects.extend(o for o in objects if o is not None)
        return objects[0] if len(objects) == 1 else objects

    def cleanup(self):
        for obj in self.objects:
            try:
                obj.destroy()
            except p11e.PKCS11Error:
                pass
        self.objects = []

    def rsa_public(self):
        numbers = self.software.public_key().public_numbers()
        return self.keep(self.session.create_object({
            Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: False,
            Attribute.PRIVATE: False, Attribute.LABEL: 'byok-wrap-test',
            Attribute.MODULUS: numbers.n.to_bytes(self.modulus_bytes, 'big'),
            Attribute.PUBLIC_EXPONENT: numbers.e.to_bytes(3, 'big'),
            Attribute.WRAP: True, Attribute.ENCRYPT: True, Attribute.VERIFY: False}))

    def aes(self, wrap):
        """A session AES key with the attributes the real wrap gives its ephemeral key (sensitive, extractable)."""
        return self.keep(self.session.generate_key(KeyType.AES, _AES_BITS, store=False, template={
            Attribute.TOKEN: False, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True, Attribute.WRAP: wrap,
            Attribute.ENCRYPT: False, Attribute.DECRYPT: False, Attribute.UNWRAP: False}))

    def private(self, attributes):
        """A session key pair made as target keys are (private, sensitive, extractable): EC P-256 where the token
        generates EC keys, else RSA-2048; returns (private object, its public key as a cryptography object)."""
        template = {Attribute.TOKEN: False, Attribute.PRIVATE: attributes['private'],
                    Attribute.SENSITIVE: attributes['sensitive'], Attribute.EXTRACTABLE: attributes['extractable']}
        if vendors.GENERATION_MECHANISMS['EC'] in self.mechanisms:
            params = self.session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: ki.CURVES['P-256'][1]},
                                                           local=True)
            pub, priv = params.generate_keypair(store=False, public_template={Attribute.TOKEN: False},
                                                private_template=template)
            self.keep(pub, priv)
            return priv, ki.public_key_from_ec_point('P-256', pub[Attribute.EC_POINT])
        pub, priv = self.session.generate_keypair(KeyType.RSA, 2048, store=False, public_template={Attribute.TOKEN: False},
                                                  private_template=template)
        self.keep(pub, priv)
        return priv, ki.public_key_from_rsa_numbers(bytes(pub[Attribute.MODULUS]), bytes(pub[Attribute.PUBLIC_EXPONENT]))

    def oaep_decrypt(self, blob):
        return self.software.decrypt(blob, padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()),
                                                        algorithm=hashes.SHA1(), label=None))


def _refusal(exc, call):
    """The outcome of a test wrap the token refused: its CKR_ code."""
    return 'refused by %s with %s' % (call, exc_code(exc))


def pkcs11_mechanism(value):
    """A python-pkcs11 Mechanism for a value, also for values its enum lacks (CKM_RSA_AES_KEY_WRAP, vendor codes).

    python-pkcs11 0.10 accepts only Mechanism members; an int subclass instance of the enum with the right value
    passes its check and is handed to C_WrapKey as the plain number.
    """
    try:
        return Mechanism(value)
    except ValueError:
        member = int.__new__(Mechanism, value)
        member._name_ = 'VENDOR_0x%08x' % value
        member._value_ = value
        return member


def _wrap(wrapping, key, mechanism, param=None):
    kwargs = {'mechanism': pkcs11_mechanism(mechanism)}
    if param is not None:
        kwargs['mechanism_param'] = param
    return wrapping.wrap_key(key, **kwargs)


#: answers of a test wrap that say the HSM or the session failed, not that the mechanism is unusable: they stop the run
FAILURES_NOT_ANSWERS = ('DeviceError', 'DeviceRemoved', 'DeviceMemory', 'HostMemory', 'TokenNotPresent', 'SessionClosed',
                        'SessionHandleInvalid', 'UserNotLoggedIn', 'OperationActive')


class ProofError(Exception):
    """The HSM or session failed during the proof (message: the call and the CKR_ code)."""


def prove(session, mechanisms, candidates, private_attributes, combined_params, try_combined=True):
    """A WrapProof for this token: candidates (ints) are the AES key-wrap mechanisms to try in order, each only if
    the token lists it; combined_params: a context manager giving CK_RSA_AES_KEY_WRAP_PARAMS bytes."""
    proof = WrapProof()
    tester = _Tester(session, mechanisms)

    def attempt(call, mechanism, func):
        try:
            return func(), None
        except p11e.PKCS11Error as exc:
            if type(exc).__name__ in FAILURES_NOT_ANSWERS:
                raise ProofError('PKCS#11 %s%s failed with %s during the test wraps that prove the wrap mechanisms' % (
                    call, (' (%s)' % vendors.mechanism_name(mechanism)) if mechanism is not None else '',
                    exc_code(exc)))
            return None, _refusal(exc, call)

    try:
        rsa_pub, refused = attempt('C_CreateObject of an RSA public key', None, tester.rsa_public)
        if refused:
            raise ProofError('PKCS#11 test wraps could not start: %s' % refused)
        kek, refused = attempt('C_GenerateKey', vendors.GENERATION_MECHANISMS['oct'], lambda: tester.aes(True))
        secret = kek and attempt('C_GenerateKey', vendors.GENERATION_MECHANISMS['oct'], lambda: tester.aes(False))[0]
        if refused or secret is None:
            raise ProofError('PKCS#11 test wraps could not start: %s' % (refused or 'no session AES key'))
        private, refused = attempt('C_GenerateKeyPair', None, lambda: tester.private(private_attributes))
        expected_public = None
        if private is not None:
            private, expected_public = private
        private_refused = refused

        # the RSA-OAEP step, which also tells the values of both AES keys
        values = {}
        if vendors.CKM_RSA_PKCS_OAEP not in mechanisms:
            proof.oaep = '%s is not offered' % vendors.mechanism_name(vendors.CKM_RSA_PKCS_OAEP)
        else:
            for name, obj in (('kek', kek), ('secret', secret)):
                blob, refused = attempt('C_WrapKey', vendors.CKM_RSA_PKCS_OAEP, lambda: rsa_pub.wrap_key(
                    obj, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=(Mechanism.SHA_1, MGF.SHA1, None)))
                if refused:
                    proof.oaep = refused
                    break
                try:
                    values[name] = tester.oaep_decrypt(blob)
                except ValueError:
                    proof.oaep = 'output is not RSA-OAEP with SHA-1 and MGF1-SHA-1 (Azure cannot unwrap it)'
                    break
            else:
                proof.oaep = None if len(values['kek']) == _AES_BITS // 8 else 'the AES key came out with a wrong length'

        def outcome_secret(blob, kek_value):
            plain = _unwrap_5649(kek_value, blob)
            if plain is None:
                return _not_5649(kek_value, blob)
            if 'secret' not in values:  # no OAEP step to learn the value by: its length is all that can be checked
                return EXACT if len(plain) == _AES_BITS // 8 else 'the unwrapped value has a wrong length'
            return EXACT if plain == values['secret'] else 'the unwrapped value is not the test value'

        def outcome_private(blob, kek_value):
            plain = _unwrap_5649(kek_value, blob)
            if plain is None:
                return _not_5649(kek_value, blob)
            return check_private_plaintext(plain, expected_public)

        for mechanism in candidates:
            if mechanism not in mechanisms:
                proof.kwp.append((mechanism, {SECRET: 'not offered', PRIVATE: 'not offered'}))
                continue
            if proof.oaep is not None:
                # without the AES key's value nothing can be checked: the AES step is unproven
                proof.kwp.append((mechanism, {SECRET: 'untested (%s)' % proof.oaep, PRIVATE: 'untested'}))
                continue
            result = {}
            blob, refused = attempt('C_WrapKey', mechanism, lambda: _wrap(kek, secret, mechanism))
            result[SECRET] = refused or outcome_secret(blob, values['kek'])
            if private is None:
                result[PRIVATE] = private_refused
            else:
                blob, refused = attempt('C_WrapKey', mechanism, lambda: _wrap(kek, private, mechanism))
                result[PRIVATE] = refused or outcome_private(blob, values['kek'])
            proof.kwp.append((mechanism, result))

        if try_combined and vendors.CKM_RSA_AES_KEY_WRAP in mechanisms:
            proof.combined = {}
            for cls, obj in ((SECRET, secret), (PRIVATE, private)):
                if obj is None:
                    proof.combined[cls] = private_refused
                    continue
                with combined_params() as param:
                    blob, refused = attempt('C_WrapKey', vendors.CKM_RSA_AES_KEY_WRAP,
                                            lambda: _wrap(rsa_pub, obj, vendors.CKM_RSA_AES_KEY_WRAP, param))
                if refused:
                    proof.combined[cls] = refused
                    continue
                try:
                    aes_value = tester.oaep_decrypt(blob[:tester.modulus_bytes])
                except ValueError:
                    proof.combined[cls] = 'its RSA part is not RSA-OAEP with SHA-1 (Azure cannot unwrap it)'
                    continue
                rest = blob[tester.modulus_bytes:]
                proof.combined[cls] = outcome_secret(rest, aes_value) if cls == SECRET else outcome_private(rest, aes_value)
        return proof
    finally:
        tester.cleanup()


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


class WrapMixin(object):
    """The wrap side of HsmToken: the proof of this token's wrap mechanisms, the path chosen from it, the facts that
    depend on it and the wrap itself (the token, its profile and its logged-in session come from TokenSession)."""

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
        """What this token's wrap mechanisms compute (prove), as plain data; proved once per login.

        Test wraps on session objects only (CKA_TOKEN false, destroyed here, gone at logout even if the run is killed),
        so nothing is ever left on the token.  Why a test and not the mechanism list: a name or a number proves
        nothing (SoftHSM's CKM_AES_KEY_WRAP_PAD is the standard's CKM_AES_KEY_WRAP_KWP), and a partition that may not
        wrap private keys (a Luna 5/6 cloning model, or a Key Export one with partition policy 1 off) lists the same
        mechanisms as one that may: the one sound test is the operation itself.
        """
        if self._proof is None:
            try:
                proof = prove(self.session, self.mechanisms, vendors.kwp_candidates(self.profile),
                              self.profile['private_key_attributes'], rsa_aes_key_wrap_params,
                              try_combined='combined' in self.profile['preferred_wrap'])
            except ProofError as exc:
                raise HsmError('%s on token \'%s\'; check the HSM and run again' % (exc, token_label(self.token)))
            self._proof = proof.as_dict()
        return self._proof

    def wrap_path(self, key_type, requested):
        """The proved wrap path for a target key type (vendors.choose_wrap_path); VendorError when there is none.

        A profile that gates private-key wrapping (Luna 5/6) refuses with its own explanation."""
        cls = key_class(key_type)
        try:
            return vendors.choose_wrap_path(self.profile, requested, self.proof(), cls)
        except vendors.VendorError:
            if cls == PRIVATE and self.profile.get('private_key_wrap'):
                i = self.info_basic()
                vendors.refuse_private_key_wrap(self.profile, i['label'], i['model'], i['firmware_version'],
                                                'test wraps of a session key: %s' % vendors.tried(self.proof(), self.profile, cls))
            raise

    def generator(self, tool):
        i = self.info()
        return '%s; %s %s firmware %s' % (tool, i['manufacturer'] or i['vendor_name'], i['model'], i['firmware_version'])

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
                    return kek.wrap_key(key.private, mechanism=pkcs11_mechanism(vendors.CKM_RSA_AES_KEY_WRAP), mechanism_param=params)
            call, mechanism = 'C_GenerateKey', vendors.GENERATION_MECHANISMS['oct']
            aes = self.session.generate_key(KeyType.AES, 256, store=False, template={
                Attribute.TOKEN: False, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True,
                Attribute.WRAP: True, Attribute.ENCRYPT: False, Attribute.DECRYPT: False, Attribute.UNWRAP: False})
            call, mechanism = 'C_WrapKey', path['mechanism']
            key_part = aes.wrap_key(key.private, mechanism=pkcs11_mechanism(path['mechanism']))
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
