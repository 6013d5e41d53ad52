# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A clock the lab tests move by hand, for the lab's models (vaults, limits, tokens) that take a ``clock``."""

from __future__ import annotations


class Clock:
    """Seconds since the epoch, standing still until a test moves ``now`` (or calls :meth:`advance`)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
