# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP over TLS: one listener per port, the request handler, and :class:`Reply` (what an endpoint answers).

The handler reads a request, hands ``(role, method, target, headers, body)`` to the lab's router and writes the
reply (or drops the connection, or answers late, when a fault says so).  No Key Vault knowledge here.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, Optional, Tuple, Union
from urllib.parse import parse_qs, urlsplit

from . import errors

LOG = logging.getLogger("lab.server")


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


def query_of(query: str) -> Dict[str, str]:
    """The first value of each query parameter."""
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def json_body(body: bytes) -> dict:
    if not body:
        raise errors.BadParameter("The request body is required.")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.BadParameter("The request body is not valid JSON: %s" % exc) from exc
    if not isinstance(doc, dict):
        raise errors.BadParameter("The request body must be a JSON object.")
    return doc


#: (role, method, target, headers, body) -> Reply; never raises
Router = Callable[[str, str, str, object, bytes], Reply]


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: Tuple[str, int], context: ssl.SSLContext, router: Router, role: str, owner: object = None) -> None:
        self.context = context
        self.router = router
        self.role = role
        #: the lab this listener belongs to (its request threads carry it, so its log lines go to its own log)
        self.owner = owner
        super().__init__(address, _Handler)

    def process_request_thread(self, request, client_address) -> None:
        threading.current_thread().lab_owner = self.owner  # type: ignore[attr-defined]
        super().process_request_thread(request, client_address)

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
    server: TLSServer

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
        reply = self.server.router(self.server.role, self.command, self.path, self.headers, body)
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
