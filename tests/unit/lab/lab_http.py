# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Raw HTTPS to a lab server, for what the SDK hides (challenge headers, error bodies, unusual methods)."""

from __future__ import annotations

import http.client
import json
import ssl
from urllib.parse import urlencode, urlsplit


def http_call(lab, method, url, body=None, headers=None):
    """(status, headers, JSON body or None) of one request, trusting the lab CA."""
    parts = urlsplit(url)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ssl.create_default_context(cafile=lab.ca_path), timeout=10)
    try:
        path = parts.path + ("?" + parts.query if parts.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), (json.loads(data) if data else None)
    finally:
        conn.close()


def token_endpoint(lab, v2=True):
    """The lab tenant's token endpoint: ``.../oauth2/v2.0/token``, or the v1 ``.../oauth2/token``."""
    return "%s/%s/oauth2/%stoken" % (lab.authority, lab.tenant_id, "v2.0/" if v2 else "")


def post_form(lab, url, form):
    """POST ``form`` form-encoded, as a token request travels: (status, headers, JSON body)."""
    return http_call(lab, "POST", url, urlencode(form), {"Content-Type": "application/x-www-form-urlencoded"})
