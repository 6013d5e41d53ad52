# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's Azure Resource Manager on the base port: what ``az cloud register`` and ``az login`` read before a
client talks to a vault.  ``GET /metadata/endpoints`` (anonymous), ``GET /tenants`` and ``GET /subscriptions`` (a bearer
token for the resource manager's audience).  :class:`ResourceManager` is its state and documents, :class:`Arm` the
endpoints."""

from __future__ import annotations

import re
from typing import Dict, List, Optional
from urllib.parse import urlparse

from . import errors
from .models import MANAGED_HSM, PREMIUM
from .tokens import Claims
from .transport import Reply, error_reply, query_of

ARM_API_VERSION_RE = re.compile(r"^\d{4}-\d\d-\d\d(-preview)?$")
ARM_METADATA_LIST_API_VERSION = "2019-05-01"  # this one answers a list of clouds (ARM_CLOUD_METADATA_URL)


class ResourceManager:
    """The lab's Azure Resource Manager: what a client reads before it talks to a vault.

    The cloud metadata document (``GET /metadata/endpoints``) names the lab authority as the login
    endpoint, the resource manager URL as the token audience, and DNS suffixes that turn the vault
    name ``127`` into the lab vaults' URLs (``127`` + ``.0.0.1:PORT``).  One tenant, no subscriptions.
    """

    CLOUD_NAME = "LabCloud"

    def __init__(self, url: str, tenant_id: str, login_endpoint: str, vault_urls: Dict[str, str], vault_kinds: Dict[str, str]) -> None:
        self.url = url.rstrip("/") + "/"
        self.tenant_id = tenant_id
        self.login_endpoint = login_endpoint
        self.vault_urls = dict(vault_urls)
        self.vault_kinds = dict(vault_kinds)

    @property
    def audience(self) -> str:
        """The ``aud`` of a token for the resource manager (the URL without its trailing slash)."""
        return self.url.rstrip("/")

    def _dns_suffix(self, kind: str) -> Optional[str]:
        """``0.0.1:PORT`` of the first vault (in ``vault_urls`` order) of that kind at ``https://127.0.0.1:PORT``, else None."""
        for name, url in self.vault_urls.items():
            parts = urlparse(url)
            if self.vault_kinds.get(name) == kind and parts.hostname == "127.0.0.1":
                return "0.0.1:%d" % parts.port
        return None

    def cloud_metadata(self) -> dict:
        """The document of ``GET /metadata/endpoints?api-version=2022-09-01`` (only what the lab serves)."""
        suffixes = {}
        for key, kind in (("keyVaultDns", PREMIUM), ("mhsmDns", MANAGED_HSM)):
            suffix = self._dns_suffix(kind)
            if suffix:
                suffixes[key] = suffix
        return {
            "name": self.CLOUD_NAME,
            "resourceManager": self.url,
            "authentication": {"loginEndpoint": self.login_endpoint, "audiences": [self.url], "tenant": "common",
                               "identityProvider": "AAD"},
            "suffixes": suffixes,
        }

    def tenants(self) -> List[dict]:
        """``GET /tenants``: the lab tenant."""
        return [{"id": "/tenants/%s" % self.tenant_id, "tenantId": self.tenant_id, "tenantCategory": "Home",
                 "displayName": "Lab tenant", "defaultDomain": "lab.invalid", "domains": ["lab.invalid"], "tenantType": "AAD"}]

    def subscriptions(self) -> List[dict]:
        """``GET /subscriptions``: none (the lab has vaults, no Azure subscriptions)."""
        return []


class Arm:
    """The resource manager's endpoints; ``lab`` gives the authority, tenant and token authority."""

    def __init__(self, lab, model: ResourceManager) -> None:
        self.lab = lab
        self.model = model

    def handle(self, method: str, segments: List[str], parts, headers) -> Reply:
        """``GET /metadata/endpoints`` (anonymous), ``GET /tenants`` and ``GET /subscriptions`` (bearer token for the resource manager)."""
        query = query_of(parts.query)
        api_version = query.get("api-version")
        if not api_version:
            raise errors.MissingApiVersionParameter("The api-version query parameter (?api-version=) is required for all requests.")
        if not ARM_API_VERSION_RE.match(api_version):
            raise errors.InvalidApiVersionParameter("The api-version '%s' is invalid. The supported versions are dates, e.g. '2022-12-01'."
                                                    % api_version)
        what = "/".join(segments)
        if what not in ("metadata/endpoints", "tenants", "subscriptions"):
            raise errors.NotFound("The lab resource manager has no endpoint at %s." % parts.path)
        if method != "GET":
            raise errors.MethodNotAllowed("The requested resource does not support http method '%s'." % method)
        if what == "metadata/endpoints":
            doc = self.model.cloud_metadata()
            return Reply(200, [doc] if api_version == ARM_METADATA_LIST_API_VERSION else doc)
        try:
            claims = self._arm_claims(headers.get("Authorization") or "")
        except errors.Unauthorized as exc:
            reply = error_reply(exc)
            reply.headers["WWW-Authenticate"] = 'Bearer authorization_uri="%s/%s", error="invalid_token", error_description="%s"' % (
                self.lab.authority, self.lab.tenant_id, exc.message.replace('"', "'"))
            return reply
        items = self.model.tenants() if what == "tenants" else self.model.subscriptions()
        return Reply(200, {"value": items, "count": {"type": "Total", "value": len(items)}}, note=" appid=%s" % claims.appid)

    def _arm_claims(self, auth: str) -> Claims:
        """The claims of a resource manager request, or the resource manager's 401 errors."""
        if not auth.lower().startswith("bearer "):
            raise errors.AuthenticationFailed("Authentication failed. The 'Authorization' header is missing.")
        try:
            return self.lab.tokens.validate(auth[7:].strip(), self.model.audience)
        except errors.InvalidAudience as exc:
            raise errors.InvalidAuthenticationTokenAudience(
                "The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed "
                "audiences '%s','%s'." % (self.model.url, self.model.audience)) from exc
        except errors.Unauthorized as exc:
            raise errors.InvalidAuthenticationToken("The access token is invalid: %s" % re.sub(r"^AKV\d+: ", "", exc.message)) from exc
