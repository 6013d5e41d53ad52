# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The login endpoint on the base port (what MSAL and azure-identity ask): ``/{tenant}/v2.0/.well-known/openid-configuration``
and ``/{tenant}/oauth2/v2.0/token`` (client credentials: a secret or a certificate assertion), and their v1 forms."""

from __future__ import annotations

import logging
from typing import List
from urllib.parse import parse_qs

from . import errors
from .transport import Reply

LOG = logging.getLogger("lab.server")


class Login:
    """Endpoints of the lab tenant; ``lab`` gives the authority, tenant, token authority and the known audiences."""

    def __init__(self, lab) -> None:
        self.lab = lab

    def handle(self, method: str, segments: List[str], path: str, body: bytes) -> Reply:
        tenant = segments[0]
        rest = "/".join(segments[1:])
        if rest in ("v2.0/.well-known/openid-configuration", ".well-known/openid-configuration") and method == "GET":
            self._check_tenant(tenant)
            return Reply(200, self._openid_configuration(tenant, v2=rest.startswith("v2.0")))
        if rest in ("oauth2/v2.0/token", "oauth2/token") and method == "POST":
            self._check_tenant(tenant)
            return self._token(body, v2=rest.startswith("oauth2/v2.0"), endpoint="%s/%s/%s" % (self.lab.authority, tenant, rest))
        raise errors.NotFound("No lab endpoint at %s %s." % (method, path))

    def _check_tenant(self, tenant: str) -> None:
        if tenant != self.lab.tenant_id:
            raise errors.InvalidTenant("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the "
                                       "correct cloud." % tenant)

    def _openid_configuration(self, tenant: str, v2: bool) -> dict:
        base = "%s/%s" % (self.lab.authority, tenant)
        oauth = "%s/oauth2/v2.0" % base if v2 else "%s/oauth2" % base
        return {
            "token_endpoint": "%s/token" % oauth,
            "authorization_endpoint": "%s/authorize" % oauth,
            "device_authorization_endpoint": "%s/devicecode" % oauth,
            "issuer": "%s/v2.0" % base if v2 else "https://sts.windows.net/%s/" % tenant,
            "jwks_uri": "%s/discovery/v2.0/keys" % base,
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": None,
            "cloud_instance_name": "lab",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }

    def _token(self, body: bytes, v2: bool, endpoint: str = "") -> Reply:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        grant = form.get("grant_type")
        if grant != "client_credentials":
            raise errors.UnsupportedGrantType("The provided value for the input parameter 'grant_type' is not valid: %r. The lab only "
                                              "supports client_credentials." % grant)
        client_id = form.get("client_id", "")
        if "client_assertion" in form and "client_secret" in form:
            raise errors.InvalidRequest("Only one client credential may be presented: 'client_assertion' or 'client_secret'.")
        if "client_assertion" in form:
            # a certificate credential: a JWT signed by the key of a certificate registered on the application
            identity = self.lab.tokens.authenticate_assertion(client_id, form.get("client_assertion_type", ""), form["client_assertion"],
                                                              endpoint)
        else:
            if not client_id:
                raise errors.InvalidRequest("The request body must contain the following parameter: 'client_id'.")
            if "client_secret" not in form:
                raise errors.InvalidClient("The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
            identity = self.lab.tokens.authenticate(client_id, form["client_secret"])
        if v2:
            scopes = form.get("scope", "").split()
            resource_scopes = [s for s in scopes if s.endswith("/.default")]
            if len(resource_scopes) != 1:
                raise errors.InvalidRequest("The scope must be a single '<resource>/.default' scope for the client credentials flow, got %r."
                                            % form.get("scope", ""))
            resource = resource_scopes[0][: -len("/.default")]
        else:
            resource = form.get("resource", "")
        if resource.rstrip("/") not in self.lab.audiences:
            raise errors.InvalidResource("The resource principal named %s was not found in the tenant named %s. This can happen if the "
                                         "application has not been installed by the administrator of the tenant." % (resource, self.lab.tenant_id))
        token = self.lab.tokens.issue(identity, resource.rstrip("/"))
        LOG.info("token issued to appid=%s (%s) for %s", identity.client_id, identity.name, resource)
        lifetime = 3599
        return Reply(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token},
                     note=" appid=%s" % identity.client_id)
