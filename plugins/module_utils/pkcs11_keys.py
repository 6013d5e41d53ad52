# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Target keys on a token: find, describe, generate, destroy, the lone public objects an interrupted generation leaves,
and the seal after a transfer.

HsmKey holds handles and public facts only (fingerprint, KCV), never key material.  KeysMixin gives HsmToken its key
operations over the logged-in session of pkcs11_session.TokenSession; PKCS#11 errors are mapped there (explain).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils import vendors
from ansible_collections.byok.keyvault.plugins.module_utils.pkcs11_session import PKCS11_IMPORT_ERROR, HsmError, explain, token_label

try:
    from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11 import exceptions as p11e
except ImportError:  # pragma: no cover - hosts without python-pkcs11 fail in HsmModule
    pass

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


class KeysMixin(object):
    """The key operations of HsmToken (the token, its profile and its logged-in session come from TokenSession)."""

    def _objects(self, attrs):
        try:
            return list(self.session.get_objects(attrs))
        except p11e.PKCS11Error as exc:
            raise HsmError(explain(exc, 'object search', call='C_FindObjects'))

    def index(self):
        """{label: [objects]} of every object stored on the token: one search and one label read per object, for a step
        that looks at many keys (each labelled() search costs a walk over the whole token on some HSMs)."""
        out = {}
        for obj in self._objects({Attribute.TOKEN: True}):
            out.setdefault(self._attr(obj, Attribute.LABEL) or '', []).append(obj)
        return out

    def indexed(self, index, label, key_id=None):
        """What labelled(label, key_id) would return, from an index()."""
        objects = index.get(label) or []
        if key_id:
            objects = [o for o in objects if bytes(self._attr(o, Attribute.ID) or b'') == bytes(key_id)]
        return objects

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

    def token_keys(self):
        """Every private or secret key stored on the token (CKA_TOKEN true), each with the public halves that share its
        label: [(label, key object, [public objects])], one search per object class."""
        keys = []
        for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
            for obj in self._objects({Attribute.CLASS: cls, Attribute.TOKEN: True}):
                label = self._attr(obj, Attribute.LABEL) or ''
                public = self._objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label}) \
                    if cls == ObjectClass.PRIVATE_KEY and label else []
                keys.append((label, obj, public))
        return keys

    def key_labels(self):
        """The labels of the private and secret keys stored on the token: one search per object class, one attribute
        read per key (no public halves, no key facts)."""
        labels = set()
        for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
            for obj in self._objects({Attribute.CLASS: cls, Attribute.TOKEN: True}):
                labels.add(self._attr(obj, Attribute.LABEL) or '')
        return labels

    def describe_object(self, label, obj, public):
        """An HsmKey for a private/secret key object found by token_keys(), paired with its public half by CKA_ID."""
        obj_id = bytes(self._attr(obj, Attribute.ID) or b'')
        pub = [p for p in public if bytes(self._attr(p, Attribute.ID) or b'') == obj_id]
        return self._describe(label, obj, pub[0] if pub else None)

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
                                       % (token_label(self.token), label,
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
            # the private key's own point where the token gives one (as the modulus above); else its public object's,
            # which is the key's only once the private key's signature verifies with it
            point = self._attr(obj, Attribute.EC_POINT)
            paired = point is not None
            if point is None:
                point = self._attr(pub, Attribute.EC_POINT) if pub else None
            if not curve or point is None:
                raise HsmError("EC key '%s' has no public key object with CKA_EC_POINT on the token; cannot compute its "
                               "fingerprint (generate it with hsm_keygen)" % label)
            key = HsmKey(key_type='EC', key_size=ki.CURVE_BITS[curve], curve=curve, **common)
            key.public_key = ki.public_key_from_ec_point(curve, point)
            if not paired:
                self._check_pair(label, obj, key.public_key)
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

    def _check_pair(self, label, private, public_key):
        """HsmError when the private key under the label signs what its public object's key does not verify: the two
        objects are not one key pair (one was replaced), so the public object says nothing of the key that would be
        wrapped.  A private key that may not sign (CKA_SIGN false, or refused) proves nothing and is not refused."""
        sign = getattr(private, 'sign', None)  # python-pkcs11 gives a key without CKA_SIGN no sign method
        if sign is None:
            return
        digest = os.urandom(32)
        try:
            signature = sign(digest, mechanism=Mechanism.ECDSA)
        except p11e.PKCS11Error:
            return
        if not ki.signature_verifies(public_key, digest, signature):
            raise HsmError("EC key '%s': its public key object is not the public half of its private key (a signature "
                           "made by the private key does not verify with it), so one of the two was replaced; nothing was "
                           "compared, wrapped or imported for it. Find out who changed the token; to start again, remove "
                           "both objects and generate the key" % label)

    def key_wrap(self, key, value):
        """RFC 3394 key wrap of value with an AES key of the token (an HsmKey), its AES blocks computed in the HSM: what
        the vault's wrapKey with the same key gives.  None when there is no such key or it may not encrypt."""
        if key is None or key.key_type != 'oct':
            return None
        encrypt = getattr(key.private, 'encrypt', None)
        if encrypt is None:
            return None
        try:
            return ki.aes_key_wrap(lambda block: encrypt(block, mechanism=Mechanism.AES_ECB), value)
        except p11e.PKCS11Error:
            return None

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
