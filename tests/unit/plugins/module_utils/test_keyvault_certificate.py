# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate credentials: resolution from options, environment and credential file; checks before signing in."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest
from azure.core import exceptions as azexc
from azure.identity import CertificateCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.byok.keyvault.plugins.module_utils import azure_auth
from ansible_collections.byok.keyvault.plugins.module_utils import azure_errors
from ansible_collections.byok.keyvault.plugins.module_utils import vault_client

URL = 'https://contoso.vault.azure.net'
TENANT = '11111111-2222-3333-4444-555555555555'


@pytest.fixture
def clean_env(monkeypatch):
    for names in azure_auth.ENV_NAMES.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    for name in ('AZURE_CREDENTIAL_FILE', 'AZURE_PROFILE'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HOME', '/nonexistent')
    return monkeypatch


def _pem(tmp_path, key=None, password=None, name='sp.pem'):
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'sp')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    enc = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    path = tmp_path / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
                     + cert.public_bytes(serialization.Encoding.PEM))
    return str(path), cert.fingerprint(hashes.SHA1()).hex()


def _params(**kw):
    base = dict(auth_source='auto', client_id=None, secret=None, tenant=None, x509_certificate_path=None, thumbprint=None,
                x509_certificate_password=None, cloud_environment='AzureCloud')
    base.update(kw)
    return base


def test_options_certificate(clean_env, tmp_path):
    path, _thumb = _pem(tmp_path)
    auth = azure_auth.resolve_auth(_params(client_id='id', tenant=TENANT, x509_certificate_path=path))
    assert (auth['source'], auth['x509_certificate_path'], auth['secret']) == ('options', path, None)
    credential, public = azure_auth.build_credential(_params(client_id='id', tenant=TENANT, x509_certificate_path=path))
    assert isinstance(credential, CertificateCredential)
    assert public['kind'] == 'certificate' and public['x509_certificate_path_from'] == 'x509_certificate_path'


def test_env_certificate_azure_identity_names(clean_env, tmp_path):
    path, _thumb = _pem(tmp_path, password='pw-123')
    clean_env.setenv('AZURE_CLIENT_ID', 'id')
    clean_env.setenv('AZURE_TENANT_ID', TENANT)
    clean_env.setenv('AZURE_CLIENT_CERTIFICATE_PATH', path)
    clean_env.setenv('AZURE_CLIENT_CERTIFICATE_PASSWORD', 'pw-123')
    for source in ('env', 'auto'):
        auth = azure_auth.resolve_auth(_params(auth_source=source))
        assert auth['x509_certificate_path'] == path and auth['x509_certificate_password'] == 'pw-123'
        assert auth['x509_certificate_path_from'] == 'AZURE_CLIENT_CERTIFICATE_PATH'
    credential, public = azure_auth.build_credential(_params(auth_source='env'))
    assert isinstance(credential, CertificateCredential)
    assert 'pw-123' not in repr(public) and 'x509_certificate_password' not in public


def test_env_certificate_azcollection_name(clean_env, tmp_path):
    path, _thumb = _pem(tmp_path)
    clean_env.setenv('AZURE_CLIENT_ID', 'id')
    clean_env.setenv('AZURE_TENANT', TENANT)
    clean_env.setenv('AZURE_X509_CERTIFICATE_PATH', path)
    auth = azure_auth.resolve_auth(_params(auth_source='env'))
    assert auth['x509_certificate_path'] == path and auth['x509_certificate_path_from'] == 'AZURE_X509_CERTIFICATE_PATH'


def test_option_certificate_wins_over_env_secret(clean_env, tmp_path):
    """AWX injects AZURE_SECRET; a certificate given as option decides the kind of credential."""
    path, _thumb = _pem(tmp_path)
    clean_env.setenv('AZURE_CLIENT_ID', 'id')
    clean_env.setenv('AZURE_SECRET', 'env-secret')
    clean_env.setenv('AZURE_TENANT', TENANT)
    auth = azure_auth.resolve_auth(_params(auth_source='env', x509_certificate_path=path))
    assert auth['x509_certificate_path'] == path and auth['secret'] is None


def test_secret_and_certificate_in_one_source_refused(clean_env, tmp_path):
    path, _thumb = _pem(tmp_path)
    with pytest.raises(azure_errors.KeyVaultError, match='both a client secret and a certificate'):
        azure_auth.resolve_auth(_params(client_id='id', tenant=TENANT, secret='s', x509_certificate_path=path))
    clean_env.setenv('AZURE_CLIENT_ID', 'id')
    clean_env.setenv('AZURE_SECRET', 'env-secret')
    clean_env.setenv('AZURE_TENANT', TENANT)
    clean_env.setenv('AZURE_CLIENT_CERTIFICATE_PATH', path)
    with pytest.raises(azure_errors.KeyVaultError, match='environment variables give both') as info:
        azure_auth.resolve_auth(_params(auth_source='env'))
    assert 'env-secret' not in str(info.value)


def test_env_without_secret_or_certificate_names_both(clean_env):
    clean_env.setenv('AZURE_CLIENT_ID', 'id')
    clean_env.setenv('AZURE_TENANT', TENANT)
    with pytest.raises(azure_errors.KeyVaultError, match='AZURE_CLIENT_CERTIFICATE_PATH'):
        azure_auth.resolve_auth(_params(auth_source='env'))


def test_credential_file_certificate(clean_env, tmp_path):
    path, thumb = _pem(tmp_path)
    f = tmp_path / 'credentials'
    f.write_text('[default]\nclient_id=a\ntenant=%s\nx509_certificate_path=%s\nthumbprint=%s\n' % (TENANT, path, thumb.upper()))
    clean_env.setenv('AZURE_CREDENTIAL_FILE', str(f))
    credential, public = azure_auth.build_credential(_params(auth_source='credential_file'))
    assert isinstance(credential, CertificateCredential) and public['kind'] == 'certificate'


def test_thumbprint_checked(clean_env, tmp_path):
    path, thumb = _pem(tmp_path)
    colons = ':'.join(thumb[i:i + 2] for i in range(0, len(thumb), 2)).upper()
    azure_auth.build_credential(_params(client_id='id', tenant=TENANT, x509_certificate_path=path, thumbprint=colons))
    with pytest.raises(azure_errors.KeyVaultError) as info:
        azure_auth.build_credential(_params(client_id='id', tenant=TENANT, x509_certificate_path=path, thumbprint='00' * 20))
    msg = str(info.value)
    assert 'thumbprint' in msg and thumb.upper() in msg and 'x509_certificate_path' in msg and '\n' not in msg


@pytest.mark.parametrize('case, needle', [
    ('missing file', 'cannot be read'),
    ('no certificate', 'not a usable certificate credential'),
    ('EC key', 'RSA private key'),
    ('encrypted without password', 'x509_certificate_password'),
    ('wrong password', 'x509_certificate_password'),
])
def test_unusable_certificate_files(clean_env, tmp_path, case, needle):
    password = None
    if case == 'missing file':
        path = str(tmp_path / 'nope.pem')
    elif case == 'no certificate':
        path = str(tmp_path / 'key-only.pem')
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with open(path, 'wb') as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    elif case == 'EC key':
        path, _thumb = _pem(tmp_path, key=ec.generate_private_key(ec.SECP256R1()))
    else:
        path, _thumb = _pem(tmp_path, password='right-pw')
        password = 'wrong-pw' if case == 'wrong password' else None
    with pytest.raises(azure_errors.KeyVaultError) as info:
        azure_auth.build_credential(_params(client_id='id', tenant=TENANT, x509_certificate_path=path, x509_certificate_password=password))
    msg = str(info.value)
    assert needle in msg and 'x509_certificate_path' in msg and '\n' not in msg, msg
    assert 'right-pw' not in msg and 'wrong-pw' not in msg


def test_vault_keeps_no_secret(clean_env, tmp_path):
    """The Vault object keeps what it may show of the auth: no client secret, no certificate password."""
    path, _thumb = _pem(tmp_path, password='pw-keep-out')
    vault = vault_client.Vault(_params(vault_url=URL, client_id='id', tenant=TENANT, x509_certificate_path=path,
                                       x509_certificate_password='pw-keep-out'))
    assert 'pw-keep-out' not in repr(vault.auth)
    vault = vault_client.Vault(_params(vault_url=URL, client_id='id', tenant=TENANT, secret='s3cr3t-keep-out'))
    assert 's3cr3t-keep-out' not in repr(vault.auth) and vault.auth['kind'] == 'secret'


def test_unregistered_certificate_message(clean_env):
    auth = {'source': 'env', 'client_id': 'id', 'kind': 'certificate', 'x509_certificate_path_from': 'AZURE_CLIENT_CERTIFICATE_PATH'}
    exc = azexc.ClientAuthenticationError(message='CertificateCredential.get_token failed: AADSTS700027: The certificate with '
                                                  'identifier used to sign the client assertion is not registered on application.')
    msg = str(azure_errors.explain(exc, 'get of key k', URL, 'get', auth))
    assert 'AZURE_CLIENT_CERTIFICATE_PATH' in msg and 'not registered' in msg and 'upload' in msg and '\n' not in msg
    assert 'AZURE_SECRET' not in msg and 'client secret is wrong' not in msg
