# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The admin API on the base port, ``/lab/...`` with the state directory's admin secret: health, state, reset,
faults and settings (service limits, vault options)."""

from __future__ import annotations

import hmac
import json
import logging
from typing import List

from . import config, errors
from .transport import Reply, json_body
from .wire import state_summary, version_summary

LOG = logging.getLogger("lab.server")


class Admin:
    """``lab`` is the :class:`server.LabServer` these endpoints steer."""

    def __init__(self, lab) -> None:
        self.lab = lab

    def check(self, headers) -> None:
        """The admin endpoints want the state dir's admin secret: any local user can reach the port, not read the file."""
        given = headers.get(config.ADMIN_HEADER)
        if not given:
            raise errors.Unauthorized("The lab admin endpoints need the %s header (the secret in %s)."
                                      % (config.ADMIN_HEADER, self.lab.config.path(config.ADMIN_SECRET_FILE)))
        secret = self.lab.config.admin_secret
        if not secret or not hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8")):
            raise errors.Forbidden("The %s header does not match the lab's admin secret." % config.ADMIN_HEADER)

    def handle(self, method: str, segments: List[str], body: bytes) -> Reply:
        what = "/".join(segments)
        doc = json_body(body) if body else {}
        if what == "health" and method == "GET":
            return Reply(200, {"ok": True, "tenant": self.lab.tenant_id, "authority": self.lab.authority, "vaults": self.lab.urls})
        if what == "faults" and method == "GET":
            return Reply(200, self.lab.faults.describe())
        if what == "faults" and method == "POST":
            described = self.lab.faults.configure(doc)
            LOG.info("faults configured: %s", json.dumps(described, sort_keys=True))
            return Reply(200, described)
        if what == "reset" and method == "POST":
            self.lab.reset()
            return Reply(200, state_summary(self.lab.state))
        if what == "state" and method == "GET":
            return Reply(200, state_summary(self.lab.state))
        if what == "settings" and method == "GET":
            return Reply(200, self.lab.settings())
        if what == "settings" and method == "POST":
            described = self.lab.configure(doc)
            LOG.info("settings: %s", json.dumps(described, sort_keys=True))
            return Reply(200, described)
        if len(segments) == 5 and segments[0] == "vaults" and segments[2] == "keys" and method == "POST":
            # /lab/vaults/{vault}/keys/{name}/{version} {"created": N, "updated": N}: age one version directly
            if segments[1] not in self.lab.kinds:
                raise errors.NotFound("No lab vault %s; vaults: %s." % (segments[1], ", ".join(sorted(self.lab.kinds))))
            _key, item = self.lab.vault(segments[1]).set_version_times(segments[3], segments[4], doc)
            return Reply(200, version_summary(item))
        raise errors.NotFound("No admin endpoint at %s /lab/%s." % (method, what))
