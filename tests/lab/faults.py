# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What can go wrong on a vault request before or after the vault acts: Azure's service limits (429 when
:class:`limits.Throttle` says so) and injected faults (429/500/503 instead of an answer, ``reset``: processed then
dropped, ``slow``: processed then answered late).  Faults apply only to authenticated vault requests.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import deque
from typing import Dict, List, Optional

from . import errors, limits, models
from .transport import Reply, error_reply

LOG = logging.getLogger("lab.server")

FAULT_KINDS = ("429", "500", "503", "reset", "slow")


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


def fault_reply(kind: str, note: str) -> Reply:
    """The answer instead of processing the request (429, 500, 503)."""
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


def apply_after(reply: Reply, fault: Optional[str], slow_seconds: float) -> Reply:
    """``reset`` and ``slow`` act on the answer of a processed request."""
    if fault == "reset":
        reply.reset = True
    elif fault == "slow":
        reply.delay = slow_seconds
        reply.note += " [fault=slow]"
    return reply


def throttle(throttler: limits.Throttle, vault: models.Vault, permission: str, segments: List[str], body: bytes) -> Optional[Reply]:
    """Azure's service limits (when on): None, or the 429 Key Vault answers."""
    if not throttler.enabled:
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
            txn = limits.transaction(vault, permission, name, doc)
        throttler.admit(vault, txn)
    except errors.LabError as exc:
        return error_reply(exc)
    return None
