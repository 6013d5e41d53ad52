# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wire errors: one class per error code the lab answers with, made from the tables below.

Key Vault and Resource Manager errors travel as ``{"error": {"code": ..., "message": ..., "innererror": {...}}}``.
The token endpoint (Entra ID / AAD) uses the OAuth2 shape
``{"error": "invalid_client", "error_description": "AADSTS...", "error_codes": [...]}``.
"""

from __future__ import annotations

from typing import Dict, Optional, Type


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


def _subclass(name: str, base: type, doc: Optional[str], attributes: Dict[str, object]) -> type:
    return type(name, (base,), dict(attributes, __doc__=doc, __module__=__name__))


def _wire_error(name: str, base: Type[LabError], status: Optional[int] = None, code: Optional[str] = None,
                doc: Optional[str] = None) -> Type[LabError]:
    """The class of one Key Vault or Resource Manager error: its wire code is its name unless ``code`` says otherwise,
    its status the base's unless ``status`` does."""
    attributes: Dict[str, object] = {"code": code or name}
    if status is not None:
        attributes["status"] = status
    return _subclass(name, base, doc, attributes)


# -- Key Vault (and Resource Manager) errors, one per wire code: name, base, status, code when not the name --------
BadParameter = _wire_error("BadParameter", LabError, 400)
Unauthorized = _wire_error("Unauthorized", LabError, 401, doc="401; the server adds the ``WWW-Authenticate`` challenge.")
InvalidAudience = _wire_error("InvalidAudience", Unauthorized, code="Unauthorized",
                              doc="A valid token for another audience (the wire code stays ``Unauthorized`` at a vault).")
Forbidden = _wire_error("Forbidden", LabError, 403)
KeyNotFound = _wire_error("KeyNotFound", LabError, 404)
NotFound = _wire_error("NotFound", LabError, 404, doc="A path the Key Vault API does not have.")
MethodNotAllowed = _wire_error("MethodNotAllowed", LabError, 405)
Conflict = _wire_error("Conflict", LabError, 409)
Throttled = _wire_error("Throttled", LabError, 429)
InternalServerError = _wire_error("InternalServerError", LabError, 500)
ServiceUnavailable = _wire_error("ServiceUnavailable", LabError, 503)
# Resource Manager's own codes
AuthenticationFailed = _wire_error("AuthenticationFailed", Unauthorized, doc="Resource Manager: no bearer token.")
InvalidAuthenticationToken = _wire_error("InvalidAuthenticationToken", Unauthorized, doc="Resource Manager: a token that fails validation.")
InvalidAuthenticationTokenAudience = _wire_error("InvalidAuthenticationTokenAudience", Unauthorized,
                                                 doc="Resource Manager: a token for another audience (e.g. a vault's).")
MissingApiVersionParameter = _wire_error("MissingApiVersionParameter", BadParameter, doc="Resource Manager: no ``api-version``.")
InvalidApiVersionParameter = _wire_error("InvalidApiVersionParameter", BadParameter,
                                         doc="Resource Manager: an ``api-version`` that is not a date.")


def forbidden_by_policy(client_id: str, tenant_id: str, permission: str, vault_name: str) -> LabError:
    """The 403 Azure answers when the access policy lacks a permission."""
    return Forbidden(
        "The user, group or application 'appid=%s;oid=%s;iss=https://sts.windows.net/%s/' does not have keys %s permission "
        "on key vault '%s;location=labregion'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
        % (client_id, client_id, tenant_id, permission, vault_name),
        innererror="ForbiddenByPolicy",
    )


def key_disabled(operation: str) -> LabError:
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


def _token_error(name: str, status: int, error: str, aadsts: int, doc: Optional[str] = None) -> Type[TokenError]:
    """The class of one token endpoint error: HTTP status, OAuth2 ``error`` and the AADSTS code Entra ID gives it."""
    return _subclass(name, TokenError, doc, {"status": status, "error": error, "aadsts": aadsts})


# -- token endpoint errors: name, status, OAuth2 error, AADSTS code ----------------------------------------------
InvalidClient = _token_error("InvalidClient", 401, "invalid_client", 7000215, doc="Wrong client secret.")
UnauthorizedClient = _token_error("UnauthorizedClient", 400, "unauthorized_client", 700016, doc="Unknown client id.")
InvalidRequest = _token_error("InvalidRequest", 400, "invalid_request", 900144)
InvalidTenant = _token_error("InvalidTenant", 400, "invalid_request", 90002)
InvalidResource = _token_error("InvalidResource", 400, "invalid_resource", 500011)
UnsupportedGrantType = _token_error("UnsupportedGrantType", 400, "unsupported_grant_type", 70003)


class InvalidClientAssertion(TokenError):
    """A client assertion (certificate credential) that Entra ID refuses; the AADSTS code says why."""

    status = 401
    error = "invalid_client"
    aadsts = 700027

    def __init__(self, aadsts: int, description: str) -> None:
        super().__init__(description)
        self.aadsts = aadsts
