# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure Key Vault for the collection's modules: one client factory, one retry layer, one error map.

Authentication options keep azure.azcollection's names (auth_source, client_id, secret, tenant,
x509_certificate_path, thumbprint, cloud_environment) and resolve to exactly one azure-identity
credential: a client secret, a certificate, the Azure CLI login or a managed identity.  Errors from azure-core
and azure-identity become KeyVaultError with a message that says what failed, where, and how to
fix it.  The import PUT is never resent blindly: every import creates a key version, so before a
retry the vault is asked whether the key already landed.  Every request to a vault is paced under
Azure's published service limits (Pacer), and a 429's Retry-After holds back the requests after it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import concurrent.futures
import json
import os
import threading
import time
import traceback

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves import configparser

from ansible_collections.byok.keyvault.plugins.module_utils import attributes
from ansible_collections.byok.keyvault.plugins.module_utils import host_lock
from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError
from ansible_collections.byok.keyvault.plugins.module_utils.module_base import ByokModule, failed_result, repeated
from ansible_collections.byok.keyvault.plugins.module_utils.vault_target import VAULT_KIND_CHOICES, VaultTarget, check_byok_cloud

AZURE_IMPORT_ERROR = None
try:
    from azure.core import exceptions as azexc
    from azure.identity import (AzureCliCredential, CertificateCredential, ClientSecretCredential, ManagedIdentityCredential)
    from azure.keyvault.keys import JsonWebKey, KeyClient
    from azure.core.pipeline.policies import SansIOHTTPPolicy
except ImportError:  # pragma: no cover - exercised on hosts without the SDK
    AZURE_IMPORT_ERROR = traceback.format_exc()
    SansIOHTTPPolicy = object

AUTH_SOURCES = ('auto', 'cli', 'env', 'credential_file', 'msi')

CLOUDS = {
    'AzureCloud': 'https://login.microsoftonline.com',
    'AzurePublicCloud': 'https://login.microsoftonline.com',
    'AzureChinaCloud': 'https://login.chinacloudapi.cn',
    'AzureUSGovernment': 'https://login.microsoftonline.us',
}

DEFAULT_KEY_OPS = ki.DEFAULT_KEY_OPS
KEY_OPS_CHOICES = ki.KEY_OPS_CHOICES

# Retries of the SDK pipeline (429 honouring Retry-After, 5xx, connection errors) for reads and creates
RETRY = dict(retry_total=4, retry_backoff_factor=0.8, retry_backoff_max=30)
IMPORT_ATTEMPTS = 4
#: seconds to keep asking for a name the vault is still deleting or purging (409 ObjectIsBeingDeleted)
NAME_RELEASE_SECONDS = 60
#: seconds to keep asking the vault whether an import whose answer was lost landed (import_confirm_timeout)
IMPORT_CONFIRM_SECONDS = 120
#: upper bound of the modules' parallel option (requests in flight to one vault)
MAX_PARALLEL = 16
#: how many vaults of a module's vaults option are served at the same time
MAX_VAULTS = 16
#: how many Key Vault vaults are served at the same time: a subscription allows five times one vault's limits
SUBSCRIPTION_VAULTS = 5

# Azure's service limits, per vault (Managed HSM: per instance), in windows of PACING_WINDOW seconds, weighted: a
# transaction costs 1/limit of its row's budget and the vault enforces the sum (Key Vault service limits; Managed HSM
# scaling guidance, whose operations per second are given here per 10 s).  A BYOK import counts as a CREATE.
PACING_WINDOW = 10.0
#: share of each budget the collection uses by default (pacing_share): all of it.  A request counts from when it is sent
#: until a window after its answer (the vault counts it somewhere in between), the challenge request included, so a
#: client alone on the vault cannot exceed a limit in any window the vault counts in; a smaller share leaves room for
#: other clients of the vault
PACING_SHARE = 1.0
PREMIUM_CREATE_LIMIT = 10
#: all other transactions on an HSM key of a Key Vault, by key type and size
PREMIUM_OTHER_LIMITS = {('RSA', 2048): 2000, ('RSA', 3072): 500, ('RSA', 4096): 250, ('EC', None): 2000}
MHSM_LIMITS = {'create': 10, 'delete': 100, 'other': 11000}

PERMISSION_HINT = {
    'get': "keys/get (access policy) or the RBAC role 'Key Vault Crypto Officer' (Managed HSM: 'Managed HSM Crypto User')",
    'list': "keys/list (access policy) or the RBAC role 'Key Vault Crypto Officer' (Managed HSM: 'Managed HSM Crypto User')",
    'create': "keys/create (access policy) or the RBAC role 'Key Vault Crypto Officer' (Managed HSM: 'Managed HSM Crypto User')",
    'import': "keys/import (access policy) or the RBAC role 'Key Vault Crypto Officer' (Managed HSM: 'Managed HSM Crypto User' "
              "with import rights)",
    'delete': "keys/delete (access policy) or the RBAC role 'Key Vault Crypto Officer'",
    'sign': "keys/sign (access policy) or the RBAC role 'Key Vault Crypto User'",
    'encrypt': "keys/encrypt (access policy) or the RBAC role 'Key Vault Crypto User'",
    'recover': "keys/recover (access policy) or the RBAC role 'Key Vault Crypto Officer'",
    'purge': "keys/purge (access policy) or the RBAC role 'Key Vault Crypto Officer'",
}


def vaults_option(**item_options):
    """The vaults option of a module that serves several vaults in one run (documented in each such module)."""
    options = dict(name=dict(type='str'), vault_url=dict(type='str', required=True),
                   vault_type=dict(type='str', default='auto', choices=list(VAULT_KIND_CHOICES)))
    options.update(item_options)
    return dict(type='list', elements='dict', options=options)


def azure_argument_spec():
    """Options every Azure-side module shares (documented in the byok.keyvault.azure doc fragment)."""
    return dict(
        vault_url=dict(type='str', required=True),
        vault_type=dict(type='str', default='auto', choices=list(VAULT_KIND_CHOICES)),
        auth_source=dict(type='str', default='auto', choices=list(AUTH_SOURCES),
                         fallback=(env_fallback, ['ANSIBLE_AZURE_AUTH_SOURCE'])),
        client_id=dict(type='str', no_log=False),
        secret=dict(type='str', no_log=True),
        x509_certificate_path=dict(type='path'),
        thumbprint=dict(type='str', no_log=False),
        x509_certificate_password=dict(type='str', no_log=True),
        tenant=dict(type='str'),
        profile=dict(type='str'),
        cloud_environment=dict(type='str', default='AzureCloud', fallback=(env_fallback, ['AZURE_CLOUD_ENVIRONMENT'])),
        ca_bundle=dict(type='path'),
        verify_challenge_resource=dict(type='bool', default=True),
        lock_timeout=dict(type='int', default=host_lock.DEFAULT_TIMEOUT),
        import_confirm_timeout=dict(type='int', default=IMPORT_CONFIRM_SECONDS),
        allow_unsupported_clouds=dict(type='bool', default=False),
        pacing=dict(type='bool', default=True),
        pacing_window=dict(type='float', default=PACING_WINDOW),
        pacing_share=dict(type='float', default=PACING_SHARE),
    )


parse_datetime = attributes.parse_datetime


class KeyVaultError(ByokError):
    """A failure with a one-line message naming what, where and how to fix; never carries a secret."""

    def __init__(self, message, status=None, code=None):
        super(KeyVaultError, self).__init__(message)
        self.status = status
        self.code = code


class ImportOutcomeUnknown(KeyVaultError):
    """An import PUT got no answer and the vault could not be asked in time whether the key landed.

    Not a failure: the key may be in the vault.  A re-run finds it (and imports nothing) or imports it.
    """

    outcome_unknown = True  # the report says 'unknown', never 'failed'

    def __init__(self, message, status=None, code='OutcomeUnknown'):
        super(ImportOutcomeUnknown, self).__init__(message, status=status, code=code)


# -- authentication ---------------------------------------------------------------------------------
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
    text = _first_line(str(exc)) or type(exc).__name__
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


class Pacer(object):
    """Keeps one module run's requests to one vault under the vault's limits; shared by the run's threads.

    Each request is put in its bucket (create: create and import; Managed HSM also delete: delete, purge, recover;
    other: the rest) with the weight of its row; a request whose cost does not fit into what the last window's requests
    left of the share (pacing_share, default PACING_SHARE) of the budget waits until it does.  A request counts from
    when it is sent until a window after its answer came (the vault counts it somewhere in between), so a slow answer
    cannot make two windows' worth of requests reach the vault in one.  A 429 holds back every request for its Retry-After.  The 'other' row of a key
    is learnt from the vault's answers (RSA size, EC); until then it is RSA-2048's.
    """

    def __init__(self, kind, window=PACING_WINDOW, share=PACING_SHARE, clock=time.monotonic, sleep=time.sleep):
        self.kind = kind
        self.window = float(window)
        self.share = share
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._log = {}
        self._rows = {}
        self._hold_until = 0.0
        self.waited = 0.0
        self.requests = 0
        self.throttled = 0

    @staticmethod
    def _segments(url):
        from ansible.module_utils.six.moves.urllib.parse import unquote, urlparse
        return [unquote(part) for part in urlparse(url).path.strip('/').split('/') if part]

    def classify(self, method, url):
        """(bucket, limit of the row) of one request."""
        seg = self._segments(url)
        method = method.upper()
        is_create = (method == 'PUT' and len(seg) == 2 and seg[0] == 'keys') or (
            method == 'POST' and len(seg) == 3 and seg[0] == 'keys' and seg[2] == 'create')
        if self.kind == 'managed_hsm':
            if is_create:
                return 'create', MHSM_LIMITS['create']
            if (method == 'DELETE' and len(seg) == 2 and seg[0] in ('keys', 'deletedkeys')) or (
                    method == 'POST' and len(seg) == 3 and seg[0] == 'deletedkeys' and seg[2] == 'recover'):
                return 'delete', MHSM_LIMITS['delete']
            return 'other', MHSM_LIMITS['other']
        if is_create:
            return 'create', PREMIUM_CREATE_LIMIT
        name = seg[1].lower() if len(seg) > 1 and seg[0] in ('keys', 'deletedkeys') else None
        return 'other', self._rows.get(name, PREMIUM_OTHER_LIMITS[('RSA', 2048)])

    def _fits(self, log, cost, now):
        """0 when cost fits now, else the seconds until it does (entries [time, cost]; time None: no answer yet)."""
        log[:] = [entry for entry in log if entry[0] is None or entry[0] > now - self.window]
        used = sum(entry[1] for entry in log)
        if not log or used + cost <= self.share + 1e-9:
            return 0.0
        for stamp, item in sorted((entry for entry in log if entry[0] is not None), key=lambda entry: entry[0]):
            used -= item
            if used + cost <= self.share + 1e-9:
                return max(stamp + self.window - now, 0.001)
        return self.window / 10  # only requests still waiting for their answer: look again soon

    def acquire(self, method, url):
        """Wait until the request fits (or the 429 hold ends), then count it; the entry to pass to answered()."""
        bucket, limit = self.classify(method, url)
        cost = 1.0 / limit
        while True:
            with self._lock:
                now = self.clock()
                log = self._log.setdefault(bucket, [])
                wait = max(self._hold_until - now, self._fits(log, cost, now))
                if wait <= 0:
                    entry = [None, cost]
                    log.append(entry)
                    self.requests += 1
                    return entry
            self.waited += wait
            self.sleep(wait)

    def answered(self, entry):
        """The request of entry got its answer (or failed): it counts for a window from now."""
        if entry is not None:
            with self._lock:
                entry[0] = self.clock()

    def observe(self, method, url, status, retry_after=None, body=None):
        """Learn from an answer: a 429 holds back the next requests; a key's type and size give its row."""
        with self._lock:
            if status == 429:
                self.throttled += 1
                self._hold_until = max(self._hold_until, self.clock() + (retry_after if retry_after is not None else 1.0))
                return
        if self.kind == 'managed_hsm' or not isinstance(body, dict) or not isinstance(body.get('key'), dict):
            return
        seg = self._segments(url)
        jwk = body['key']
        kty = str(jwk.get('kty') or '')
        row = None
        if kty.startswith('EC'):
            row = ('EC', None)
        elif kty.startswith('RSA') and isinstance(jwk.get('n'), str):
            size = len(base64.urlsafe_b64decode(jwk['n'] + '=' * (-len(jwk['n']) % 4)).lstrip(b'\x00')) * 8
            row = ('RSA', size) if ('RSA', size) in PREMIUM_OTHER_LIMITS else None
        if row and len(seg) > 1 and seg[0] in ('keys', 'deletedkeys'):
            with self._lock:
                self._rows[seg[1].lower()] = PREMIUM_OTHER_LIMITS[row]


class PacingPolicy(SansIOHTTPPolicy):
    """The Pacer in the SDK pipeline, after its retry policy: every attempt, page and poll is paced."""

    def __init__(self, pacer):
        super(PacingPolicy, self).__init__()
        self.pacer = pacer

    def on_request(self, request):
        request.context['byok_pacing'] = self.pacer.acquire(request.http_request.method, request.http_request.url)

    def on_exception(self, request):
        self.pacer.answered(request.context.get('byok_pacing'))

    def on_response(self, request, response):
        self.pacer.answered(request.context.get('byok_pacing'))
        http = response.http_response
        body = None
        if http.status_code == 200 and 'json' in (http.headers.get('Content-Type') or ''):
            try:
                body = json.loads(http.text())
            except ValueError:
                body = None
        self.pacer.observe(request.http_request.method, request.http_request.url, http.status_code,
                           _retry_after_value(http.headers.get('Retry-After')), body)


def client_kwargs(params, pacer=None):
    """Pipeline options for every client of a module run: the collection's retry policy, pacing and TLS trust."""
    kwargs = dict(RETRY)
    if pacer is not None:
        kwargs['custom_hook_policy'] = PacingPolicy(pacer)
    if params.get('ca_bundle'):
        kwargs['connection_verify'] = params['ca_bundle']
    if params.get('verify_challenge_resource') is False:
        kwargs['verify_challenge_resource'] = False
    return kwargs


# -- errors ---------------------------------------------------------------------------------------
def _error_code(exc):
    err = getattr(exc, 'error', None)
    code = getattr(err, 'code', None)
    if code:
        return code
    return None


def _first_line(text):
    text = (text or '').strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(('Content:', 'Code:', 'Message:', 'Inner error', '{', 'Trace ID')):
            return line
    return text.splitlines()[0] if text else ''


def _service_message(exc):
    err = getattr(exc, 'error', None)
    msg = getattr(err, 'message', None)
    return msg or _first_line(getattr(exc, 'message', None) or str(exc))


def explain(exc, action, vault_url, permission=None, auth=None):
    """A KeyVaultError for an exception raised by azure-core/azure-identity while doing `action`."""
    if isinstance(exc, KeyVaultError):
        return exc
    status = getattr(exc, 'status_code', None)
    code = _error_code(exc)
    text = str(exc)
    who = ''
    if auth and auth.get('client_id'):
        who = ' (client_id %s, from %s)' % (auth['client_id'], auth['source'])
    if 'CERTIFICATE_VERIFY_FAILED' in text or 'certificate verify failed' in text:
        where = 'the authority (cloud_environment)' if azexc is not None and isinstance(exc, azexc.ClientAuthenticationError) \
            else vault_url
        return KeyVaultError('the TLS certificate of %s is not trusted during %s; set ca_bundle to the CA file that signed it '
                             '(or fix the proxy that intercepts TLS)' % (where, action), code='TLS')
    if azexc is not None and isinstance(exc, azexc.ClientAuthenticationError) and status is None and (
            'Failed to resolve' in text or 'Failed to establish' in text or 'Connection refused' in text):
        return KeyVaultError('the authority of cloud_environment is unreachable during %s (%s); check cloud_environment, DNS, '
                             'proxy and firewall' % (action, _first_line(text)), code='Unreachable')
    if azexc is not None and isinstance(exc, azexc.ClientAuthenticationError) and status not in (403,):
        detail = _first_line(getattr(exc, 'message', None) or text)
        cert_where = (auth or {}).get('x509_certificate_path_from') or 'x509_certificate_path'
        if (auth or {}).get('kind') == 'certificate' and ('AADSTS700027' in text or 'AADSTS5002730' in text):
            fix = ('the certificate in %s is not registered on application %s: upload its public certificate to the app '
                   "registration (Certificates & secrets) or point %s to the registered one"
                   % (cert_where, (auth or {}).get('client_id'), cert_where))
        elif (auth or {}).get('kind') == 'certificate' and 'AADSTS700024' in text:
            fix = 'the client assertion is outside its validity time: fix the clock of this host (NTP)'
        elif (auth or {}).get('kind') == 'certificate' and 'AADSTS700023' in text:
            fix = 'the token endpoint is not the one of the tenant: check cloud_environment and tenant'
        elif (auth or {}).get('kind') == 'certificate' and 'AADSTS700021' in text:
            fix = 'the client assertion names another application: check client_id'
        elif 'AADSTS7000215' in text or 'invalid_client' in text:
            fix = 'the client secret is wrong or expired: fix %s' % (
                'the secret option' if (auth or {}).get('source') == 'options' else
                'the secret in %s' % auth['source'] if (auth or {}).get('source', '').startswith('credential_file') else
                'AZURE_SECRET (or AZURE_CLIENT_SECRET)')
        elif 'AADSTS700016' in text or 'unauthorized_client' in text:
            fix = 'the application is unknown in this tenant: fix client_id or tenant'
        elif 'AADSTS90002' in text:
            fix = 'the tenant is unknown: fix tenant'
        else:
            fix = 'check client_id, %s, tenant and cloud_environment' % (
                cert_where if (auth or {}).get('kind') == 'certificate' else 'secret')
        return KeyVaultError('authentication to %s failed during %s%s: %s; %s' % (vault_url, action, who, detail, fix),
                             status=401, code='Unauthorized')
    if status == 401:
        return KeyVaultError('%s refused the access token during %s%s (401 %s); check tenant and cloud_environment match '
                             'the vault' % (vault_url, action, who, code or ''), status=401, code=code)
    if status == 403:
        inner = _service_message(exc)
        if 'firewall' in inner.lower() or code == 'ForbiddenByFirewall':
            return KeyVaultError('%s refused the client by its firewall during %s: %s; add this host to the vault\'s network '
                                 'rules' % (vault_url, action, inner), status=403, code=code)
        need = PERMISSION_HINT.get(permission, 'the keys permission for this operation')
        return KeyVaultError('the identity%s may not %s in %s (403 %s); grant it %s'
                             % (who, action, vault_url, code or 'Forbidden', need), status=403, code=code)
    if status == 404:
        return KeyVaultError('%s: %s not found in %s (%s)' % (action, 'key', vault_url, _service_message(exc)), status=404, code=code)
    if status == 409:
        msg = _service_message(exc)
        if 'being deleted' in msg.lower():
            return KeyVaultError('%s in %s: %s (the vault is still deleting or purging a key of that name); run again in a '
                                 'minute' % (action, vault_url, msg), status=409, code='ObjectIsBeingDeleted')
        if 'deleted' in msg.lower():
            return KeyVaultError('%s in %s: %s; recover it (keys/recover permission, az keyvault key recover) or purge it '
                                 '(keys/purge permission, az keyvault key purge), then run again' % (action, vault_url, msg),
                                 status=409, code='ObjectIsDeletedButRecoverable')
        return KeyVaultError('%s in %s conflicts with the vault state (409): %s' % (action, vault_url, msg), status=409, code=code)
    if status == 429:
        return KeyVaultError('%s in %s was throttled (429) and retries ran out; run again later or with fewer forks'
                             % (action, vault_url), status=429, code=code)
    if status is not None and status >= 500:
        return KeyVaultError('%s in %s failed on the service side (%s %s) after retries; run again later'
                             % (action, vault_url, status, code or ''), status=status, code=code)
    if status is not None:
        return KeyVaultError('%s in %s was refused (%s %s): %s' % (action, vault_url, status, code or '', _service_message(exc)),
                             status=status, code=code)
    if azexc is not None and isinstance(exc, azexc.ServiceRequestError):
        return KeyVaultError('%s is unreachable during %s (%s); check vault_url, DNS, proxy and firewall'
                             % (vault_url, action, _first_line(text)), code='Unreachable')
    if azexc is not None and isinstance(exc, azexc.ServiceResponseError):
        return KeyVaultError('%s closed the connection during %s (%s); run again' % (vault_url, action, _first_line(text)),
                             code='ConnectionReset')
    if isinstance(exc, ValueError) and 'challenge' in text.lower():
        return KeyVaultError('%s answered with an authentication challenge for another resource during %s (%s); check '
                             'vault_url' % (vault_url, action, _first_line(text)), code='Challenge')
    return KeyVaultError('%s in %s failed: %s' % (action, vault_url, _first_line(text) or type(exc).__name__))


def is_retryable(err):
    return err.status in (408, 429, 500, 502, 503, 504) or err.code in ('Unreachable', 'ConnectionReset')


# -- the vault as the modules use it ------------------------------------------------------------------
class Vault(object):
    """Key Vault operations with the collection's semantics: get returns None when missing, import never duplicates."""

    def __init__(self, params, credential=None):
        """credential: (credential, auth) of build_credential() to share with other vaults of the run (one login)."""
        self.target = VaultTarget.parse(params['vault_url'], params.get('vault_type'))
        self.url = self.target.url
        # before any credential or request: Microsoft does not offer BYOK in some clouds (data in vault_target)
        if not params.get('allow_unsupported_clouds'):
            check_byok_cloud(self.target, params.get('cloud_environment'))
        self.vault_type = self.target.kind
        # auth says where the identity came from (for messages); the secret stays inside the credential only
        self.credential, self.auth = credential or build_credential(params)
        self.pacer = None
        if params.get('pacing', True):
            window = params.get('pacing_window')
            window = PACING_WINDOW if window is None else window
            if window <= 0:
                raise KeyVaultError('pacing_window is %s; give the length in seconds of the windows in which the vault counts '
                                    "requests (Azure: %d), or set pacing: false" % (window, PACING_WINDOW))
            share = params.get('pacing_share')
            share = PACING_SHARE if share is None else share
            if not 0 < share <= 1:
                raise KeyVaultError('pacing_share is %s; give the share of each service limit this run may use, more than 0 '
                                    'and at most 1 (default %s; for example 0.5 when another job uses the same vault at the '
                                    'same time)' % (share, PACING_SHARE))
            self.pacer = Pacer(self.vault_type, window, share)
        self.client_kwargs = client_kwargs(params, self.pacer)
        self.client = KeyClient(self.url, self.credential, **self.client_kwargs)
        confirm = params.get('import_confirm_timeout')
        self.confirm_seconds = IMPORT_CONFIRM_SECONDS if confirm is None else confirm
        if self.confirm_seconds < 0:
            raise KeyVaultError('import_confirm_timeout is %s; give the seconds to keep asking the vault whether an import '
                                'whose answer was lost landed (0 or more, default %d)' % (confirm, IMPORT_CONFIRM_SECONDS))

    def _call(self, action, permission, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # azure-core/identity raise many types; explain() maps them in one place
            raise explain(exc, action, self.url, permission, self.auth)

    def get(self, name, version=None, **kwargs):
        """The KeyVaultKey, or None when the vault has no such key."""
        try:
            return self.client.get_key(name, version=version, **kwargs)
        except Exception as exc:  # mapped below
            if azexc is not None and isinstance(exc, azexc.ResourceNotFoundError):
                return None
            raise explain(exc, 'get of key %s' % name, self.url, 'get', self.auth)

    def versions(self, name, **kwargs):
        """All versions' properties of a key (oldest first), [] when missing."""
        try:
            props = list(self.client.list_properties_of_key_versions(name, **kwargs))
        except Exception as exc:  # mapped below
            if azexc is not None and isinstance(exc, azexc.ResourceNotFoundError):
                return []
            raise explain(exc, 'listing versions of key %s' % name, self.url, 'list', self.auth)
        return sorted(props, key=lambda p: (p.created_on or 0, p.version or ''))

    def create_kek(self, name, size, expires_on=None):
        """Create the KEK; while the vault is still deleting or purging a key of that name (409 ObjectIsBeingDeleted,
        Azure's deletes and purges run in the background) ask again, for up to NAME_RELEASE_SECONDS."""
        deadline = time.monotonic() + NAME_RELEASE_SECONDS
        pause = 0.5
        while True:
            try:
                return self._call('creation of KEK %s' % name, 'create', self.client.create_rsa_key, name, size=size,
                                  hardware_protected=True, key_operations=['import'], expires_on=expires_on)
            except KeyVaultError as exc:
                if exc.code != 'ObjectIsBeingDeleted' or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 8)

    def get_deleted(self, name):
        """The soft-deleted key of that name (DeletedKey), or None."""
        try:
            return self.client.get_deleted_key(name)
        except Exception as exc:  # mapped below
            if azexc is not None and isinstance(exc, azexc.ResourceNotFoundError):
                return None
            raise explain(exc, 'get of deleted key %s' % name, self.url, 'get', self.auth)

    def recover(self, name):
        """Recover a soft-deleted key and wait until the vault serves it again; the KeyVaultKey."""
        poller = self._call('recovery of deleted key %s' % name, 'recover', self.client.begin_recover_deleted_key, name)
        self._call('waiting for the recovery of key %s' % name, 'recover', poller.wait)
        return poller.result()

    def delete(self, name, purge=False):
        """Delete a key (soft delete), and purge it when asked.

        A dict: deleted (False when the vault has no such key), purged, and purge_refused (why the vault cannot purge:
        purge protection, which keeps a deleted key until scheduled_purge_date) - a refused purge is not a failure.
        """
        out = {'deleted': False, 'purged': False, 'purge_refused': None, 'scheduled_purge_date': None}
        try:
            poller = self.client.begin_delete_key(name)
        except Exception as exc:  # mapped below
            if azexc is not None and isinstance(exc, azexc.ResourceNotFoundError):
                return out
            raise explain(exc, 'deletion of key %s' % name, self.url, 'delete', self.auth)
        out['deleted'] = True
        deleted = poller.result()
        when = getattr(deleted, 'scheduled_purge_date', None)
        out['scheduled_purge_date'] = when.isoformat() if when else None
        if not purge:
            return out
        level = getattr(getattr(deleted, 'properties', None), 'recovery_level', None) or ''
        if level and 'Purgeable' not in level:
            out['purge_refused'] = _purge_refused(name, self.url, level, out['scheduled_purge_date'])
            return out
        self._call('waiting for the deletion of key %s' % name, 'delete', poller.wait)
        try:
            self.client.purge_deleted_key(name)
        except Exception as exc:  # mapped below
            if getattr(exc, 'status_code', None) == 403 and 'purge protection' in _service_message(exc).lower():
                out['purge_refused'] = _purge_refused(name, self.url, 'purge protection', out['scheduled_purge_date'])
                return out
            raise explain(exc, 'purge of key %s' % name, self.url, 'purge', self.auth)
        out['purged'] = True
        return out

    def sign_and_verify(self, key):
        """Proof of possession: the vault signs a random digest with the key; verified here with its public key."""
        import hashlib
        from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
        summary = key_summary(key)
        public = ki.public_key_from_jwk({'kty': summary['kty'], 'n': key.key.n, 'e': key.key.e, 'crv': summary.get('curve'),
                                         'x': key.key.x, 'y': key.key.y})
        if ki.normalize_key_type(summary['kty']) == 'RSA':
            alg, hash_name = SignatureAlgorithm.rs256, 'sha256'
        else:
            alg, hash_name = {'P-256': (SignatureAlgorithm.es256, 'sha256'), 'P-384': (SignatureAlgorithm.es384, 'sha384'),
                              'P-521': (SignatureAlgorithm.es512, 'sha512'),
                              'P-256K': (SignatureAlgorithm.es256_k, 'sha256')}[summary['curve']]
        digest = hashlib.new(hash_name, os.urandom(32)).digest()
        crypto = CryptographyClient(key, self.credential, **self.client_kwargs)
        result = self._call('signature with key %s' % key.name, 'sign', crypto.sign, alg, digest)
        prehashed = {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[len(digest)]
        try:
            if ki.normalize_key_type(summary['kty']) == 'RSA':
                public.verify(result.signature, digest, padding.PKCS1v15(), utils.Prehashed(prehashed))
            else:
                half = len(result.signature) // 2
                der = utils.encode_dss_signature(int.from_bytes(result.signature[:half], 'big'),
                                                 int.from_bytes(result.signature[half:], 'big'))
                public.verify(der, digest, ec.ECDSA(utils.Prehashed(prehashed)))
        except InvalidSignature:
            raise KeyVaultError('the signature made by vault key %s does not verify with its public key; the vault does not '
                                'hold the private key of the HSM key' % key.id)
        return alg.value if hasattr(alg, 'value') else str(alg)

    def import_once(self, name, jwk_fields, byok_bytes, is_ours, enabled=True, not_before=None, expires_on=None, tags=None,
                    exists=True):
        """Import a BYOK blob as one new version, at most once.

        The PUT goes out without SDK retries.  After a retryable failure the vault is asked whether a
        version for which is_ours(key) is true appeared since; that confirmation is bounded by time
        (import_confirm_timeout, honouring Retry-After), not by a number of attempts.  Only when the
        vault says no version landed is the PUT sent again.  When the vault cannot say in time, the
        outcome is unknown: ImportOutcomeUnknown, never a failure, since the key may be in the vault.
        Returns (KeyVaultKey, attempts).  exists=False (the caller has just seen that the key has no
        current version) saves listing the versions before the PUT: there are none.
        """
        before = set(p.version for p in self.versions(name)) if exists else set()
        jwk = JsonWebKey(t=byok_bytes, **jwk_fields)
        last = None
        for attempt in range(1, IMPORT_ATTEMPTS + 1):
            try:
                key = self.client.import_key(name, jwk, hardware_protected=True, enabled=enabled, not_before=not_before,
                                             expires_on=expires_on, tags=tags, retry_total=0)
                return key, attempt
            except Exception as exc:  # mapped below
                last = explain(exc, 'import of key %s' % name, self.url, 'import', self.auth)
                retry_after = _retry_after(exc)
            if not is_retryable(last):
                raise last
            key = self._confirm_import(name, before, is_ours, last)
            if key is not None:
                return key, attempt
            if attempt < IMPORT_ATTEMPTS:
                time.sleep(min(retry_after if retry_after is not None else 2 ** attempt, 30))
        raise last

    def _confirm_import(self, name, before, is_ours, cause):
        """After a failed PUT: the version of ours that landed, or None when the vault says none did.

        Asks until the vault answers or import_confirm_timeout has passed (then ImportOutcomeUnknown).
        """
        deadline = time.monotonic() + self.confirm_seconds
        pause = 1.0
        while True:
            try:
                landed = [p for p in self.versions(name, retry_total=0) if p.version not in before]
                found = None
                for prop in landed:
                    key = self.get(name, prop.version, retry_total=0)
                    if key is not None and is_ours(key):
                        found = key
                        break
            except KeyVaultError as exc:
                if not is_retryable(exc):
                    raise ImportOutcomeUnknown(
                        'import of key %s in %s: outcome unknown: the import got no answer (%s) and the vault refused to say '
                        'whether it landed (%s); the key may be in the vault: re-run to confirm (a re-run imports nothing '
                        'when the key landed)' % (name, self.url, _answer(cause), _answer(exc)), status=exc.status)
                wait = _retry_after(exc.__cause__ or exc.__context__) if (exc.__cause__ or exc.__context__) else None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ImportOutcomeUnknown(
                        'import of key %s in %s: outcome unknown: the import got no answer (%s) and the vault could not be '
                        'asked within import_confirm_timeout (%s s; last answer: %s); the key may be in the vault: re-run to '
                        'confirm (a re-run imports nothing when the key landed)'
                        % (name, self.url, _answer(cause), self.confirm_seconds, _answer(exc)))
                time.sleep(max(0.0, min(wait if wait is not None else pause, remaining, 30)))
                pause = min(pause * 2, 10)
                continue
            if found is not None:
                return found
            if landed:
                raise KeyVaultError('import of key %s in %s: a new version appeared that is not the HSM key (another run '
                                    'imported at the same time?); inspect the versions of %s' % (name, self.url, name))
            return None

    def kcv(self, key, bits):
        """KCV of an oct-HSM key computed by the vault (AES-CBC, zero IV, one zero block), or None when not allowed."""
        from azure.keyvault.keys.crypto import CryptographyClient, EncryptionAlgorithm
        alg = EncryptionAlgorithm({128: 'A128CBC', 192: 'A192CBC', 256: 'A256CBC'}[bits])
        try:
            crypto = CryptographyClient(key, self.credential, **self.client_kwargs)
            result = crypto.encrypt(alg, b'\x00' * 16, iv=b'\x00' * 16)
        except Exception:  # a key without the encrypt op or permission has no vault-side KCV
            return None
        return ki.kcv_from_block(result.ciphertext)


def _purge_refused(name, vault_url, level, scheduled):
    return ('key %s in %s was deleted but cannot be purged (%s: purge protection); the vault keeps it until %s and purges it '
            'then' % (name, vault_url, level, scheduled or 'the end of its retention period'))


def _answer(err):
    """What a KeyVaultError was, in a few words for an outcome-unknown message: the status or the connection fault."""
    words = {'ConnectionReset': 'connection reset', 'Unreachable': 'vault unreachable'}
    if err.status is not None:
        return 'HTTP %s%s' % (err.status, (' ' + err.code) if err.code else '')
    return words.get(err.code, err.code or 'no answer')


def _retry_after(exc):
    response = getattr(exc, 'response', None)
    headers = getattr(response, 'headers', None) or {}
    return _retry_after_value(headers.get('Retry-After') if hasattr(headers, 'get') else None)


def _retry_after_value(value):
    """Seconds of a Retry-After header (a number of seconds; an HTTP date is not used by Key Vault), or None."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def key_fingerprint(key):
    """Fingerprint of a vault key's public part (RSA/EC), or None (oct)."""
    jwk = key.key
    kty = getattr(jwk, 'kty', None)
    kty = getattr(kty, 'value', kty)
    fields = {'kty': kty, 'n': getattr(jwk, 'n', None), 'e': getattr(jwk, 'e', None),
              'crv': getattr(getattr(jwk, 'crv', None), 'value', getattr(jwk, 'crv', None)),
              'x': getattr(jwk, 'x', None), 'y': getattr(jwk, 'y', None)}
    public = ki.public_key_from_jwk(fields) if ki.normalize_key_type(kty) != 'oct' else None
    return ki.fingerprint(public) if public is not None else None


def key_summary(key):
    """Facts about a vault key for results (no key material)."""
    jwk = key.key
    kty = getattr(jwk.kty, 'value', jwk.kty)
    ops = [getattr(o, 'value', o) for o in (jwk.key_ops or [])]
    d = {
        'kid': key.id,
        'name': key.name,
        'version': key.properties.version,
        'kty': kty,
        'key_ops': ops,
        'enabled': key.properties.enabled,
        'not_before': key.properties.not_before.isoformat() if key.properties.not_before else None,
        'expires_on': key.properties.expires_on.isoformat() if key.properties.expires_on else None,
        'tags': key.properties.tags or {},
        'fingerprint': key_fingerprint(key),
    }
    if ki.normalize_key_type(kty) == 'RSA' and jwk.n:
        d['key_size'] = len(jwk.n.lstrip(b'\x00')) * 8 if isinstance(jwk.n, bytes) else None
    elif ki.normalize_key_type(kty) == 'EC':
        d['curve'] = getattr(jwk.crv, 'value', jwk.crv)
    return d


class KeyVaultModule(ByokModule):
    """ByokModule with the Azure options merged in, the SDK import checked, and one Vault per run."""

    def __init__(self, argument_spec, **kwargs):
        self._vault = None
        libraries = [('azure-keyvault-keys and azure-identity', AZURE_IMPORT_ERROR), ('cryptography', ki.CRYPTOGRAPHY_IMPORT_ERROR)]
        super(KeyVaultModule, self).__init__(argument_spec, common=azure_argument_spec(), requirements=libraries, **kwargs)

    @property
    def vault(self):
        """The Vault of this run, built once (its URL checked, its credential resolved)."""
        if self._vault is None:
            self._vault = self.guard(Vault, self.params)
        return self._vault

    def check_parallel(self, what):
        """O(parallel), refused before any request when out of range (in the module's thread: never from a worker)."""
        parallel = self.params['parallel']
        if parallel < 1 or parallel > MAX_PARALLEL:
            self.fail('parallel must be between 1 and %d (concurrent %s requests to the vault); got %d' % (MAX_PARALLEL, what, parallel))
        return parallel

    def run_keys_parallel(self, items, func, key_field, what):
        """run_keys() with up to O(parallel) vault requests in flight; results in the order of items."""
        parallel = self.check_parallel(what)  # in run_vaults' threads it was checked before they started: never fails there
        if not items:
            return []
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(parallel, len(items))) as pool:
            return list(pool.map(lambda item: self.run_keys([item], func, key_field)[0], items))

    def run_vaults(self, entries, func, what, items=None, writes=False):
        """func(vault, entry) for each entry of O(vaults), the vaults served at the same time (one thread per vault, up to
        MAX_VAULTS at once, each vault with its own pacing and up to O(parallel) requests in flight, all with one
        credential).  At most SUBSCRIPTION_VAULTS Key Vault vaults are served at once: Azure's subscription-wide limit
        is that many times a vault's, and the vaults of a run may share a subscription (Managed HSMs have their own).

        Returns one result per entry, in order, each with the entry's name and vault_url; a vault that cannot be set up
        (an unsupported cloud) gets failed and msg, and func's own ByokError the same; with items (the entry's field
        that lists its keys), such a result also has keys, each failed with that message.  Any other exception fails
        only its vault, its keys then with outcome_unknown when writes (some requests may have changed the vault).
        """
        self.check_parallel(what)
        if not entries:
            return []
        credential = self.guard(build_credential, self.params)
        key_vaults = threading.BoundedSemaphore(SUBSCRIPTION_VAULTS)

        def serve(entry):
            vault = Vault(dict(self.params, vault_url=entry['vault_url'], vault_type=entry.get('vault_type') or 'auto'),
                          credential)
            if vault.vault_type == 'managed_hsm':
                return func(vault, entry)
            with key_vaults:
                return func(vault, entry)

        def one(entry):
            label = entry.get('name') or entry['vault_url']
            try:
                result = serve(entry)
            except ByokError as exc:
                result = dict(self.failure_details(exc), failed=True, changed=False, msg=str(exc))
                if items:
                    result['keys'] = [failed_result(item, 'name', exc) for item in entry.get(items) or []]
            except Exception as exc:  # an SDK or library error no message maps: this vault only, said as it is
                error = KeyVaultError('unexpected %s while serving vault %s: %s%s' % (
                    type(exc).__name__, label, _first_line(str(exc)),
                    '; some of its keys may have been imported: re-run to confirm' if writes else ''))
                error.outcome_unknown = writes
                result = dict(failed=True, changed=False, msg=str(error), exception=traceback.format_exc())
                if items:
                    result['keys'] = [failed_result(item, 'name', error) for item in entry.get(items) or []]
            result.update(name=label, vault_url=entry['vault_url'])
            return result

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(entries), MAX_VAULTS)) as pool:
            return list(pool.map(one, entries))

    def check_vaults(self, entries):
        """Refuse, before any request, a vaults list that names a vault twice or a name twice."""
        seen = {}
        for index, entry in enumerate(entries):
            target = self.guard(VaultTarget.parse, entry['vault_url'], entry.get('vault_type'),
                                option='vaults[%d].vault_url' % index)
            label = entry.get('name') or entry['vault_url']
            if target.lock_key in seen:
                self.fail('vaults lists vault %s twice (%s and %s); give each vault once, with all its keys'
                          % (target.url, seen[target.lock_key], label))
            seen[target.lock_key] = label
        twice = repeated(e.get('name') for e in entries if e.get('name'))
        if twice:
            self.fail('vaults uses the name %s twice; give each vault its own name' % ', '.join(twice))

    def failure_details(self, exc):
        """status_code and error_code of a KeyVaultError, for a failed result."""
        extra = {}
        if getattr(exc, 'status', None) is not None:
            extra['status_code'] = exc.status
        if getattr(exc, 'code', None):
            extra['error_code'] = exc.code
        return extra
