# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Identities, tokens and permissions of the lab, without HTTP."""

from __future__ import annotations

import pytest

from lab import errors
from lab.tokens import ALL_KEY_PERMISSIONS, READER_PERMISSIONS, Identity, TokenAuthority
from lab_clock import Clock

TENANT = "11111111-2222-3333-4444-555555555555"
AUD = "https://0.0.1:18444"


@pytest.fixture()
def authority():
    clock = Clock()
    identities = [Identity("lab-operator", "op-id", "op-secret", {"*": list(ALL_KEY_PERMISSIONS)}),
                  Identity("lab-reader", "rd-id", "rd-secret", {"*": list(READER_PERMISSIONS)})]
    return TokenAuthority(TENANT, b"k" * 32, identities, clock=clock), clock


def test_authenticate(authority):
    tokens, _clock = authority
    assert tokens.authenticate("op-id", "op-secret").name == "lab-operator"
    with pytest.raises(errors.InvalidClient) as info:
        tokens.authenticate("op-id", "wrong")
    assert info.value.status == 401 and info.value.body()["error_codes"] == [7000215]
    assert info.value.body()["error_description"].startswith("AADSTS7000215: Invalid client secret provided")
    with pytest.raises(errors.UnauthorizedClient) as info2:
        tokens.authenticate("nobody", "x")
    assert info2.value.body()["error"] == "unauthorized_client" and "AADSTS700016" in info2.value.body()["error_description"]


def test_token_validation(authority):
    tokens, clock = authority
    token = tokens.issue(tokens.authenticate("op-id", "op-secret"), AUD)
    claims = tokens.validate(token, AUD)
    assert claims.appid == "op-id" and claims.tid == TENANT and claims.aud == AUD
    with pytest.raises(errors.Unauthorized, match="audience"):
        tokens.validate(token, "https://0.0.1:18445")
    head, payload, signature = token.split(".")
    with pytest.raises(errors.Unauthorized, match="signature"):
        tokens.validate("%s.%s.%s" % (head, payload, signature[::-1]), AUD)
    other = TokenAuthority(TENANT, b"x" * 32, tokens.identities.values(), clock=clock)
    with pytest.raises(errors.Unauthorized, match="signature"):
        other.validate(token, AUD)
    with pytest.raises(errors.Unauthorized):
        tokens.validate("not-a-jwt", AUD)
    clock.now += 3601
    with pytest.raises(errors.Unauthorized, match="expired") as info:
        tokens.validate(token, AUD)
    assert info.value.status == 401 and info.value.body()["error"]["code"] == "Unauthorized"


def test_permissions(authority):
    tokens, _clock = authority
    reader = tokens.validate(tokens.issue(tokens.identities["rd-id"], AUD), AUD)
    tokens.check_permission(reader, "premium", "get")
    with pytest.raises(errors.Forbidden) as info:
        tokens.check_permission(reader, "premium", "import")
    body = info.value.body()
    assert info.value.status == 403
    assert body["error"]["code"] == "Forbidden" and body["error"]["innererror"] == {"code": "ForbiddenByPolicy"}
    assert body["error"]["message"].startswith("The user, group or application 'appid=rd-id;")
    assert "does not have keys import permission on key vault 'premium;" in body["error"]["message"]


def test_time_claims(authority):
    """nbf and iat in the future (beyond a small clock skew) are refused like an expired token; within it accepted."""
    tokens, clock = authority
    op = tokens.identities["op-id"]
    ahead = TokenAuthority(TENANT, b"k" * 32, tokens.identities.values(), clock=lambda: clock.now + 3600)
    with pytest.raises(errors.Unauthorized, match="not yet valid") as info:
        tokens.validate(ahead.issue(op, AUD), AUD)
    assert info.value.status == 401
    slightly = TokenAuthority(TENANT, b"k" * 32, tokens.identities.values(), clock=lambda: clock.now + 30)
    assert tokens.validate(slightly.issue(op, AUD), AUD).appid == "op-id"
