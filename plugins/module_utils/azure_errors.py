# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure errors for the collection's modules: the one place an azure-core or azure-identity exception becomes a message.

KeyVaultError carries a one-line message that says what failed, where, and how to fix it (the permission to grant for a
403, the option to correct for a refused login), with the HTTP status and the service's error code.  Nothing outside
this file looks into an SDK exception: the client asks here whether one means "not found", "purge protection" or
"retry".
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError

AZURE_CORE_IMPORT_ERROR = None
try:
    from azure.core import exceptions as azexc
except ImportError:  # pragma: no cover - exercised on hosts without the SDK
    AZURE_CORE_IMPORT_ERROR = traceback.format_exc()
    azexc = None

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


def _error_code(exc):
    err = getattr(exc, 'error', None)
    code = getattr(err, 'code', None)
    if code:
        return code
    return None


def first_line(text):
    text = (text or '').strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(('Content:', 'Code:', 'Message:', 'Inner error', '{', 'Trace ID')):
            return line
    return text.splitlines()[0] if text else ''


def service_message(exc):
    err = getattr(exc, 'error', None)
    msg = getattr(err, 'message', None)
    return msg or first_line(getattr(exc, 'message', None) or str(exc))


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
                             'proxy and firewall' % (action, first_line(text)), code='Unreachable')
    if azexc is not None and isinstance(exc, azexc.ClientAuthenticationError) and status not in (403,):
        detail = first_line(getattr(exc, 'message', None) or text)
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
        inner = service_message(exc)
        if 'firewall' in inner.lower() or code == 'ForbiddenByFirewall':
            return KeyVaultError('%s refused the client by its firewall during %s: %s; add this host to the vault\'s network '
                                 'rules' % (vault_url, action, inner), status=403, code=code)
        lowered = inner.lower()
        if is_key_disabled(exc) or 'not yet valid' in lowered or 'expired' in lowered or 'not permitted on this key' in lowered:
            # the key's own state or operations refuse it, not the identity's permissions
            return KeyVaultError('%s refused %s: the key itself does not allow it now (403 %s: %s); enable it, wait for its '
                                 'not_before, or give it the operation in key_ops' % (vault_url, action, code or 'Forbidden', inner),
                                 status=403, code=code)
        need = PERMISSION_HINT.get(permission, 'the keys permission for this operation')
        return KeyVaultError('the identity%s may not %s in %s (403 %s); grant it %s'
                             % (who, action, vault_url, code or 'Forbidden', need), status=403, code=code)
    if status == 404:
        return KeyVaultError('%s: %s not found in %s (%s)' % (action, 'key', vault_url, service_message(exc)), status=404, code=code)
    if status == 409:
        msg = service_message(exc)
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
        return KeyVaultError('%s in %s was refused (%s %s): %s' % (action, vault_url, status, code or '', service_message(exc)),
                             status=status, code=code)
    if azexc is not None and isinstance(exc, azexc.ServiceRequestError):
        return KeyVaultError('%s is unreachable during %s (%s); check vault_url, DNS, proxy and firewall'
                             % (vault_url, action, first_line(text)), code='Unreachable')
    if azexc is not None and isinstance(exc, azexc.ServiceResponseError):
        return KeyVaultError('%s closed the connection during %s (%s); run again' % (vault_url, action, first_line(text)),
                             code='ConnectionReset')
    if isinstance(exc, ValueError) and 'challenge' in text.lower():
        return KeyVaultError('%s answered with an authentication challenge for another resource during %s (%s); check '
                             'vault_url' % (vault_url, action, first_line(text)), code='Challenge')
    return KeyVaultError('%s in %s failed: %s' % (action, vault_url, first_line(text) or type(exc).__name__))


def is_not_found(exc):
    """Whether an SDK exception says the vault has no such key (ResourceNotFoundError: 404 KeyNotFound)."""
    return azexc is not None and isinstance(exc, azexc.ResourceNotFoundError)


def is_key_disabled(exc):
    """Whether an SDK exception is the vault refusing to read a disabled key version (403, inner error KeyDisabled)."""
    if getattr(exc, 'status_code', None) != 403:
        return False
    inner = getattr(getattr(exc, 'error', None), 'innererror', None) or {}
    code = inner.get('code') if isinstance(inner, dict) else None
    return code == 'KeyDisabled' or 'disabled key' in service_message(exc).lower()


def is_purge_protected(exc):
    """Whether an SDK exception is the vault refusing a purge because of purge protection (403)."""
    return getattr(exc, 'status_code', None) == 403 and 'purge protection' in service_message(exc).lower()


def is_retryable(err):
    return err.status in (408, 429, 500, 502, 503, 504) or err.code in ('Unreachable', 'ConnectionReset')


def purge_refused(name, vault_url, level, scheduled):
    return ('key %s in %s was deleted but cannot be purged (%s: purge protection); the vault keeps it until %s and purges it '
            'then' % (name, vault_url, level, scheduled or 'the end of its retention period'))


def outcome_answer(err):
    """What a KeyVaultError was, in a few words for an outcome-unknown message: the status or the connection fault."""
    words = {'ConnectionReset': 'connection reset', 'Unreachable': 'vault unreachable'}
    if err.status is not None:
        return 'HTTP %s%s' % (err.status, (' ' + err.code) if err.code else '')
    return words.get(err.code, err.code or 'no answer')
