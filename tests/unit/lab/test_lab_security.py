# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab as a boundary between local users: token time claims are checked like Azure does, and the admin
endpoints (/lab/...) want the secret only the state directory's owner can read."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import time
import uuid

import pytest

from lab.config import ADMIN_HEADER, ADMIN_SECRET_FILE, admin_headers
from lab_blobs import b64url
from lab_http import http_call

API = "7.5"


class In(int):
    """A time claim given as seconds from the moment the token is made (not from when the tests were collected, which
    on a loaded machine can be long before)."""


def forged(lab, vault="premium", **claims):
    """A token signed with the lab's key (what the token endpoint would issue), with some claims changed (In(n): now+n)."""
    now = int(time.time())
    claims = dict((k, now + int(v) if isinstance(v, In) else v) for k, v in claims.items())
    ident = lab.identity("lab-operator")
    payload = {"aud": lab.resource(vault), "iss": "https://sts.windows.net/%s/" % lab.tenant_id, "iat": now, "nbf": now,
               "exp": now + 3600, "tid": lab.tenant_id, "appid": ident.client_id, "oid": ident.client_id,
               "sub": ident.client_id, "idtyp": "app", "ver": "1.0", "uti": uuid.uuid4().hex}
    for name, value in claims.items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    signing_input = "%s.%s" % (b64url(json.dumps({"typ": "JWT", "alg": "HS256", "kid": "lab"}).encode()),
                               b64url(json.dumps(payload).encode()))
    signature = hmac.new(lab.config.signing_key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return "%s.%s" % (signing_input, b64url(signature))


def get_key(lab, token, name="no-such-key"):
    return http_call(lab, "GET", "%s/keys/%s?api-version=%s" % (lab.urls["premium"], name, API),
                     headers={"Authorization": "Bearer " + token})


def test_a_forged_token_with_current_claims_is_accepted(lab):
    status, _headers, body = get_key(lab, forged(lab))
    assert status == 404 and body["error"]["code"] == "KeyNotFound"


@pytest.mark.parametrize("claims, needle", [
    ({"nbf": In(3600), "exp": In(7200)}, "not yet valid"),
    ({"iat": In(3600), "exp": In(7200), "nbf": None}, "issued in the future"),
    ({"exp": In(-120)}, "expired"),
    ({"exp": None}, "expired"),
    ({"exp": str(int(time.time()) + 36000)}, "format"),
    ({"nbf": "soon"}, "format"),
    ({"iat": In(30), "exp": In(20), "nbf": None}, "exp is not after iat"),
])
def test_bad_time_claims_get_401_like_azure(lab, claims, needle):
    status, headers, body = get_key(lab, forged(lab, **claims))
    assert status == 401, (status, body)
    assert body["error"]["code"] == "Unauthorized" and needle in body["error"]["message"]
    assert "WWW-Authenticate" in headers  # the challenge, as the vault answers any refused token


def test_small_clock_skew_is_tolerated(lab):
    now = int(time.time())
    status, _headers, body = get_key(lab, forged(lab, nbf=now + 30, iat=now + 30))
    assert status == 404, body


def test_admin_secret_file_is_private(lab):
    path = os.path.join(lab.config.state_dir, ADMIN_SECRET_FILE)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(lab.config.state_dir).st_mode) == 0o700
    with open(path, encoding="ascii") as handle:
        assert handle.read().strip() == lab.config.admin_secret and len(lab.config.admin_secret) >= 32


ADMIN_CALLS = [("POST", "reset", b"{}"), ("POST", "faults", b'{"rate": 1.0, "kinds": ["500"]}'), ("GET", "faults", None),
               ("GET", "state", None), ("GET", "health", None), ("GET", "no-such-route", None)]


@pytest.mark.parametrize("method, what, body", ADMIN_CALLS)
def test_admin_calls_without_the_secret_are_refused(lab, method, what, body):
    name = "keep-%s" % uuid.uuid4().hex[:8]
    lab.vault("premium")  # the vault exists
    status, _h, created = http_call(lab, "POST", "%s/keys/%s/create?api-version=%s" % (lab.urls["premium"], name, API),
                                    body=json.dumps({"kty": "EC-HSM", "crv": "P-256"}),
                                    headers={"Authorization": "Bearer " + forged(lab), "Content-Type": "application/json"})
    assert status == 200, created
    url = "%s/lab/%s" % (lab.authority, what)
    status, _h, reply = http_call(lab, method, url, body=body, headers={"Content-Type": "application/json"})
    assert status == 401 and reply["error"]["code"] == "Unauthorized" and ADMIN_HEADER in reply["error"]["message"]
    status, _h, reply = http_call(lab, method, url, body=body, headers={"Content-Type": "application/json",
                                                                        ADMIN_HEADER: "not-the-secret"})
    assert status == 403 and reply["error"]["code"] == "Forbidden"
    assert lab.faults.describe()["rate"] == 0.0, "a refused admin call configured faults"
    assert get_key(lab, forged(lab), name)[0] == 200, "a refused admin call reset the vault"


def test_admin_calls_with_the_secret_are_accepted(lab):
    headers = dict(admin_headers(lab.config), **{"Content-Type": "application/json"})
    assert http_call(lab, "GET", lab.authority + "/lab/health", headers=headers)[0] == 200
    status, _h, reply = http_call(lab, "POST", lab.authority + "/lab/faults", body=b'{"next": ["503"], "method": "GET"}',
                                  headers=headers)
    assert status == 200 and reply["queued"] == [{"kind": "503", "method": "GET", "path": None}]
    status, _h, reply = http_call(lab, "POST", lab.authority + "/lab/faults", body=b'{"off": true}', headers=headers)
    assert status == 200 and reply["queued"] == []
    status, _h, reply = http_call(lab, "GET", lab.authority + "/lab/state", headers=headers)
    assert status == 200 and "premium" in reply
    status, _h, reply = http_call(lab, "POST", lab.authority + "/lab/reset", body=b"{}", headers=headers)
    assert status == 200
