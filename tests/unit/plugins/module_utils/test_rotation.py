# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rotation by cryptoperiod: ISO 8601 periods, when a version's period is over, and the labels of a key's generations."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils import rotation

UTC = datetime.timezone.utc


def at(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize('period, start, end', [
    ('P365D', '2025-11-30T00:00:00', '2026-11-30T00:00:00'),
    ('P1Y', '2024-02-29T10:00:00', '2025-02-28T10:00:00'),   # no 29 February in 2025: the last day of the month
    ('P1M', '2025-01-31T00:00:00', '2025-02-28T00:00:00'),
    ('P6M', '2025-09-15T00:00:00', '2026-03-15T00:00:00'),
    ('P13W', '2025-01-01T00:00:00', '2025-04-02T00:00:00'),
    ('PT12H', '2025-01-01T00:00:00', '2025-01-01T12:00:00'),
    ('P1Y2M3DT4H5M6S', '2025-01-01T00:00:00', '2026-03-04T04:05:06'),
    ('p90d', '2025-01-01T00:00:00', '2025-04-01T00:00:00'),
])
def test_a_period_ends_by_the_calendar(period, start, end):
    assert rotation.add(at(start), period) == at(end)


@pytest.mark.parametrize('text', ['365d', 'P', 'PT', 'P1DT', 'P0D', 'PT0S', '1Y', 'P1.5Y', 'P-1D', '', 365])
def test_what_is_not_a_usable_period_is_refused_with_an_example(text):
    with pytest.raises(rotation.DurationError) as err:
        rotation.parse(text)
    assert 'P365D' in str(err.value)


def test_a_version_is_due_once_its_period_is_over_and_the_reason_says_when_it_was_made():
    made = at('2025-11-30T08:00:00')
    assert rotation.due(made, 'P365D', at('2026-11-30T08:00:00')) == (True, 'created 2025-11-30, older than P365D')
    is_due, why = rotation.due(made, 'P365D', at('2026-11-30T07:59:59'))
    assert not is_due and 'next rotation 2026-11-30' in why


def test_the_generations_of_a_label():
    assert [rotation.label('app', n) for n in (1, 2, 10)] == ['app', 'app.r2', 'app.r10']
    assert rotation.generation_of('app', 'app') == 1 and rotation.generation_of('app', 'app.r2') == 2
    for other in ('app.r1', 'app.r02', 'app.r', 'ap.r2', 'app.r2.r3', 'app-2'):
        assert rotation.generation_of('app', other) is None, other
    assert rotation.looks_like_generation('app.r12') == ('app', 12) and rotation.looks_like_generation('app') is None
