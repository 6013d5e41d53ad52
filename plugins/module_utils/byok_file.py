# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The .byok file: build, parse, validate, and write it safely.

Format (Microsoft's BYOK specification, schema 1.0.0)::

    {"schema_version": "1.0.0",
     "header": {"kid": "<versioned KEK id>", "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
     "ciphertext": "<base64url, unpadded>",
     "generator": "<tool and version; HSM and firmware>"}

ciphertext = RSA-OAEP(SHA-1) of the ephemeral AES key (KEK modulus length) || AES-KWP(RFC 5649) of the target key.

Beside each .byok file the collection writes ``<file>.json``, a metadata sidecar (no key material,
no secret): which HSM key was wrapped (fingerprint or KCV, type, size/curve) under which KEK.  It is
what makes byok_wrap idempotent and lets keyvault_import derive the key type.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import tempfile

from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError
from ansible_collections.byok.keyvault.plugins.module_utils.key_identity import b64url_decode, b64url_encode

SCHEMA_VERSION = '1.0.0'
ALG = 'dir'
ENC = 'CKM_RSA_AES_KEY_WRAP'
KEK_MODULUS_BYTES = (256, 384, 512)
SIDECAR_SUFFIX = '.json'

# https://{vault}.vault.azure.net/keys/{name}/{version}; versions are 32 hex characters in Azure
_KID_RE = re.compile(r'^(?P<vault>https://[^/\s]+)/keys/(?P<name>[0-9A-Za-z-]{1,127})(?:/(?P<version>[0-9A-Za-z]+))?/?\Z')
_NAME_RE = re.compile(r'^[0-9A-Za-z-]{1,127}\Z')
_B64URL_RE = re.compile(r'^[A-Za-z0-9_-]+={0,2}\Z')


class ByokFormatError(ByokError, ValueError):
    """A .byok file or KEK identifier that is not what Azure accepts; the message says what and how to fix."""


def validate_key_name(name, option='name'):
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ByokFormatError("%s '%s' is not a valid Key Vault key name: use 1-127 characters of 0-9, a-z, A-Z and '-'"
                              % (option, name))
    return name


def parse_kid(kid, require_version=True, option='kek_kid'):
    """Split a key identifier into (vault_url, name, version); versioned unless told otherwise."""
    m = _KID_RE.match(kid or '')
    if not m:
        raise ByokFormatError("%s '%s' is not a Key Vault key identifier; expected https://VAULT/keys/NAME/VERSION "
                              "(the 'kid' that byok_kek_fetch returns)" % (option, kid))
    if require_version and not m.group('version'):
        raise ByokFormatError("%s '%s' has no version; use the versioned kid (https://VAULT/keys/NAME/VERSION) "
                              "that byok_kek_fetch returns" % (option, kid))
    return m.group('vault'), m.group('name'), m.group('version')


def build(kid, ciphertext, generator):
    """The bytes of a .byok file (UTF-8 JSON) for a ciphertext already made inside the HSM."""
    parse_kid(kid)
    return json.dumps({
        'schema_version': SCHEMA_VERSION,
        'header': {'kid': kid, 'alg': ALG, 'enc': ENC},
        'ciphertext': b64url_encode(ciphertext),
        'generator': generator,
    }, indent=2).encode('utf-8') + b'\n'


class ByokBlob(object):
    def __init__(self, kid, ciphertext, generator):
        self.kid = kid
        self.ciphertext = ciphertext
        self.generator = generator

    def split(self, kek_modulus_bytes):
        """(RSA-OAEP part, AES-KWP part) for a KEK of the given modulus length in bytes."""
        return self.ciphertext[:kek_modulus_bytes], self.ciphertext[kek_modulus_bytes:]


def parse(data, source='the .byok file'):
    """Parse and validate .byok bytes; ByokFormatError names what is wrong."""
    try:
        doc = json.loads(data.decode('utf-8') if isinstance(data, bytes) else data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ByokFormatError('%s is not JSON (%s); it may be truncated: wrap the key again with byok_wrap' % (source, exc))
    if not isinstance(doc, dict):
        raise ByokFormatError('%s is JSON but not a .byok object; wrap the key again with byok_wrap' % source)
    if doc.get('schema_version') != SCHEMA_VERSION:
        raise ByokFormatError("%s has schema_version %r; Azure accepts '%s'" % (source, doc.get('schema_version'), SCHEMA_VERSION))
    header = doc.get('header')
    if not isinstance(header, dict):
        raise ByokFormatError('%s has no header object; wrap the key again with byok_wrap' % source)
    if header.get('alg') != ALG:
        raise ByokFormatError("%s has header.alg %r; Azure accepts '%s'" % (source, header.get('alg'), ALG))
    if header.get('enc') != ENC:
        raise ByokFormatError("%s has header.enc %r; Azure accepts '%s'" % (source, header.get('enc'), ENC))
    kid = header.get('kid')
    parse_kid(kid, option='%s header.kid' % source)
    text = doc.get('ciphertext')
    if not isinstance(text, str) or not _B64URL_RE.match(text):
        raise ByokFormatError('%s ciphertext is not base64url (it must use - and _ instead of + and /); '
                              'wrap the key again with byok_wrap' % source)
    ciphertext = b64url_decode(text)
    blob = ByokBlob(kid, ciphertext, doc.get('generator'))
    # RSA-OAEP part (256, 384 or 512 bytes) || AES-KWP part (a multiple of 8, at least 16 bytes)
    if len(ciphertext) < KEK_MODULUS_BYTES[0] + 16 or len(ciphertext) % 8:
        raise ByokFormatError('%s ciphertext has %d bytes, which is not an RSA-OAEP part of 256/384/512 bytes followed by an '
                              'AES key wrap; the file is damaged or truncated: wrap the key again with byok_wrap'
                              % (source, len(ciphertext)))
    return blob


def read(path):
    """Read and parse a .byok file; returns (raw bytes, ByokBlob)."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except (IOError, OSError) as exc:
        raise ByokFormatError('cannot read byok_file %s: %s; run byok_wrap first or fix the path' % (path, exc.strerror or exc))
    return data, parse(data, source='byok_file %s' % path)


def atomic_write(path, data, mode=0o600, replace=True):
    """Write bytes to path atomically (temp file in the same directory, fsync, then into place) with the given mode.

    replace=True renames over an existing file; replace=False links the temp file to the name, which fails with
    EEXIST (an OSError) when the name exists, so an existing file is never replaced.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ByokFormatError('the directory of %s does not exist; create it first' % path)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.rename(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def sidecar_path(path):
    return path + SIDECAR_SUFFIX


def write_sidecar(path, meta):
    atomic_write(sidecar_path(path), json.dumps(meta, indent=2, sort_keys=True).encode('utf-8') + b'\n', mode=0o600)


def read_sidecar(path):
    """The metadata written next to a .byok file, or None when absent or unreadable."""
    try:
        with open(sidecar_path(path), 'rb') as f:
            meta = json.loads(f.read().decode('utf-8'))
    except (IOError, OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def remove(path):
    """Remove a .byok file and its sidecar; returns True if anything was removed."""
    removed = False
    for p in (path, sidecar_path(path)):
        try:
            os.unlink(p)
            removed = True
        except OSError:
            pass
    return removed
