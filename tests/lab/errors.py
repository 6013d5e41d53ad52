# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wire errors: one class per error code the lab answers with.

Key Vault and Resource Manager errors travel as ``{"error": {"code": ..., "message": ..., "innererror": {...}}}``.
The token endpoint (Entra ID / AAD) uses the OAuth2 shape
``{"error": "invalid_client", "error_description": "AADSTS...", "error_codes": [...]}``.
"""

from __future__ import annotations

from typing import Dict, Optional


class LabError(Exception):
    """A Key Vault error: HTTP status, wire code, message."""

    status = 500
    code = "InternalServerError"

    def __init__(self, message: str, innererror: Optional[str] = None, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.innererror = innererror
        self.headers = dict(headers or {})

    def body(self) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.innererror:
            error["innererror"] = {"code": self.innererror}
        return {"error": error}


class BadParameter(LabError):
    status = 400
    code = "BadParameter"


class Unauthorized(LabError):
    """401; the server adds the ``WWW-Authenticate`` challenge."""

    status = 401
    code = "Unauthorized"


class InvalidAudience(Unauthorized):
    """A valid token for another audience (the wire code stays ``Unauthorized`` at a vault)."""


class Forbidden(LabError):
    status = 403
    code = "Forbidden"


class KeyNotFound(LabError):
    status = 404
    code = "KeyNotFound"


class NotFound(LabError):
    """A path the Key Vault API does not have."""

    status = 404
    code = "NotFound"


class MethodNotAllowed(LabError):
    status = 405
    code = "MethodNotAllowed"


class Conflict(LabError):
    status = 409
    code = "Conflict"


class Throttled(LabError):
    status = 429
    code = "Throttled"


class InternalServerError(LabError):
    status = 500
    code = "InternalServerError"


class ServiceUnavailable(LabError):
    status = 503
    code = "ServiceUnavailable"


class AuthenticationFailed(Unauthorized):
    """Resource Manager: no bearer token."""

    code = "AuthenticationFailed"


class InvalidAuthenticationToken(Unauthorized):
    """Resource Manager: a token that fails validation."""

    code = "InvalidAuthenticationToken"


class InvalidAuthenticationTokenAudience(Unauthorized):
    """Resource Manager: a token for another audience (e.g. a vault's)."""

    code = "InvalidAuthenticationTokenAudience"


class MissingApiVersionParameter(BadParameter):
    """Resource Manager: no ``api-version``."""

    code = "MissingApiVersionParameter"


class InvalidApiVersionParameter(BadParameter):
    """Resource Manager: an ``api-version`` that is not a date."""

    code = "InvalidApiVersionParameter"


def forbidden_by_policy(client_id: str, tenant_id: str, permission: str, vault_name: str) -> Forbidden:
    """The 403 Azure answers when the access policy lacks a permission."""
    return Forbidden(
        "The user, group or application 'appid=%s;oid=%s;iss=https://sts.windows.net/%s/' does not have keys %s permission "
        "on key vault '%s;location=labregion'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
        % (client_id, client_id, tenant_id, permission, vault_name),
        innererror="ForbiddenByPolicy",
    )


def key_disabled(operation: str) -> Forbidden:
    """The 403 Azure answers for any operation but update (and list) on a disabled key version."""
    return Forbidden("Operation %s is not allowed on a disabled key." % operation, innererror="KeyDisabled")


class TokenError(Exception):
    """An OAuth2 error of the token endpoint (AADSTS...)."""

    status = 400
    error = "invalid_request"
    aadsts = 900144

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def body(self, trace_id: str = "", correlation_id: str = "") -> dict:
        return {
            "error": self.error,
            "error_description": "AADSTS%d: %s" % (self.aadsts, self.description),
            "error_codes": [self.aadsts],
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        }


class InvalidClient(TokenError):
    """Wrong client secret."""

    status = 401
    error = "invalid_client"
    aadsts = 7000215


class UnauthorizedClient(TokenError):
    """Unknown client id."""

    status = 400
    error = "unauthorized_client"
    aadsts = 700016


class InvalidClientAssertion(TokenError):
    """A client assertion (certificate credential) that Entra ID refuses; the AADSTS code says why."""

    status = 401
    error = "invalid_client"
    aadsts = 700027

    def __init__(self, aadsts: int, description: str) -> None:
        super().__init__(description)
        self.aadsts = aadsts


class InvalidRequest(TokenError):
    status = 400
    error = "invalid_request"
    aadsts = 900144


class InvalidTenant(TokenError):
    status = 400
    error = "invalid_request"
    aadsts = 90002


class InvalidResource(TokenError):
    status = 400
    error = "invalid_resource"
    aadsts = 500011


class UnsupportedGrantType(TokenError):
    status = 400
    error = "unsupported_grant_type"
    aadsts = 70003
