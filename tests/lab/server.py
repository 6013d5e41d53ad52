# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab server: its listeners, its lifecycle, and the routing of a request to its endpoint family.

* base port: the login endpoint (:mod:`login`), the resource manager (:mod:`arm`) and the admin API (:mod:`admin`)
* one port per vault: the Key Vault keys REST API (:mod:`vaultapi`), with service limits and faults (:mod:`faults`)

TLS and HTTP framing are in :mod:`transport`; the domain rules in :mod:`models`; the JSON shapes in :mod:`wire`; the
state directory in :mod:`store` and :mod:`config`.

In-process use (pytest)::

    with LabServer(state_dir, port=0) as lab:      # port=0: free ports for everything
        lab.urls["premium"], lab.authority, lab.ca_path, lab.env()
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import uuid
from dataclasses import asdict
from typing import Dict, List, Optional
from urllib.parse import unquote, urlsplit

from . import config, errors, models
from .admin import Admin
from .arm import Arm, ResourceManager
from .faults import FaultInjector
from .login import Login
from .store import LabState
from .tokens import TokenAuthority
from .transport import Reply, TLSServer, error_reply
from .vaultapi import VaultApi

LOG = logging.getLogger("lab.server")

LOGIN = "login"
#: first path segment on the base port -> endpoint family (anything else: a tenant of the login endpoint)
ADMIN_PREFIX = "lab"
ARM_PREFIXES = ("metadata", "tenants", "subscriptions")


class LabServer:
    """The lab: login endpoint + admin on the base port, one HTTPS port per vault.

    ``port=0`` binds every listener to a free port (tests; with ``record_ports`` they are written to ``config.json``);
    ``port=None`` uses the ports of ``config.json``; ``port=N`` uses N for the base port and keeps the vaults' offsets.
    """

    def __init__(self, state_dir: str, port: Optional[int] = 0, host: str = "127.0.0.1", log_to_file: bool = True,
                 settings: Optional[dict] = None, record_ports: bool = False) -> None:
        self.config = config.init(state_dir)
        cfg = self.config
        self.host = host
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(cfg.path(config.CERT_FILE), cfg.path(config.KEY_FILE))
        self.faults = FaultInjector()
        self.tokens = TokenAuthority(cfg.tenant_id, cfg.signing_key, cfg.identities)
        self.state = LabState(cfg.state_dir)
        self._servers: Dict[str, TLSServer] = {}
        self._threads: List[threading.Thread] = []
        self._log_handler: Optional[logging.Handler] = None
        self._log_to_file = log_to_file

        def wanted(default_port: int) -> int:
            if port is None:
                return default_port
            if port == 0:
                return 0
            return port + default_port - cfg.base_port

        self._servers[LOGIN] = TLSServer((host, wanted(cfg.base_port)), self.context, self.handle, LOGIN, owner=self)
        self.kinds: Dict[str, str] = {}
        for vdef in cfg.vaults:
            srv = TLSServer((host, wanted(vdef.port)), self.context, self.handle, vdef.name, owner=self)
            self._servers[vdef.name] = srv
            self.kinds[vdef.name] = vdef.kind
            self.state.add_vault(vdef.name, vdef.kind, "https://%s:%d" % (host, srv.server_address[1]),
                                 options=models.VaultOptions(delete_delay=config.DEFAULT_DELETE_DELAY,
                                                             purge_delay=config.DEFAULT_PURGE_DELAY))
        if record_ports:
            # the CLI (``python -m lab env|faults|settings --state-dir``) then reaches this server on its free ports
            self.config = config.record_ports(cfg.state_dir, self.port(), {name: self.port(name) for name in self.kinds})
        self.arm = ResourceManager(self.authority + "/", cfg.tenant_id, self.authority, self.urls, self.kinds)
        #: token audiences the login endpoint issues tokens for: each vault's challenge resource and the resource manager
        self.audiences = {self.resource(name) for name in self.kinds} | {self.arm.audience}
        self._login, self._arm, self._admin = Login(self), Arm(self, self.arm), Admin(self)
        self._vaults = VaultApi(self)
        self.configure(cfg.settings)
        if settings:
            self.configure(settings)

    def configure(self, settings: dict) -> dict:
        """``{"limits": {"enabled": true, "time_scale": 0.1}, "vaults": {"premium": {"purge_protection": true, ...}},
        "clock_offset": 31536000}``.

        ``limits`` switches Azure's service limits on or off (:class:`limits.Throttle`); ``vaults`` sets the options of
        named vaults (:class:`models.VaultOptions`); ``clock_offset`` (seconds) moves the vaults' clock (keys age without
        waiting; the tokens keep the real clock). Returns what :meth:`settings` returns.
        """
        models.check_settings(settings, "lab settings", ("clock_offset", "limits", "vaults"))
        vaults = settings.get("vaults") or {}
        if not isinstance(vaults, dict) or any(name not in self.kinds for name in vaults):
            raise errors.BadParameter("settings.vaults must map vault names (%s) to options." % ", ".join(sorted(self.kinds)))
        for name, values in vaults.items():
            self.vault(name).options.update(values)
        if "limits" in settings:
            self.state.throttle.configure(settings["limits"])
        if "clock_offset" in settings:
            self.state.set_clock_offset(settings["clock_offset"])
        return self.settings()

    def settings(self) -> dict:
        """The limits (with the 429s served per vault) and each vault's options."""
        vaults = {}
        for name in sorted(self.kinds):
            vault = self.vault(name)
            vaults[name] = dict(asdict(vault.options), purge_protection=vault.purge_protection)
        return {"limits": self.state.throttle.describe(), "vaults": vaults, "clock_offset": self.state.clock_offset}

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
            handler.addFilter(self._own_records)
            lab_logger = logging.getLogger("lab")
            lab_logger.setLevel(logging.INFO)
            lab_logger.addHandler(handler)
            self._log_handler = handler
        for role, srv in self._servers.items():
            thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, name="lab-%s" % role, daemon=True)
            thread.start()
            self._threads.append(thread)
        LOG.info("lab started: authority %s, vaults %s", self.authority, json.dumps(self.urls, sort_keys=True), extra={"lab_owner": self})
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
        LOG.info("lab stopped", extra={"lab_owner": self})
        if self._log_handler is not None:
            logging.getLogger("lab").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def _own_records(self, record: logging.LogRecord) -> bool:
        """Several labs in one process (tests) each log only their own requests into their own server.log."""
        owner = getattr(record, "lab_owner", None) or getattr(threading.current_thread(), "lab_owner", None)
        return owner is None or owner is self

    def __enter__(self) -> "LabServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def reset(self) -> None:
        self.state.reset()
        LOG.info("lab state reset", extra={"lab_owner": self})

    # -- routing ---------------------------------------------------------------------------------
    def handle(self, role: str, method: str, target: str, headers, body: bytes) -> Reply:
        """One HTTP request -> one Reply; never raises."""
        try:
            if role != LOGIN:
                return self._vaults.handle(self.state.vault(role), method, target, headers, body)
            parts = urlsplit(target)
            segments = [unquote(s) for s in parts.path.strip("/").split("/")]
            if segments[0] == ADMIN_PREFIX:
                self._admin.check(headers)
                return self._admin.handle(method, segments[1:], body)
            if segments[0] in ARM_PREFIXES:
                return self._arm.handle(method, segments, parts, headers)
            return self._login.handle(method, segments, parts.path, body)
        except errors.LabError as exc:
            return error_reply(exc)
        except errors.TokenError as exc:
            return Reply(exc.status, exc.body(str(uuid.uuid4()), str(uuid.uuid4())))
        except Exception:  # pylint: disable=broad-except
            LOG.exception("%s %s %s: unexpected error", role, method, urlsplit(target).path)
            return error_reply(errors.InternalServerError("The lab failed unexpectedly; see server.log."))
