# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Authentication for the Azure side: the modules' options and the environment resolve to exactly one azure-identity
credential.

The options keep azure.azcollection's names (auth_source, client_id, secret, tenant, x509_certificate_path, thumbprint,
cloud_environment) and resolve to a client secret, a certificate, the Azure CLI login or a managed identity.  Secrets go
into the credential and nowhere else: what may be kept of the resolved authentication (public_auth) names its source
for messages.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

from ansible.module_utils.six.moves import configparser

from ansible_collections.byok.keyvault.plugins.module_utils import azure_options
from ansible_collections.byok.keyvault.plugins.module_utils.azure_errors import KeyVaultError, first_line

AZURE_IDENTITY_IMPORT_ERROR = None
try:
    from azure.identity import (AzureCliCredential, CertificateCredential, ClientSecretCredential, ManagedIdentityCredential)
except ImportError:  # pragma: no cover - exercised on hosts without the SDK (KeyVaultModule fails first)
    AZURE_IDENTITY_IMPORT_ERROR = traceback.format_exc()

AUTH_SOURCES = azure_options.AUTH_SOURCES

CLOUDS = {
    'AzureCloud': 'https://login.microsoftonline.com',
    'AzurePublicCloud': 'https://login.microsoftonline.com',
    'AzureChinaCloud': 'https://login.chinacloudapi.cn',
    'AzureUSGovernment': 'https://login.microsoftonline.us',
}


def _first_env(*names):
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


#: where each credential field comes from in the environment (AWX's names first, then azure-identity's / azcollection's)
ENV_NAMES = {
    'client_id': ('AZURE_CLIENT_ID',),
    'secret': ('AZURE_SECRET', 'AZURE_CLIENT_SECRET'),
    'tenant': ('AZURE_TENANT', 'AZURE_TENANT_ID'),
    'x509_certificate_path': ('AZURE_CLIENT_CERTIFICATE_PATH', 'AZURE_X509_CERTIFICATE_PATH'),
    'x509_certificate_password': ('AZURE_CLIENT_CERTIFICATE_PASSWORD',),
    'thumbprint': ('AZURE_THUMBPRINT',),
}
CREDENTIAL_FIELDS = ('secret', 'x509_certificate_path', 'x509_certificate_password', 'thumbprint')


def _env_values():
    values = {}
    for name, variables in ENV_NAMES.items():
        values[name] = _first_env(*variables)
        values[name + '_from'] = next((v for v in variables if os.environ.get(v)), variables[0])
    return values


def _credential_file_values(profile):
    path = os.path.expanduser(os.environ.get('AZURE_CREDENTIAL_FILE') or '~/.azure/credentials')
    if not os.path.exists(path):
        return None
    parser = configparser.ConfigParser()
    parser.read(path)
    section = profile or _first_env('AZURE_PROFILE') or 'default'
    if not parser.has_section(section):
        return None
    values = dict(parser.items(section))
    out = dict((name, values.get(name)) for name in ('client_id', 'secret', 'tenant') + CREDENTIAL_FIELDS[1:])
    out['source'] = 'credential_file %s [%s]' % (path, section)
    out['x509_certificate_path_from'] = 'x509_certificate_path in %s [%s]' % (path, section)
    return out


def _has_credential(values):
    return bool(values and values.get('client_id') and (values.get('secret') or values.get('x509_certificate_path')))


def _one_credential(values, where):
    """A source gives a client secret or a certificate, not both (which one would be used is a guess)."""
    if values.get('secret') and values.get('x509_certificate_path'):
        raise KeyVaultError('%s give both a client secret and a certificate (x509_certificate_path); keep only the one the '
                            'application registration of client_id %s accepts' % (where, values.get('client_id')))
    return values


def resolve_auth(params):
    """The credential to build, from the options and environment, azcollection-style.

    A dict: source, client_id, tenant, and either secret or x509_certificate_path (with thumbprint,
    x509_certificate_password and x509_certificate_path_from: the option or variable it came from).
    auto: module options, then environment (AWX's AZURE_CLIENT_ID/AZURE_SECRET/AZURE_TENANT,
    azure-identity's AZURE_CLIENT_SECRET/AZURE_TENANT_ID/AZURE_CLIENT_CERTIFICATE_PATH), then
    ~/.azure/credentials, then the Azure CLI login, then a managed identity.
    """
    source = params.get('auth_source') or 'auto'
    opt = dict((name, params.get(name)) for name in ('client_id', 'tenant') + CREDENTIAL_FIELDS)
    opt['x509_certificate_path_from'] = 'x509_certificate_path'
    env = _env_values()
    if source == 'auto':
        if _has_credential(opt):
            return dict(_one_credential(opt, 'the options'), source='options', tenant=opt['tenant'] or env['tenant'])
        if _has_credential(env):
            return dict(_one_credential(env, 'the environment variables'), source='env')
        cf = _credential_file_values(params.get('profile'))
        if _has_credential(cf):
            return _one_credential(cf, cf['source'])
        return {'source': 'cli_or_msi', 'client_id': opt['client_id'] or env['client_id'], 'secret': None, 'tenant': None}
    if source == 'env':
        # the options, when they carry a secret or a certificate, decide the kind of credential; otherwise the environment
        chosen = opt if (opt['secret'] or opt['x509_certificate_path']) else env
        merged = dict((name, chosen.get(name)) for name in CREDENTIAL_FIELDS + ('x509_certificate_path_from',))
        merged.update(client_id=opt['client_id'] or env['client_id'], tenant=opt['tenant'] or env['tenant'], source='env')
        if not (merged['client_id'] and (merged['secret'] or merged['x509_certificate_path']) and merged['tenant']):
            raise KeyVaultError('auth_source env needs AZURE_CLIENT_ID, AZURE_TENANT (or AZURE_TENANT_ID) and either AZURE_SECRET '
                                '(or AZURE_CLIENT_SECRET) or AZURE_CLIENT_CERTIFICATE_PATH; set them (AWX injects them from an '
                                'Azure Resource Manager credential)')
        return _one_credential(merged, 'the options and environment variables' if chosen is opt else 'the environment variables')
    if source == 'credential_file':
        cf = _credential_file_values(params.get('profile'))
        if not (_has_credential(cf) and cf.get('tenant')):
            raise KeyVaultError('auth_source credential_file found no client_id, tenant and secret (or x509_certificate_path) in '
                                'profile %s of ~/.azure/credentials (or AZURE_CREDENTIAL_FILE); add them or choose another '
                                'auth_source' % (params.get('profile') or 'default'))
        return _one_credential(cf, cf['source'])
    return {'source': source, 'client_id': opt['client_id'] or env['client_id'], 'secret': None, 'tenant': None}


def authority_for(cloud_environment):
    """(authority host URL, is a private/custom cloud) for a cloud name or an https authority URL."""
    value = (cloud_environment or 'AzureCloud').strip()
    if value in CLOUDS:
        return CLOUDS[value], False
    if value.startswith('https://'):
        return value.rstrip('/'), True
    raise KeyVaultError("cloud_environment '%s' is unknown; use one of %s or the https:// URL of the cloud's "
                        "authority host" % (value, ', '.join(sorted(CLOUDS))))


def _normalize_thumbprint(value):
    return ''.join(ch for ch in str(value) if ch not in ': ').lower()


def _certificate_credential(auth, common):
    """A CertificateCredential for auth, after checking the file (and the thumbprint, when one is given)."""
    path = os.path.expanduser(auth['x509_certificate_path'])
    where = auth.get('x509_certificate_path_from') or 'x509_certificate_path'
    password = auth.get('x509_certificate_password')
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        raise KeyVaultError("%s '%s' cannot be read (%s); give the PEM file holding the private key and the certificate of the "
                            "service principal (or a PKCS#12 file)" % (where, path, exc.strerror or exc))
    if auth.get('thumbprint'):
        try:
            actual = _certificate_sha1(data, password)
        except (ValueError, TypeError) as exc:
            raise _certificate_load_error(where, path, exc)
        if _normalize_thumbprint(auth['thumbprint']) != actual:
            raise KeyVaultError("thumbprint %s does not match the certificate in %s '%s' (its SHA-1 thumbprint is %s); correct "
                                "thumbprint or leave it out" % (auth['thumbprint'], where, path, actual.upper()))
    try:
        return CertificateCredential(auth['tenant'], auth['client_id'], certificate_path=path, password=password, **common)
    except (ValueError, TypeError) as exc:
        raise _certificate_load_error(where, path, exc)


def _certificate_sha1(data, password):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    if b'-----BEGIN' in data:
        cert = x509.load_pem_x509_certificate(data)
    else:
        from cryptography.hazmat.primitives.serialization import pkcs12
        cert = pkcs12.load_key_and_certificates(data, password.encode('utf-8') if password else None)[1]
        if cert is None:
            raise ValueError('the PKCS#12 file holds no certificate')
    return cert.fingerprint(hashes.SHA1()).hex()  # nosec - the thumbprint Entra ID uses is SHA-1


def _certificate_load_error(where, path, exc):
    text = first_line(str(exc)) or type(exc).__name__
    if 'password' in text.lower() or 'decrypt' in text.lower() or 'encrypted' in text.lower():
        fix = 'set x509_certificate_password (or AZURE_CLIENT_CERTIFICATE_PASSWORD) to the password of its key'
    else:
        fix = ('it must be a PEM file with the RSA private key and the certificate (cat key.pem cert.pem), or a PKCS#12 file; '
               'a password-protected key needs x509_certificate_password (or AZURE_CLIENT_CERTIFICATE_PASSWORD)')
    return KeyVaultError("%s '%s' is not a usable certificate credential (%s); %s" % (where, path, text, fix))


def public_auth(auth):
    """What may be kept and shown of a resolved credential: no secret, no certificate password."""
    out = dict((k, v) for k, v in auth.items() if k not in ('secret', 'x509_certificate_password'))
    out['kind'] = ('certificate' if auth.get('x509_certificate_path') else 'secret' if auth.get('secret') else
                   auth.get('source'))
    return out


def build_credential(params):
    """(one azure-identity credential, what may be kept of the auth); secrets go into the credential and nowhere else."""
    auth = resolve_auth(params)
    authority, custom = authority_for(params.get('cloud_environment'))
    common = {'authority': authority}
    if custom:
        common['disable_instance_discovery'] = True
    if params.get('ca_bundle'):
        common['connection_verify'] = params['ca_bundle']
    if auth['source'] in ('options', 'env') or auth['source'].startswith('credential_file'):
        if not auth.get('tenant'):
            raise KeyVaultError('tenant is not set; give the Entra tenant id (option tenant or AZURE_TENANT) for client_id %s'
                                % auth['client_id'])
        if auth.get('x509_certificate_path'):
            return _certificate_credential(auth, common), public_auth(auth)
        return ClientSecretCredential(auth['tenant'], auth['client_id'], auth['secret'], **common), public_auth(auth)
    if auth['source'] == 'cli':
        return AzureCliCredential(), public_auth(auth)
    if auth['source'] == 'msi':
        credential = ManagedIdentityCredential(client_id=auth['client_id']) if auth['client_id'] else ManagedIdentityCredential()
        return credential, public_auth(auth)
    # auto without a secret or certificate anywhere: the CLI login, then a managed identity
    from azure.identity import ChainedTokenCredential
    msi = ManagedIdentityCredential(client_id=auth['client_id']) if auth['client_id'] else ManagedIdentityCredential()
    return ChainedTokenCredential(AzureCliCredential(), msi), public_auth(auth)
