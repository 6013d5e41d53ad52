# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rotation by cryptoperiod: when a vault key's current version is older than the entry's rotate_after, a new HSM key
becomes its new version, once per period.

The period is an ISO 8601 duration (P365D, P1Y, P6M, P13W, PT12H).  Years and months are calendar years and months
(2025-01-31 plus P1M is 2025-02-28), the way a cryptoperiod is written in a key management policy.

The HSM keys of an entry are its generations: generation 1 has the entry's label, generation N (2 or more) the label
LABEL.rN.  A run finds the generation the vault's current version is (by identity, never by name) and, when that
version's period is over, makes generation N+1: a deterministic label, so a run that stopped after the key generation
finds that key again instead of making another (exactly one new version per period, also over re-runs and concurrent
runs: the token's lock makes a label once, and the import happens only while the vault's current version is still the
one whose period was found over).

Pure Python: the plan, the key records and the HSM step use it alike.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import datetime
import re

_DURATION = re.compile(r'^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$')
EXAMPLE = 'P365D (365 days), P1Y, P6M, P13W or PT12H'
#: the shortest period: a shorter one rotates the key on nearly every run (a run itself takes minutes)
SHORTEST = datetime.timedelta(hours=1)
#: the label suffix of generation N of an entry's HSM key (generation 1 is the entry's label itself)
SUFFIX = '.r%d'
_GENERATION = re.compile(r'^(?P<base>.+)\.r(?P<n>[2-9]|[1-9]\d+)$')


class DurationError(ValueError):
    """rotate_after is not an ISO 8601 duration the collection can use; the message says what to write."""


def parse(text):
    """(years, months, timedelta) of an ISO 8601 duration; DurationError when it is not one, or is zero."""
    if not isinstance(text, str):
        raise DurationError('is not an ISO 8601 duration (it is not a string); write one like %s' % EXAMPLE)
    m = _DURATION.match(text.strip().upper())
    if not m or text.strip().upper() in ('P', 'PT') or text.strip().upper().endswith('T'):
        raise DurationError("'%s' is not an ISO 8601 duration; write one like %s" % (text, EXAMPLE))
    years, months, weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    delta = datetime.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    if not (years or months or delta):
        raise DurationError("'%s' is a period of zero, which would rotate the key on every run; write one like %s"
                            % (text, EXAMPLE))
    if not (years or months) and delta < SHORTEST:
        raise DurationError("'%s' is shorter than an hour, which would rotate the key on nearly every run; write one like %s"
                            % (text, EXAMPLE))
    return years, months, delta


def add(when, text):
    """when (a datetime) plus the duration: calendar years and months, then the rest."""
    years, months, delta = parse(text)
    month0 = when.month - 1 + months
    year = when.year + years + month0 // 12
    month = month0 % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day) + delta


def due(created_on, text, now):
    """(due, reason) for a version created at created_on (an aware datetime) under the period text at now."""
    ends = add(created_on, text)
    created = created_on.strftime('%Y-%m-%d')
    if now >= ends:
        return True, 'created %s, older than %s' % (created, text)
    return False, 'created %s, not older than %s (next rotation %s)' % (created, text, ends.strftime('%Y-%m-%d'))


def label(base, generation):
    """The HSM label of generation N of an entry's key."""
    return base if generation <= 1 else base + SUFFIX % generation


def generation_of(base, candidate):
    """The generation number candidate is of base's key (1 for base itself), or None."""
    if candidate == base:
        return 1
    m = _GENERATION.match(candidate or '')
    return int(m.group('n')) if m and m.group('base') == base else None


def looks_like_generation(candidate):
    """(base, N) when a label has the form of a later generation (LABEL.rN, N 2 or more), else None."""
    m = _GENERATION.match(candidate or '')
    return (m.group('base'), int(m.group('n'))) if m else None
