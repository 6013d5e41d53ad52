# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vault data plane, one port per vault: the 401 challenge, token and api-version checks, the routes of the
Key Vault keys REST API (``/keys``, ``/deletedkeys``) to :mod:`models` operations and their :mod:`wire` answers, with
the service limits and injected faults of :mod:`faults` around them."""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Tuple
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

    def _route(self, vault: models.Vault, method: str, seg: List[str], query: Dict[str, str], body: bytes,
               path: str) -> Tuple[str, Callable[[], Reply]]:
        """Map (method, path) to (permission, action)."""
        if seg and seg[-1] == "" and len(seg) > 1:
            seg = seg[:-1]
        if seg and seg[0] == "keys":
            return self._route_keys(vault, method, seg[1:], query, body, path)
        if seg and seg[0] == "deletedkeys":
            return self._route_deleted(vault, method, seg[1:], query, path)
        raise errors.NotFound("The lab vault has no endpoint at %s." % path)

    def _route_keys(self, vault: models.Vault, method: str, seg: List[str], query: Dict[str, str], body: bytes,
                    path: str) -> Tuple[str, Callable[[], Reply]]:
        routes: Dict[str, Tuple[str, Callable[[], Reply]]] = {}
        if not seg:
            routes["GET"] = ("list", lambda: self._page(vault, [wire.key_item(vault, k) for k in vault.list_keys()], query, path))
        elif len(seg) == 1:
            name = seg[0]
            routes["GET"] = ("get", lambda: Reply(200, wire.key_bundle(vault, *vault.get_key(name))))
            routes["PUT"] = ("import", lambda: Reply(200, _bundle_of(vault, name, vault.import_key(name, json_body(body)))))
            routes["PATCH"] = ("update", lambda: Reply(200, wire.key_bundle(vault, *vault.update_key(name, None, json_body(body)))))
            routes["DELETE"] = ("delete", lambda: Reply(200, wire.deleted_key_bundle(vault, vault.delete_key(name))))
        elif len(seg) == 2 and seg[1] == "create" and method == "POST":
            name = seg[0]
            routes["POST"] = ("create", lambda: Reply(200, _bundle_of(vault, name, vault.create_key(name, json_body(body)))))
        elif len(seg) == 2 and seg[1] == "versions" and method == "GET":
            name = seg[0]
            routes["GET"] = ("list", lambda: self._page(vault, [wire.key_item(vault, vault.key_of(name), v) for v in vault.list_versions(name)],
                                                        query, path))
        elif len(seg) == 2:
            name, version = seg
            routes["GET"] = ("get", lambda: Reply(200, wire.key_bundle(vault, *vault.get_key(name, version))))
            routes["PATCH"] = ("update", lambda: Reply(200, wire.key_bundle(vault, *vault.update_key(name, version, json_body(body)))))
        elif len(seg) == 3 and seg[2] == "sign":
            name, version = seg[0], seg[1]
            routes["POST"] = ("sign", lambda: self._sign(vault, name, version, body))
        elif len(seg) == 3 and seg[2] == "encrypt":
            name, version = seg[0], seg[1]
            routes["POST"] = ("encrypt", lambda: self._encrypt(vault, name, version, body))
        if not routes:
            raise errors.NotFound("The lab vault has no endpoint at %s." % path)
        if method not in routes:
            raise errors.MethodNotAllowed("The requested resource does not support http method '%s'." % method)
        return routes[method]

    def _route_deleted(self, vault: models.Vault, method: str, seg: List[str], query: Dict[str, str],
                       path: str) -> Tuple[str, Callable[[], Reply]]:
        routes: Dict[str, Tuple[str, Callable[[], Reply]]] = {}
        if not seg:
            routes["GET"] = ("list", lambda: self._page(vault, [wire.deleted_key_item(vault, k) for k in vault.list_deleted_keys()], query, path))
        elif len(seg) == 1:
            name = seg[0]
            routes["GET"] = ("get", lambda: Reply(200, wire.deleted_key_bundle(vault, vault.get_deleted_key(name))))
            routes["DELETE"] = ("purge", lambda: _no_content(vault.purge_deleted_key(name)))
        elif len(seg) == 2 and seg[1] == "recover":
            name = seg[0]
            routes["POST"] = ("recover", lambda: Reply(200, wire.key_bundle(vault, *_current(vault.recover_deleted_key(name)))))
        if not routes:
            raise errors.NotFound("The lab vault has no endpoint at %s." % path)
        if method not in routes:
            raise errors.MethodNotAllowed("The requested resource does not support http method '%s'." % method)
        return routes[method]

    @staticmethod
    def _page(vault: models.Vault, items: List[dict], query: Dict[str, str], path: str) -> Reply:
        try:
            size = int(query.get("maxresults") or PAGE_SIZE)
            offset = int(query.get("$skiptoken") or 0)
        except ValueError as exc:
            raise errors.BadParameter("maxresults and $skiptoken must be integers.") from exc
        if not 1 <= size <= PAGE_SIZE:
            raise errors.BadParameter("maxresults must be between 1 and %d." % PAGE_SIZE)
        page = items[offset:offset + size]
        next_link = None
        if offset + size < len(items):
            params = {"api-version": query.get("api-version", LATEST_API_VERSION), "$skiptoken": offset + size, "maxresults": size}
            next_link = "%s%s?%s" % (vault.url, path, urlencode(params))
        return Reply(200, wire.page(page, next_link))

    @staticmethod
    def _sign(vault: models.Vault, name: str, version: str, body: bytes) -> Reply:
        item, signature = vault.sign(name, version, json_body(body))
        return Reply(200, wire.operation_result(vault, name, item, signature))

    @staticmethod
    def _encrypt(vault: models.Vault, name: str, version: str, body: bytes) -> Reply:
        item, ciphertext, iv = vault.encrypt(name, version, json_body(body))
        return Reply(200, wire.operation_result(vault, name, item, ciphertext, iv))


def _bundle_of(vault: models.Vault, name: str, version: models.KeyVersion) -> dict:
    return wire.key_bundle(vault, vault.key_of(name), version)


def _current(key: models.Key) -> Tuple[models.Key, models.KeyVersion]:
    return key, key.current


def _no_content(_result: None) -> Reply:
    return Reply(204)
