# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTPS only: one TLS listener per port, routing, the 401 challenge, JSON errors, fault injection.

* base port: the login endpoint (what MSAL asks for), a minimal resource manager (the cloud
  metadata, ``/tenants``, ``/subscriptions``: what ``az login`` asks for) and the admin endpoints ``/lab/...``
* one port per vault: the Key Vault keys REST API

In-process use (pytest)::

    with LabServer(state_dir, port=0) as lab:      # port=0: free ports for everything
        lab.urls["premium"], lab.authority, lab.ca_path, lab.env()

The domain rules live in :mod:`models`; this module only translates HTTP to calls and back.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import re
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from . import config, errors, models
from .byok import b64url_encode
from .tokens import Claims, TokenAuthority

LOG = logging.getLogger("lab.server")

LOGIN = "login"
FAULT_KINDS = ("429", "500", "503", "reset", "slow")
PAGE_SIZE = 25
API_VERSIONS_EXTRA = ("2016-10-01",)
API_VERSION_RE = re.compile(r"^(7\.\d+|20[2-9]\d-\d\d-\d\d)(-preview(\.\d+)?)?$")
LATEST_API_VERSION = "7.6"
ARM_API_VERSION_RE = re.compile(r"^\d{4}-\d\d-\d\d(-preview)?$")
ARM_METADATA_LIST_API_VERSION = "2019-05-01"  # this one answers a list of clouds (ARM_CLOUD_METADATA_URL)


@dataclass
class Reply:
    status: int
    body: Optional[Union[dict, list]] = None
    headers: Dict[str, str] = field(default_factory=dict)
    reset: bool = False
    delay: float = 0.0
    note: str = ""

    def payload(self) -> bytes:
        if self.body is None or self.status == 204:
            return b""
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


def error_reply(exc: errors.LabError) -> Reply:
    return Reply(exc.status, exc.body(), dict(exc.headers))


def api_version_ok(value: str) -> bool:
    """7.x (and 7.x-preview), 2016-10-01 and the date-named versions from 2025 on (the SDK 4.11 default is 2025-07-01)."""
    return value in API_VERSIONS_EXTRA or bool(API_VERSION_RE.match(value))


class FaultInjector:
    """Random faults (rate, kinds, seed) plus a deterministic queue for tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rate = 0.0
        self.kinds: List[str] = []
        self.seed: Optional[int] = None
        self.slow_seconds = 2.0
        self._rng = random.Random()
        self._queue: deque = deque()
        self.injected: Dict[str, int] = {}

    def configure(self, body: dict) -> dict:
        """``{"off": true}`` | ``{"rate": 0.3, "kinds": [...], "seed": N, "slow_seconds": 2}`` | ``{"next": [...], "method": "PUT", "path": "/keys/"}``"""
        if not isinstance(body, dict):
            raise errors.BadParameter("The fault configuration must be a JSON object.")
        with self._lock:
            if body.get("off"):
                self.rate, self.kinds, self.seed = 0.0, [], None
                self._queue.clear()
            if "rate" in body or "kinds" in body:
                rate = float(body.get("rate", self.rate))
                kinds = body.get("kinds", self.kinds or list(FAULT_KINDS))
                if isinstance(kinds, str):
                    kinds = [k for k in kinds.split(",") if k]
                if not 0.0 <= rate <= 1.0:
                    raise errors.BadParameter("rate must be between 0 and 1.")
                bad = [k for k in kinds if k not in FAULT_KINDS]
                if bad:
                    raise errors.BadParameter("Unknown fault kinds %s; known: %s." % (bad, ", ".join(FAULT_KINDS)))
                self.rate, self.kinds = rate, list(kinds)
            if "seed" in body:
                self.seed = body["seed"]
                self._rng = random.Random(self.seed)
            if "slow_seconds" in body:
                self.slow_seconds = float(body["slow_seconds"])
            nxt = body.get("next")
            if nxt:
                if isinstance(nxt, str):
                    nxt = [nxt]
                bad = [k for k in nxt if k not in FAULT_KINDS]
                if bad:
                    raise errors.BadParameter("Unknown fault kinds %s; known: %s." % (bad, ", ".join(FAULT_KINDS)))
                method = body.get("method")
                for kind in nxt:
                    self._queue.append({"kind": kind, "method": method.upper() if method else None, "path": body.get("path")})
        return self.describe()

    def describe(self) -> dict:
        with self._lock:
            return {"rate": self.rate, "kinds": list(self.kinds), "seed": self.seed, "slow_seconds": self.slow_seconds,
                    "queued": list(self._queue), "injected": dict(self.injected)}

    def pick(self, method: str, path: str) -> Optional[str]:
        with self._lock:
            kind = None
            for entry in self._queue:
                if (entry["method"] in (None, method)) and (not entry["path"] or entry["path"] in path):
                    kind = entry["kind"]
                    self._queue.remove(entry)
                    break
            if kind is None and self.rate and self.kinds and self._rng.random() < self.rate:
                kind = self._rng.choice(self.kinds)
            if kind:
                self.injected[kind] = self.injected.get(kind, 0) + 1
            return kind


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: Tuple[str, int], context: ssl.SSLContext, lab: "LabServer", role: str) -> None:
        self.context = context
        self.lab = lab
        self.role = role
        super().__init__(address, _Handler)

    def get_request(self):  # type: ignore[override]
        sock, addr = self.socket.accept()
        # the TLS handshake happens in the handler thread, so a stuck client cannot block accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address) -> None:  # type: ignore[override]
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
            # e.g. a client that does not trust the lab CA: "[SSL: TLSV1_ALERT_UNKNOWN_CA]"
            LOG.info("%s connection from %s:%s dropped: %s", self.role, client_address[0], client_address[1], exc)
        else:
            LOG.error("%s connection from %s:%s failed", self.role, client_address[0], client_address[1], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lab-keyvault/1.0"
    sys_version = ""
    timeout = 60
    server: _TLSServer

    def log_message(self, format, *args) -> None:  # pylint: disable=redefined-builtin
        """Silence the default stderr log; the lab logs one line per request itself."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        started = time.time()
        reply = self.server.lab.handle(self.server.role, self.command, self.path, self.headers, body)
        if reply.delay:
            time.sleep(reply.delay)
        path = urlsplit(self.path).path
        if reply.reset:
            LOG.info("%s %s %s -> %d, connection reset without answer [fault=reset]%s", self.server.role, self.command, path,
                     reply.status, reply.note)
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            return
        payload = reply.payload()
        self.send_response(reply.status)
        headers = {"Cache-Control": "no-cache", "x-ms-request-id": str(uuid.uuid4())}
        if payload:
            headers["Content-Type"] = "application/json; charset=utf-8"
        headers.update(reply.headers)
        for name, value in headers.items():
            self.send_header(name, value)
        if reply.status != 204:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)
        LOG.info("%s %s %s %d %.0fms%s", self.server.role, self.command, path, reply.status, 1000 * (time.time() - started), reply.note)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class LabServer:
    """The lab: login endpoint + admin on the base port, one HTTPS port per vault.

    ``port=0`` binds every listener to a free port (tests); ``port=None`` uses the ports of
    ``config.json``; ``port=N`` uses N for the base port and keeps the vaults' offsets.
    """

    def __init__(self, state_dir: str, port: Optional[int] = 0, host: str = "127.0.0.1", log_to_file: bool = True,
                 settings: Optional[dict] = None) -> None:
        self.config = config.init(state_dir)
        cfg = self.config
        self.host = host
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(cfg.path(config.CERT_FILE), cfg.path(config.KEY_FILE))
        self.faults = FaultInjector()
        self.tokens = TokenAuthority(cfg.tenant_id, cfg.signing_key, cfg.identities)
        self.state = models.LabState(cfg.state_dir)
        self._servers: Dict[str, _TLSServer] = {}
        self._threads: List[threading.Thread] = []
        self._log_handler: Optional[logging.Handler] = None
        self._log_to_file = log_to_file

        def wanted(default_port: int) -> int:
            if port is None:
                return default_port
            if port == 0:
                return 0
            return port + default_port - cfg.base_port

        self._servers[LOGIN] = _TLSServer((host, wanted(cfg.base_port)), self.context, self, LOGIN)
        self.kinds: Dict[str, str] = {}
        for vdef in cfg.vaults:
            srv = _TLSServer((host, wanted(vdef.port)), self.context, self, vdef.name)
            self._servers[vdef.name] = srv
            self.kinds[vdef.name] = vdef.kind
            self.state.add_vault(vdef.name, vdef.kind, "https://%s:%d" % (host, srv.server_address[1]),
                                 options=models.VaultOptions(delete_delay=config.DEFAULT_DELETE_DELAY,
                                                             purge_delay=config.DEFAULT_PURGE_DELAY))
        self._resources = {name: self.resource(name) for name in self.kinds}
        self.arm = models.ResourceManager(self.authority + "/", cfg.tenant_id, self.authority, self.urls, self.kinds)
        self._audiences = set(self._resources.values()) | {self.arm.audience}
        self.configure(cfg.settings)
        if settings:
            self.configure(settings)

    def configure(self, settings: dict) -> dict:
        """``{"limits": {"enabled": true, "time_scale": 0.1}, "vaults": {"premium": {"purge_protection": true, ...}}}``.

        ``limits`` switches Azure's service limits on or off (:class:`models.Throttle`); ``vaults`` sets the options of
        named vaults (:class:`models.VaultOptions`). Returns what :meth:`settings` returns.
        """
        if not isinstance(settings, dict):
            raise errors.BadParameter("The lab settings must be a JSON object.")
        unknown = sorted(set(settings) - {"limits", "vaults"})
        if unknown:
            raise errors.BadParameter("Unknown lab settings %s; known: limits, vaults." % unknown)
        vaults = settings.get("vaults") or {}
        if not isinstance(vaults, dict) or any(name not in self.kinds for name in vaults):
            raise errors.BadParameter("settings.vaults must map vault names (%s) to options." % ", ".join(sorted(self.kinds)))
        for name, values in vaults.items():
            self.vault(name).options.update(values)
        if "limits" in settings:
            self.state.throttle.configure(settings["limits"])
        return self.settings()

    def settings(self) -> dict:
        """The limits (with the 429s served per vault) and each vault's options."""
        vaults = {}
        for name in sorted(self.kinds):
            vault = self.vault(name)
            vaults[name] = dict(asdict(vault.options), purge_protection=vault.purge_protection)
        return {"limits": self.state.throttle.describe(), "vaults": vaults}

    # -- addresses -------------------------------------------------------------------------------
    def port(self, role: str = LOGIN) -> int:
        return int(self._servers[role].server_address[1])

    @property
    def authority(self) -> str:
        return "https://%s:%d" % (self.host, self.port())

    @property
    def urls(self) -> Dict[str, str]:
        return {name: "https://%s:%d" % (self.host, self.port(name)) for name in self.kinds}

    @property
    def tenant_id(self) -> str:
        return self.config.tenant_id

    @property
    def ca_path(self) -> str:
        return self.config.ca_path

    def resource(self, vault: str) -> str:
        """The challenge resource (= token audience): the SDK accepts it because 127.0.0.1:PORT ends with .0.0.1:PORT."""
        return "https://0.0.1:%d" % self.port(vault)

    def env(self) -> Dict[str, str]:
        return config.env_vars(self.config, self.authority, self.urls)

    def identity(self, name: str):
        return self.config.identity(name)

    def vault(self, name: str) -> models.Vault:
        return self.state.vault(name)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "LabServer":
        if self._log_to_file and self._log_handler is None:
            handler = logging.FileHandler(self.config.log_path, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            handler.setLevel(logging.INFO)
            lab_logger = logging.getLogger("lab")
            lab_logger.setLevel(logging.INFO)
            lab_logger.addHandler(handler)
            self._log_handler = handler
        for role, srv in self._servers.items():
            thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, name="lab-%s" % role, daemon=True)
            thread.start()
            self._threads.append(thread)
        LOG.info("lab started: authority %s, vaults %s", self.authority, json.dumps(self.urls, sort_keys=True))
        return self

    def stop(self) -> None:
        if self._threads:
            stoppers = [threading.Thread(target=srv.shutdown, daemon=True) for srv in self._servers.values()]
            for stopper in stoppers:
                stopper.start()
            for thread in stoppers + self._threads:
                thread.join(timeout=5)
        for srv in self._servers.values():
            srv.server_close()
        self._threads = []
        LOG.info("lab stopped")
        if self._log_handler is not None:
            logging.getLogger("lab").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def __enter__(self) -> "LabServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def reset(self) -> None:
        self.state.reset()
        LOG.info("lab state reset")

    # -- requests --------------------------------------------------------------------------------
    def handle(self, role: str, method: str, target: str, headers, body: bytes) -> Reply:
        """One HTTP request -> one Reply; never raises."""
        try:
            if role == LOGIN:
                return self._login_port(method, target, headers, body)
            return self._vault_port(self.state.vault(role), method, target, headers, body)
        except errors.LabError as exc:
            return error_reply(exc)
        except errors.TokenError as exc:
            return Reply(exc.status, exc.body(str(uuid.uuid4()), str(uuid.uuid4())))
        except Exception:  # pylint: disable=broad-except
            LOG.exception("%s %s %s: unexpected error", role, method, urlsplit(target).path)
            return error_reply(errors.InternalServerError("The lab failed unexpectedly; see server.log."))

    # login + resource manager + admin
    def _login_port(self, method: str, target: str, headers, body: bytes) -> Reply:
        parts = urlsplit(target)
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        if segments[0] == "lab":
            self._check_admin(headers)
            return self._admin(method, segments[1:], body)
        if segments[0] in ("metadata", "tenants", "subscriptions"):
            return self._resource_manager(method, segments, parts, headers)
        tenant = segments[0]
        rest = "/".join(segments[1:])
        if rest in ("v2.0/.well-known/openid-configuration", ".well-known/openid-configuration") and method == "GET":
            self._check_tenant(tenant)
            return Reply(200, self._openid_configuration(tenant, v2=rest.startswith("v2.0")))
        if rest in ("oauth2/v2.0/token", "oauth2/token") and method == "POST":
            self._check_tenant(tenant)
            return self._token(body, v2=rest.startswith("oauth2/v2.0"), endpoint="%s/%s/%s" % (self.authority, tenant, rest))
        raise errors.NotFound("No lab endpoint at %s %s." % (method, parts.path))

    def _check_tenant(self, tenant: str) -> None:
        if tenant != self.tenant_id:
            raise errors.InvalidTenant("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the "
                                       "correct cloud." % tenant)

    def _openid_configuration(self, tenant: str, v2: bool) -> dict:
        base = "%s/%s" % (self.authority, tenant)
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
            identity = self.tokens.authenticate_assertion(client_id, form.get("client_assertion_type", ""), form["client_assertion"],
                                                          endpoint)
        else:
            if not client_id:
                raise errors.InvalidRequest("The request body must contain the following parameter: 'client_id'.")
            if "client_secret" not in form:
                raise errors.InvalidClient("The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
            identity = self.tokens.authenticate(client_id, form["client_secret"])
        if v2:
            scopes = form.get("scope", "").split()
            resource_scopes = [s for s in scopes if s.endswith("/.default")]
            if len(resource_scopes) != 1:
                raise errors.InvalidRequest("The scope must be a single '<resource>/.default' scope for the client credentials flow, got %r."
                                            % form.get("scope", ""))
            resource = resource_scopes[0][: -len("/.default")]
        else:
            resource = form.get("resource", "")
        if resource.rstrip("/") not in self._audiences:
            raise errors.InvalidResource("The resource principal named %s was not found in the tenant named %s. This can happen if the "
                                         "application has not been installed by the administrator of the tenant." % (resource, self.tenant_id))
        token = self.tokens.issue(identity, resource.rstrip("/"))
        LOG.info("token issued to appid=%s (%s) for %s", identity.client_id, identity.name, resource)
        lifetime = 3599
        return Reply(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token},
                     note=" appid=%s" % identity.client_id)

    def _resource_manager(self, method: str, segments: List[str], parts, headers) -> Reply:
        """``GET /metadata/endpoints`` (anonymous), ``GET /tenants`` and ``GET /subscriptions`` (bearer token for the resource manager)."""
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
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
            doc = self.arm.cloud_metadata()
            return Reply(200, [doc] if api_version == ARM_METADATA_LIST_API_VERSION else doc)
        try:
            claims = self._arm_claims(headers.get("Authorization") or "")
        except errors.Unauthorized as exc:
            reply = error_reply(exc)
            reply.headers["WWW-Authenticate"] = 'Bearer authorization_uri="%s/%s", error="invalid_token", error_description="%s"' % (
                self.authority, self.tenant_id, exc.message.replace('"', "'"))
            return reply
        items = self.arm.tenants() if what == "tenants" else self.arm.subscriptions()
        return Reply(200, {"value": items, "count": {"type": "Total", "value": len(items)}}, note=" appid=%s" % claims.appid)

    def _arm_claims(self, auth: str) -> Claims:
        """The claims of a resource manager request, or the resource manager's 401 errors."""
        if not auth.lower().startswith("bearer "):
            raise errors.AuthenticationFailed("Authentication failed. The 'Authorization' header is missing.")
        try:
            return self.tokens.validate(auth[7:].strip(), self.arm.audience)
        except errors.InvalidAudience as exc:
            raise errors.InvalidAuthenticationTokenAudience(
                "The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed "
                "audiences '%s','%s'." % (self.arm.url, self.arm.audience)) from exc
        except errors.Unauthorized as exc:
            raise errors.InvalidAuthenticationToken("The access token is invalid: %s" % re.sub(r"^AKV\d+: ", "", exc.message)) from exc

    def _check_admin(self, headers) -> None:
        """The admin endpoints want the state dir's admin secret: any local user can reach the port, not read the file."""
        given = headers.get(config.ADMIN_HEADER)
        if not given:
            raise errors.Unauthorized("The lab admin endpoints need the %s header (the secret in %s)."
                                      % (config.ADMIN_HEADER, self.config.path(config.ADMIN_SECRET_FILE)))
        secret = self.config.admin_secret
        if not secret or not hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8")):
            raise errors.Forbidden("The %s header does not match the lab's admin secret." % config.ADMIN_HEADER)

    def _admin(self, method: str, segments: List[str], body: bytes) -> Reply:
        what = "/".join(segments)
        doc = _json_body(body) if body else {}
        if what == "health" and method == "GET":
            return Reply(200, {"ok": True, "tenant": self.tenant_id, "authority": self.authority, "vaults": self.urls})
        if what == "faults" and method == "GET":
            return Reply(200, self.faults.describe())
        if what == "faults" and method == "POST":
            described = self.faults.configure(doc)
            LOG.info("faults configured: %s", json.dumps(described, sort_keys=True))
            return Reply(200, described)
        if what == "reset" and method == "POST":
            self.reset()
            return Reply(200, self.state.summary())
        if what == "state" and method == "GET":
            return Reply(200, self.state.summary())
        if what == "settings" and method == "GET":
            return Reply(200, self.settings())
        if what == "settings" and method == "POST":
            described = self.configure(doc)
            LOG.info("settings: %s", json.dumps(described, sort_keys=True))
            return Reply(200, described)
        raise errors.NotFound("No admin endpoint at %s /lab/%s." % (method, what))

    # vaults
    def _challenge_reply(self, vault: models.Vault, exc: errors.Unauthorized) -> Reply:
        reply = error_reply(exc)
        reply.headers["WWW-Authenticate"] = 'Bearer authorization="%s/%s", resource="%s"' % (
            self.authority, self.tenant_id, self._resources[vault.name])
        return reply

    def _vault_port(self, vault: models.Vault, method: str, target: str, headers, body: bytes) -> Reply:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        auth = headers.get("Authorization") or ""
        if not auth.lower().startswith("bearer "):
            return self._challenge_reply(vault, errors.Unauthorized("AKV10000: Request is missing a Bearer or PoP token."))
        try:
            claims = self.tokens.validate(auth[7:].strip(), self._resources[vault.name])
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
        throttled = self._throttle(vault, permission, segments, body)
        if throttled is not None:
            throttled.note = note + " [limit]"
            return throttled
        fault = self.faults.pick(method, parts.path)
        if fault in ("429", "500", "503"):
            return self._fault_reply(fault, note)
        reply = self._run(vault, claims, permission, action)
        reply.note = note
        if fault == "reset":
            reply.reset = True
        elif fault == "slow":
            reply.delay = self.faults.slow_seconds
            reply.note += " [fault=slow]"
        return reply

    def _throttle(self, vault: models.Vault, permission: str, segments: List[str], body: bytes) -> Optional[Reply]:
        """Azure's service limits (when on): None, or the 429 Key Vault answers."""
        if not self.state.throttle.enabled:
            return None
        name = segments[1] if len(segments) > 1 and segments[0] in ("keys", "deletedkeys") and segments[1] else None
        doc = None
        if permission in ("create", "import") and body:
            try:
                doc = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                doc = None
        try:
            with vault.lock:
                txn = models.transaction(vault, permission, name, doc)
            self.state.throttle.admit(vault, txn)
        except errors.LabError as exc:
            return error_reply(exc)
        return None

    def _run(self, vault: models.Vault, claims: Claims, permission: str, action: Callable[[], Reply]) -> Reply:
        try:
            self.tokens.check_permission(claims, vault.name, permission)
            return action()
        except errors.LabError as exc:
            return error_reply(exc)

    @staticmethod
    def _fault_reply(kind: str, note: str) -> Reply:
        if kind == "429":
            exc: errors.LabError = errors.Throttled(
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                headers={"Retry-After": "1"})
        elif kind == "500":
            exc = errors.InternalServerError("An unexpected error occurred (lab fault injection).")
        else:
            exc = errors.ServiceUnavailable("The service is temporarily unavailable (lab fault injection). Please retry.",
                                            headers={"Retry-After": "1"})
        reply = error_reply(exc)
        reply.note = "%s [fault=%s]" % (note, kind)
        return reply

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
            routes["GET"] = ("list", lambda: self._page(vault, [vault.key_item(k) for k in vault.list_keys()], query, path))
        elif len(seg) == 1:
            name = seg[0]
            routes["GET"] = ("get", lambda: Reply(200, vault.key_bundle(*vault.get_key(name))))
            routes["PUT"] = ("import", lambda: Reply(200, _bundle_of(vault, name, vault.import_key(name, _json_body(body)))))
            routes["PATCH"] = ("update", lambda: Reply(200, vault.key_bundle(*vault.update_key(name, None, _json_body(body)))))
            routes["DELETE"] = ("delete", lambda: Reply(200, vault.deleted_key_bundle(vault.delete_key(name))))
        elif len(seg) == 2 and seg[1] == "create" and method == "POST":
            name = seg[0]
            routes["POST"] = ("create", lambda: Reply(200, _bundle_of(vault, name, vault.create_key(name, _json_body(body)))))
        elif len(seg) == 2 and seg[1] == "versions" and method == "GET":
            name = seg[0]
            routes["GET"] = ("list", lambda: self._page(vault, [vault.key_item(vault.key_of(name), v) for v in vault.list_versions(name)],
                                                        query, path))
        elif len(seg) == 2:
            name, version = seg
            routes["GET"] = ("get", lambda: Reply(200, vault.key_bundle(*vault.get_key(name, version))))
            routes["PATCH"] = ("update", lambda: Reply(200, vault.key_bundle(*vault.update_key(name, version, _json_body(body)))))
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
            routes["GET"] = ("list", lambda: self._page(vault, [vault.deleted_key_item(k) for k in vault.list_deleted_keys()], query, path))
        elif len(seg) == 1:
            name = seg[0]
            routes["GET"] = ("get", lambda: Reply(200, vault.deleted_key_bundle(vault.get_deleted_key(name))))
            routes["DELETE"] = ("purge", lambda: _no_content(vault.purge_deleted_key(name)))
        elif len(seg) == 2 and seg[1] == "recover":
            name = seg[0]
            routes["POST"] = ("recover", lambda: Reply(200, vault.key_bundle(*_current(vault.recover_deleted_key(name)))))
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
        return Reply(200, {"value": page, "nextLink": next_link})

    @staticmethod
    def _sign(vault: models.Vault, name: str, version: str, body: bytes) -> Reply:
        item, signature = vault.sign(name, version, _json_body(body))
        return Reply(200, {"kid": vault.kid(name, item.version), "value": b64url_encode(signature)})

    @staticmethod
    def _encrypt(vault: models.Vault, name: str, version: str, body: bytes) -> Reply:
        item, ciphertext, iv = vault.encrypt(name, version, _json_body(body))
        out = {"kid": vault.kid(name, item.version), "value": b64url_encode(ciphertext)}
        if iv is not None:
            out["iv"] = b64url_encode(iv)
        return Reply(200, out)


def _json_body(body: bytes) -> dict:
    if not body:
        raise errors.BadParameter("The request body is required.")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.BadParameter("The request body is not valid JSON: %s" % exc) from exc
    if not isinstance(doc, dict):
        raise errors.BadParameter("The request body must be a JSON object.")
    return doc


def _bundle_of(vault: models.Vault, name: str, version: models.KeyVersion) -> dict:
    return vault.key_bundle(vault.key_of(name), version)


def _current(key: models.Key) -> Tuple[models.Key, models.KeyVersion]:
    return key, key.current


def _no_content(_result: None) -> Reply:
    return Reply(204)
