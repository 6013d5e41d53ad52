# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Azure's service limits as a state model: which row of Microsoft's tables a request falls in, and a throttle
that counts weighted transactions in sliding windows (429 with Retry-After when a limit is exceeded). No HTTP."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from .errors import Throttled
from .models import MANAGED_HSM, PREMIUM, Vault, check_settings, family, flag_setting, number_setting

LOG = logging.getLogger("lab.limits")

# -- service limits ---------------------------------------------------------------------------------
#: Azure counts transactions in 10-second windows; the lab's time scale shrinks them (0.1: 1-second windows)
LIMIT_WINDOW_SECONDS = 10.0
#: Key Vault (resource type vault), per vault and 10 s: CREATE key (a BYOK import counts as one), (HSM key, software key)
VAULT_CREATE_LIMIT = (10, 20)
#: ... and all other transactions on a key, by key type and size: (HSM key, software key)
VAULT_OTHER_LIMITS = {("RSA", 2048): (2000, 4000), ("RSA", 3072): (500, 1000), ("RSA", 4096): (250, 500),
                      ("EC", None): (2000, 4000)}
#: the subscription-wide ceiling for all transaction types is five times the per-vault limit (one lab = one subscription)
SUBSCRIPTION_FACTOR = 5
#: Managed HSM, per HSM instance (Microsoft publishes operations per second; here per 10 s): create (and import), delete,
#: purge and recover (Microsoft's delete/purge/restore rows), everything else (get key information, 1100/s)
MHSM_LIMITS = {"create": 10, "delete": 100, "other": 11000}
THROTTLED_VAULT = "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"
THROTTLED_SUBSCRIPTION = ("Request was not processed because too many requests were received. Reason: "
                          "SubscriptionRequestsLimitReached")


@dataclass
class Transaction:
    """How one request counts against the limits: its bucket and the limit of its row (it costs 1/limit of the bucket)."""

    bucket: str
    limit: int

    @property
    def cost(self) -> float:
        return 1.0 / self.limit


def transaction(vault: Vault, permission: str, name: Optional[str], body: Optional[dict]) -> Transaction:
    """The row of Microsoft's limit tables a vault request falls in (weighted: enforcement is on the sum of costs)."""
    if vault.kind == MANAGED_HSM:
        if permission in ("create", "import"):
            return Transaction("create", MHSM_LIMITS["create"])
        if permission in ("delete", "purge", "recover"):
            return Transaction("delete", MHSM_LIMITS["delete"])
        return Transaction("other", MHSM_LIMITS["other"])
    if permission in ("create", "import"):
        doc = body if isinstance(body, dict) else {}
        kty = (doc.get("key") or {}).get("kty") if permission == "import" and isinstance(doc.get("key"), dict) else doc.get("kty")
        hsm = not isinstance(kty, str) or kty.endswith("-HSM")
        return Transaction("create", VAULT_CREATE_LIMIT[0 if hsm else 1])
    row: Tuple[str, Optional[int]] = ("RSA", 2048)  # a list, or a key the vault does not hold: the cheapest row
    hsm = True
    key = vault.keys.get(name.lower()) if isinstance(name, str) else None
    if key is not None and key.versions:
        item = key.current
        fam = family(item.kty)
        hsm = item.kty.endswith("-HSM")
        if fam == "RSA" and item.size in (2048, 3072, 4096):
            row = ("RSA", item.size)
        elif fam == "EC":
            row = ("EC", None)
    return Transaction("other", VAULT_OTHER_LIMITS[row][0 if hsm else 1])


class Throttle:
    """Azure's service limits as a state model: weighted transactions in sliding windows, per vault and per subscription.

    Off unless enabled.  ``time_scale`` shrinks the 10-second window (0.1: 1 s) and keeps the counts, so a test sees
    Azure's numbers in a tenth of the time.  A refused request (429) does not count against the limits, as Microsoft's
    throttling guidance says.  ``throttled`` counts the 429s served, per vault.
    """

    def __init__(self, enabled: bool = False, time_scale: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self.time_scale = time_scale
        self.clock = clock
        self._lock = threading.Lock()
        self._log: Dict[Tuple[str, str], deque] = {}
        self.throttled: Dict[str, int] = {}
        self.admitted: Dict[str, int] = {}

    @property
    def window(self) -> float:
        return LIMIT_WINDOW_SECONDS * self.time_scale

    def configure(self, values: dict) -> dict:
        check_settings(values, "limits", ("enabled", "time_scale", "reset_counts"), "limits settings")
        with self._lock:
            self.enabled = flag_setting(values, "enabled", self.enabled, "limits.enabled")
            self.time_scale = number_setting(values, "time_scale", self.time_scale,
                                             "limits.time_scale must be a number from 0.001 to 1 (0.1 shrinks 10-second windows to 1 s).", 0.001, 1)
            if values.get("reset_counts") or "enabled" in values or "time_scale" in values:
                self._log.clear()
                self.throttled.clear()
                self.admitted.clear()
        return self.describe()

    def describe(self) -> dict:
        with self._lock:
            return {"enabled": self.enabled, "time_scale": self.time_scale, "window_seconds": self.window,
                    "throttled": dict(self.throttled), "admitted": dict(self.admitted)}

    def _used(self, scope: Tuple[str, str], now: float) -> deque:
        log = self._log.setdefault(scope, deque())
        while log and log[0][0] <= now - self.window:
            log.popleft()
        return log

    def _wait(self, log: deque, cost: float, capacity: float, now: float) -> Optional[float]:
        """None when cost fits into the window, else the seconds until it would."""
        used = sum(c for _t, c in log)
        if used + cost <= capacity + 1e-9:
            return None
        for stamp, item in log:
            used -= item
            if used + cost <= capacity + 1e-9:
                return max(0.0, stamp + self.window - now)
        return self.window

    def admit(self, vault: Vault, txn: Transaction) -> None:
        """Count the transaction, or raise Throttled (429 with Retry-After) when it exceeds a limit."""
        if not self.enabled:
            return
        with self._lock:
            now = self.clock()
            scopes = [((vault.name, txn.bucket), 1.0, THROTTLED_VAULT)]
            if vault.kind == PREMIUM:
                scopes.append((("subscription", txn.bucket), float(SUBSCRIPTION_FACTOR), THROTTLED_SUBSCRIPTION))
            for scope, capacity, message in scopes:
                wait = self._wait(self._used(scope, now), txn.cost, capacity, now)
                if wait is not None:
                    self.throttled[vault.name] = self.throttled.get(vault.name, 0) + 1
                    LOG.info("vault=%s throttled %s transaction (%s limit %d per %.1f s), retry after %.2f s", vault.name,
                             txn.bucket, scope[0], txn.limit * (1 if scope[0] != "subscription" else SUBSCRIPTION_FACTOR),
                             self.window, wait)
                    raise Throttled(message, headers={"Retry-After": str(max(1, int(-(-wait // 1))))})
            for scope, _capacity, _message in scopes:
                self._log[scope].append((now, txn.cost))
            self.admitted[vault.name] = self.admitted.get(vault.name, 0) + 1
