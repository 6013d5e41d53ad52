# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's resource manager over HTTPS: the cloud metadata, /tenants and /subscriptions, as az CLI asks for them."""

from __future__ import annotations

from lab_http import http_call
from lab_sdk import credential

API = "2022-12-01"


def http_get(lab, url, token=None, method="GET"):
    return http_call(lab, method, url, headers={"Authorization": "Bearer " + token} if token else None)


def token_for(lab, scope, identity="lab-operator"):
    """A token as az gets it: MSAL client credentials with ``<resource>/.default``."""
    return credential(lab, identity).get_token(scope).token


def test_cloud_metadata(lab):
    rm = lab.env()["LAB_RESOURCE_MANAGER"]
    assert rm == lab.authority + "/"
    status, _h, doc = http_get(lab, rm + "metadata/endpoints?api-version=2022-09-01")  # what `az cloud register` asks, no token
    assert status == 200 and doc["resourceManager"] == rm
    assert doc["authentication"]["loginEndpoint"] == lab.authority and doc["authentication"]["audiences"] == [rm]
    assert "https://127." + doc["suffixes"]["keyVaultDns"] == lab.urls["premium"]
    assert "https://127." + doc["suffixes"]["mhsmDns"] == lab.urls["mhsm"]
    status, _h, listed = http_get(lab, rm + "metadata/endpoints?api-version=2019-05-01")  # the ARM_CLOUD_METADATA_URL form
    assert status == 200 and listed == [doc]
    status, _h, body = http_get(lab, rm + "metadata/endpoints")
    assert status == 400 and body["error"]["code"] == "MissingApiVersionParameter"
    status, _h, body = http_get(lab, rm + "metadata/endpoints?api-version=7.5")
    assert status == 400 and body["error"]["code"] == "InvalidApiVersionParameter"


def test_subscriptions_and_tenants(lab):
    rm = lab.env()["LAB_RESOURCE_MANAGER"]
    token = token_for(lab, rm + ".default")  # az: resource_to_scopes("https://127.0.0.1:PORT/")
    status, _h, body = http_get(lab, rm + "subscriptions?api-version=" + API, token)
    assert status == 200 and body == {"value": [], "count": {"type": "Total", "value": 0}}
    status, _h, body = http_get(lab, rm + "tenants?api-version=" + API, token_for(lab, rm + ".default", "lab-reader"))
    assert status == 200 and [t["tenantId"] for t in body["value"]] == [lab.tenant_id]
    status, _h, body = http_get(lab, rm + "subscriptions?api-version=" + API, token, method="POST")
    assert status == 405
    status, _h, body = http_get(lab, rm + "subscriptions/00000000-0000-0000-0000-000000000000?api-version=" + API, token)
    assert status == 404


def test_resource_manager_tokens(lab):
    rm = lab.env()["LAB_RESOURCE_MANAGER"]
    url = rm + "subscriptions?api-version=" + API
    status, headers, body = http_get(lab, url)
    assert status == 401 and body["error"]["code"] == "AuthenticationFailed"
    assert headers["WWW-Authenticate"].startswith('Bearer authorization_uri="%s/%s", error="invalid_token"' % (lab.authority, lab.tenant_id))
    vault_token = token_for(lab, lab.resource("premium") + "/.default")
    status, _h, body = http_get(lab, url, vault_token)
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationTokenAudience"
    arm_token = token_for(lab, rm + ".default")
    status, _h, body = http_get(lab, url, arm_token[:-4] + ("AAAA" if not arm_token.endswith("AAAA") else "BBBB"))
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken" and "AKV" not in body["error"]["message"]
    # and a vault refuses a resource manager token
    status, headers, body = http_get(lab, lab.urls["premium"] + "/keys?api-version=7.5", arm_token)
    assert status == 401 and body["error"]["code"] == "Unauthorized" and "WWW-Authenticate" in headers
