# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A vault a key goes to: the one place that reads a vault URL.

VaultTarget answers every question the collection asks of a vault URL: is it a vault URI, what is
its canonical form (what the SDK is given, what locks and reports use), which kind of vault it is
(Key Vault Premium or Managed HSM), whether two URLs name the same vault, and whether two key names
are the same key (Key Vault compares object names case-insensitively).  Pure Python: no SDK.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError

VAULT_KINDS = ('premium', 'managed_hsm')
VAULT_KIND_CHOICES = ('auto',) + VAULT_KINDS
DEFAULT_PORT = 443
#: upper bound of the modules' parallel options (requests in flight to one vault)
MAX_PARALLEL = 16
# DNS labels that tell the kind of a vault: <name>.vault.<suffix> and <name>.managedhsm.<suffix>
_KIND_LABELS = (('managedhsm', 'managed_hsm'), ('vault', 'premium'))
EXAMPLE = 'https://NAME.vault.azure.net'
#: clouds where Microsoft does not offer BYOK (importing HSM-protected keys from an on-premises HSM), the one place that
#: says so: cloud_environment name -> display name, the DNS suffixes of its Key Vault and Managed HSM hosts (Azure CLI's
#: cloud definitions: keyvault_dns .vault.azure.cn, mhsm_dns .managedhsm.azure.cn) and the reason.  Azure US Government
#: (vault.usgovcloudapi.net) offers BYOK and is not listed.
BYOK_UNAVAILABLE_CLOUDS = {
    'AzureChinaCloud': {
        'display_name': 'Azure China 21Vianet',
        'suffixes': ('vault.azure.cn', 'managedhsm.azure.cn'),
        'reason': 'its BYOK page: "This functionality is not available for Azure China 21Vianet."',
    },
}
#: the option (module) and the byok_azure field (inventory) that override the refusal when Microsoft's documentation changes
ALLOW_UNSUPPORTED_CLOUDS = 'allow_unsupported_clouds'


_PORT_RE = re.compile(r'[0-9]{1,5}\Z')
#: one DNS label (an IPv4 address is four of them); no '_', no spaces, no other character
_LABEL_RE = re.compile(r'(?!-)[a-z0-9-]{1,63}(?<!-)\Z')


def parallel_in_range(value):
    """Whether a parallel option (parallel, import_parallel) allows 1 to MAX_PARALLEL requests in flight."""
    return 1 <= value <= MAX_PARALLEL


def _one_line(text):
    """A value as shown in a one-line message: control characters escaped."""
    return ''.join(c if ' ' <= c != '\x7f' else repr(c)[1:-1] for c in text)


class VaultUrlError(ByokError, ValueError):
    """A vault URL that is not a vault URI; the message names the option and shows the right form."""


class VaultTarget(object):
    """A parsed vault URI (scheme https, a host, an optional port, nothing else)."""

    def __init__(self, host, port=None, kind=None):
        self.host = host
        self.port = port
        self.kind = kind

    @classmethod
    def parse(cls, url, kind='auto', option='vault_url'):
        """The VaultTarget of a vault URI; VaultUrlError naming `option` when it is not one."""
        if not isinstance(url, str) or not url.strip():
            raise VaultUrlError("%s is not set (or is empty); give the vault URI, e.g. %s (when it is templated, check what "
                                "the template reads, such as an environment variable that is not set)" % (option, EXAMPLE))
        text = url.strip()
        scheme, sep, rest = text.partition('://')
        if not sep or scheme.lower() != 'https':
            raise VaultUrlError("%s '%s' is not an https URL; use the vault URI, e.g. %s (Key Vault only accepts bearer "
                                "tokens over TLS)" % (option, url, EXAMPLE))
        authority, slash, path = rest.partition('/')
        if path.strip('/') or '?' in rest or '#' in rest:
            raise VaultUrlError("%s '%s' is not a vault URI; use only scheme and host, e.g. %s" % (option, url, EXAMPLE))
        if '@' in authority:
            raise VaultUrlError("%s '%s' carries user information; use only scheme and host, e.g. %s" % (option, url, EXAMPLE))
        host, colon, port_text = authority.partition(':')
        port = None
        if colon:
            if not _PORT_RE.match(port_text) or not 0 < int(port_text) < 65536:
                raise VaultUrlError("%s '%s' has an invalid port '%s'; leave the port out (443) or give one number from 1 to "
                                    "65535, e.g. %s:8443" % (option, _one_line(url), _one_line(port_text), EXAMPLE))
            port = int(port_text) if int(port_text) != DEFAULT_PORT else None
        host = host.lower()
        host = host[:-1] if host.endswith('.') else host
        if not host:
            raise VaultUrlError("%s '%s' has no host; use the vault URI, e.g. %s" % (option, _one_line(url), EXAMPLE))
        if len(host) > 253 or not all(_LABEL_RE.match(label) for label in host.split('.')):
            raise VaultUrlError("%s '%s' has an invalid host name '%s'; use DNS labels of letters, digits and '-' "
                                "separated by dots, e.g. %s" % (option, _one_line(url), _one_line(host), EXAMPLE))
        if kind in (None, '', 'auto'):
            kind = kind_from_host(host)
        elif kind not in VAULT_KINDS:
            raise VaultUrlError("vault type '%s' is unknown; use one of %s" % (kind, ', '.join(VAULT_KIND_CHOICES)))
        return cls(host, port, kind)

    @property
    def url(self):
        """Canonical URI: https, lowercase host, no default port, no trailing slash."""
        return 'https://%s%s' % (self.host, ':%d' % self.port if self.port else '')

    @property
    def lock_key(self):
        """What identifies this vault in lock names and report keys on a host."""
        return self.url

    def same_vault(self, other_url):
        """True when other_url (a URL or the vault part of a kid) names this vault."""
        try:
            other = VaultTarget.parse(other_url, option='the vault of the KEK id')
        except VaultUrlError:
            return False
        return other.url == self.url

    def __eq__(self, other):
        return isinstance(other, VaultTarget) and other.url == self.url

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.url)

    def __repr__(self):
        return 'VaultTarget(%r, kind=%r)' % (self.url, self.kind)


def byok_unavailable_cloud(host, cloud_environment=None):
    """The cloud_environment name of a cloud without BYOK that this vault host or cloud_environment names, or None."""
    host = (host or '').lower().rstrip('.')
    env = (cloud_environment or '').strip()
    for name, cloud in sorted(BYOK_UNAVAILABLE_CLOUDS.items()):
        if env.lower() == name.lower() or any(host == s or host.endswith('.' + s) for s in cloud['suffixes']):
            return name
    return None


def check_byok_cloud(url, cloud_environment=None, option='vault_url', override=ALLOW_UNSUPPORTED_CLOUDS):
    """Raise VaultUrlError when the vault is in a cloud where Microsoft offers no BYOK.

    url: a vault URL (or a VaultTarget); option/override: how the message names the vault and the override.
    """
    target = url if isinstance(url, VaultTarget) else VaultTarget.parse(url, option=option)
    name = byok_unavailable_cloud(target.host, cloud_environment)
    if name is None:
        return
    cloud = BYOK_UNAVAILABLE_CLOUDS[name]
    by_host = any(target.host == s or target.host.endswith('.' + s) for s in cloud['suffixes'])
    where = 'is in %s' % cloud['display_name'] if by_host else 'is reached through cloud_environment %s' % name
    raise VaultUrlError('%s %s %s, where Microsoft does not offer BYOK (%s), so no key can be transferred to it; use a '
                        'vault in another Azure cloud, or set %s: true if Microsoft\'s BYOK documentation now lists this '
                        'cloud' % (option, target.url, where, cloud['reason'], override))


def byok_refusal(url, cloud_environment=None, option='vault_url', override=ALLOW_UNSUPPORTED_CLOUDS):
    """The one-line refusal of check_byok_cloud, or None when BYOK is offered there."""
    try:
        check_byok_cloud(url, cloud_environment, option, override)
    except VaultUrlError as exc:
        return str(exc)
    return None


def kind_from_host(host):
    """premium or managed_hsm from a vault host's DNS labels; None when the host does not say (a private name)."""
    labels = host.lower().split('.')
    for label, kind in _KIND_LABELS:
        if label in labels[1:]:
            return kind
    return None


def key_name_key(name):
    """What two key names must share to be one key in a vault (Key Vault compares names case-insensitively)."""
    return name.lower() if isinstance(name, str) else name


def same_key_name(a, b):
    return key_name_key(a) == key_name_key(b)
