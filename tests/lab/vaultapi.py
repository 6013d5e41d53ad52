# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vault data plane, one port per vault: the 401 challenge, token and api-version checks, the routes of the
Key Vault keys REST API (``/keys``, ``/deletedkeys``) to :mod:`models` operations and their :mod:`wire` answers, with
the service limits and injected faults of :mod:`faults` around them."""

from __future__ import annotations

import functools
import re
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlencode, urlsplit

from . import errors, faults, models, wire
from .tokens import Claims
from .transport import Reply, error_reply, json_body, query_of

PAGE_SIZE = 25
API_VERSIONS_EXTRA = ("2016-10-01",)
API_VERSION_RE = re.compile(r"^(7\.\d+|20[2-9]\d-\d\d-\d\d)(-preview(\.\d+)?)?$")
LATEST_API_VERSION = "7.6"


def api_version_ok(value: str) -> bool:
    """7.x (and 7.x-preview), 2016-10-01 and the date-named versions from 2025 on (the SDK 4.11 default is 2025-07-01)."""
    return value in API_VERSIONS_EXTRA or bool(API_VERSION_RE.match(value))


class VaultApi:
    """The keys API of the lab's vaults; ``lab`` gives the authority, tenant, token authority, faults and limits."""

    def __init__(self, lab) -> None:
        self.lab = lab

    def _challenge_reply(self, vault: models.Vault, exc: errors.Unauthorized) -> Reply:
        reply = error_reply(exc)
        reply.headers["WWW-Authenticate"] = 'Bearer authorization="%s/%s", resource="%s"' % (
            self.lab.authority, self.lab.tenant_id, self.lab.resource(vault.name))
        return reply

    def handle(self, vault: models.Vault, method: str, target: str, headers, body: bytes) -> Reply:
        parts = urlsplit(target)
        query = query_of(parts.query)
        auth = headers.get("Authorization") or ""
        if not auth.lower().startswith("bearer "):
            return self._challenge_reply(vault, errors.Unauthorized("AKV10000: Request is missing a Bearer or PoP token."))
        try:
            claims = self.lab.tokens.validate(auth[7:].strip(), self.lab.resource(vault.name))
        except errors.Unauthorized as exc:
            return self._challenge_reply(vault, exc)
        api_version = query.get("api-version")
        if not api_version:
            raise errors.BadParameter("The 'api-version' query parameter is required.")
        if not api_version_ok(api_version):
            raise errors.BadParameter("The specified version (%s) is not recognized. Consider using the latest supported version (%s)."
                                      % (api_version, LATEST_API_VERSION))
        segments = [unquote(s) for s in parts.path.lstrip("/").split("/")]
        permission, action = self._route(vault, method, segments, query, body, parts.path)
        note = " appid=%s" % claims.appid
        throttled = faults.throttle(self.lab.state.throttle, vault, permission, segments, body)
        if throttled is not None:
            throttled.note = note + " [limit]"
            return throttled
        fault = self.lab.faults.pick(method, parts.path)
        if fault in ("429", "500", "503"):
            return faults.fault_reply(fault, note)
        reply = self._run(vault, claims, permission, action)
        reply.note = note
        return faults.apply_after(reply, fault, self.lab.faults.slow_seconds)

    def _run(self, vault: models.Vault, claims: Claims, permission: str, action: Callable[[], Reply]) -> Reply:
        try:
            self.lab.tokens.check_permission(claims, vault.name, permission)
            return action()
        except errors.LabError as exc:
            return error_reply(exc)

    @staticmethod
    def _route(vault: models.Vault, method: str, seg: List[str], query: Dict[str, str], body: bytes,
               path: str) -> Tuple[str, Callable[[], Reply]]:
        """Map (method, path) to (permission, action): the first route of :data:`ROUTES` whose pattern and method fit; a path
        that fits a pattern but none with this method is 405, one that fits none 404."""
        if seg and seg[-1] == "" and len(seg) > 1:
            seg = seg[:-1]
        fitting = [route for route in ROUTES if _fits(route[0], seg)]
        if not fitting:
            raise errors.NotFound("The lab vault has no endpoint at %s." % path)
        for pattern, route_method, permission, handler in fitting:
            if route_method == method:
                arguments = [part for part, want in zip(seg, pattern) if want is ARG]
                return permission, functools.partial(handler, _Request(vault, query, body, path), *arguments)
        raise errors.MethodNotAllowed("The requested resource does not support http method '%s'." % method)


class _Request:
    """What the handler of a route gets besides the names in its path: the vault, the query, the body, the path."""

    def __init__(self, vault: models.Vault, query: Dict[str, str], body: bytes, path: str) -> None:
        self.vault = vault
        self.query = query
        self.body = body
        self.path = path

    def json(self) -> dict:
        return json_body(self.body)

    def page(self, items: List[dict]) -> Reply:
        """One page of a list (``maxresults``, ``$skiptoken``), with the ``nextLink`` to the next one."""
        try:
            size = int(self.query.get("maxresults") or PAGE_SIZE)
            offset = int(self.query.get("$skiptoken") or 0)
        except ValueError as exc:
            raise errors.BadParameter("maxresults and $skiptoken must be integers.") from exc
        if not 1 <= size <= PAGE_SIZE:
            raise errors.BadParameter("maxresults must be between 1 and %d." % PAGE_SIZE)
        page = items[offset:offset + size]
        next_link = None
        if offset + size < len(items):
            params = {"api-version": self.query.get("api-version", LATEST_API_VERSION), "$skiptoken": offset + size, "maxresults": size}
            next_link = "%s%s?%s" % (self.vault.url, self.path, urlencode(params))
        return Reply(200, wire.page(page, next_link))


def _fits(pattern: Tuple[Optional[str], ...], seg: List[str]) -> bool:
    return len(pattern) == len(seg) and all(want is ARG or want == part for part, want in zip(seg, pattern))


def _bundle_of(vault: models.Vault, name: str, version: models.KeyVersion) -> dict:
    return wire.key_bundle(vault, vault.key_of(name), version)


def _current(key: models.Key) -> Tuple[models.Key, models.KeyVersion]:
    return key, key.current


def _no_content(_result: None) -> Reply:
    return Reply(204)


def _sign(request: _Request, name: str, version: str) -> Reply:
    item, signature = request.vault.sign(name, version, request.json())
    return Reply(200, wire.operation_result(request.vault, name, item, signature))


def _encrypt(request: _Request, name: str, version: str) -> Reply:
    item, ciphertext, iv = request.vault.encrypt(name, version, request.json())
    return Reply(200, wire.operation_result(request.vault, name, item, ciphertext, iv))


def _wrap_key(request: _Request, name: str, version: str) -> Reply:
    item, wrapped = request.vault.wrap_key(name, version, request.json())
    return Reply(200, wire.operation_result(request.vault, name, item, wrapped))


def _list_versions(request: _Request, name: str) -> Reply:
    vault = request.vault
    return request.page([wire.key_item(vault, vault.key_of(name), v) for v in vault.list_versions(name)])


#: in a route's pattern: a path segment that is an argument of its handler (a key name, a version)
ARG = None
#: the keys API: (path pattern, method, permission, handler(request, *arguments)); the first that fits a request wins, so
#: ``POST /keys/{name}/create`` and ``GET /keys/{name}/versions`` come before ``/keys/{name}/{version}``
ROUTES: Tuple[Tuple[Tuple[Optional[str], ...], str, str, Callable[..., Reply]], ...] = (
    (("keys",), "GET", "list", lambda r: r.page([wire.key_item(r.vault, k) for k in r.vault.list_keys()])),
    (("keys", ARG), "GET", "get", lambda r, name: Reply(200, wire.key_bundle(r.vault, *r.vault.get_key(name)))),
    (("keys", ARG), "PUT", "import", lambda r, name: Reply(200, _bundle_of(r.vault, name, r.vault.import_key(name, r.json())))),
    (("keys", ARG), "PATCH", "update", lambda r, name: Reply(200, wire.key_bundle(r.vault, *r.vault.update_key(name, None, r.json())))),
    (("keys", ARG), "DELETE", "delete", lambda r, name: Reply(200, wire.deleted_key_bundle(r.vault, r.vault.delete_key(name)))),
    (("keys", ARG, "create"), "POST", "create", lambda r, name: Reply(200, _bundle_of(r.vault, name, r.vault.create_key(name, r.json())))),
    (("keys", ARG, "versions"), "GET", "list", _list_versions),
    (("keys", ARG, ARG), "GET", "get", lambda r, name, version: Reply(200, wire.key_bundle(r.vault, *r.vault.get_key(name, version)))),
    (("keys", ARG, ARG), "PATCH", "update",
     lambda r, name, version: Reply(200, wire.key_bundle(r.vault, *r.vault.update_key(name, version, r.json())))),
    (("keys", ARG, ARG, "sign"), "POST", "sign", _sign),
    (("keys", ARG, ARG, "encrypt"), "POST", "encrypt", _encrypt),
    (("keys", ARG, ARG, "wrapkey"), "POST", "wrapKey", _wrap_key),
    (("deletedkeys",), "GET", "list", lambda r: r.page([wire.deleted_key_item(r.vault, k) for k in r.vault.list_deleted_keys()])),
    (("deletedkeys", ARG), "GET", "get", lambda r, name: Reply(200, wire.deleted_key_bundle(r.vault, r.vault.get_deleted_key(name)))),
    (("deletedkeys", ARG), "DELETE", "purge", lambda r, name: _no_content(r.vault.purge_deleted_key(name))),
    (("deletedkeys", ARG, "recover"), "POST", "recover",
     lambda r, name: Reply(200, wire.key_bundle(r.vault, *_current(r.vault.recover_deleted_key(name))))),
)
