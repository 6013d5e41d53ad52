# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's pacing under Azure's service limits, on a clock the tests move (no sleeping)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64

from ansible_collections.byok.keyvault.plugins.module_utils import azure_pacing
from ansible_collections.byok.keyvault.plugins.module_utils import keyvault as kv

URL = 'https://contoso.vault.azure.net'


class Clock(object):
    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 3))
        self.now += seconds


def pacer(kind='premium', window=10.0, share=0.8):
    clock = Clock()
    return azure_pacing.Pacer(kind, window, share, clock=clock, sleep=clock.sleep), clock


def send(p, method, path):
    """One request that is answered at once."""
    entry = p.acquire(method, URL + path + '?api-version=7.6')
    p.answered(entry)
    return entry


def test_classification_follows_the_limit_tables():
    p, _clock = pacer()
    assert p.classify('PUT', URL + '/keys/k1?api-version=7.6') == ('create', 10)
    assert p.classify('POST', URL + '/keys/kek/create?api-version=7.6') == ('create', 10)
    assert p.classify('GET', URL + '/keys/k1?api-version=7.6') == ('other', 2000)
    assert p.classify('DELETE', URL + '/deletedkeys/k1') == ('other', 2000)
    m, _clock = pacer('managed_hsm')
    assert m.classify('PUT', URL + '/keys/k1') == ('create', 10)
    assert m.classify('DELETE', URL + '/keys/k1') == ('delete', 100)
    assert m.classify('POST', URL + '/deletedkeys/k1/recover') == ('delete', 100)
    assert m.classify('GET', URL + '/keys/k1/versions') == ('other', 11000)


def test_creates_are_paced_to_80_percent_of_the_window():
    p, clock = pacer()
    for _dummy in range(8):
        send(p, 'PUT', '/keys/k')
    assert clock.slept == []
    send(p, 'PUT', '/keys/k9')
    assert clock.slept == [10.0] and p.requests == 9
    # reads are another budget: no wait
    send(p, 'GET', '/keys/k')
    assert clock.slept == [10.0]


def test_by_default_the_whole_budget_is_used():
    p = azure_pacing.Pacer('premium')
    assert p.share == azure_pacing.PACING_SHARE == 1.0
    p, clock = pacer(share=1.0)
    for _dummy in range(10):
        send(p, 'PUT', '/keys/k')
    assert clock.slept == []
    send(p, 'PUT', '/keys/k11')
    assert clock.slept == [10.0] and p.requests == 11


def test_a_request_counts_until_a_window_after_its_answer():
    p, clock = pacer(window=1.0)
    slow = p.acquire('PUT', URL + '/keys/slow')
    for _dummy in range(7):
        send(p, 'PUT', '/keys/k')
    clock.now += 5.0  # the slow request is still waiting for its answer: it still counts
    p.answered(slow)
    entry = p.acquire('PUT', URL + '/keys/next')
    assert entry is not None and clock.slept == []  # the seven answered ones have left the window
    p.answered(entry)
    clock.now += 0.5
    for _dummy in range(6):
        send(p, 'PUT', '/keys/k')
    send(p, 'PUT', '/keys/waits')
    assert clock.slept == [0.5]  # until the slow request's answer is a window old


def test_learnt_rsa_4096_reads_cost_eight_times_more():
    p, clock = pacer()
    n = base64.urlsafe_b64encode(b'\xc1' + b'\x00' * 511).decode('ascii').rstrip('=')
    p.observe('GET', URL + '/keys/Big', 200, body={'key': {'kty': 'RSA-HSM', 'n': n, 'e': 'AQAB'}})
    assert p.classify('GET', URL + '/keys/big/abc') == ('other', 250)
    for _dummy in range(200):
        send(p, 'GET', '/keys/big')
    assert clock.slept == []
    send(p, 'GET', '/keys/big')
    assert clock.slept == [10.0]


def test_a_429_holds_back_every_request_for_its_retry_after():
    p, clock = pacer()
    send(p, 'GET', '/keys/k')
    p.observe('PUT', URL + '/keys/k', 429, retry_after=3.0)
    send(p, 'GET', '/keys/other')
    assert clock.slept == [3.0] and p.throttled == 1


def test_pacing_is_on_by_default_and_can_be_switched_off():
    spec = kv.azure_argument_spec()
    assert spec['pacing'] == dict(type='bool', default=True)
    assert spec['pacing_window'] == dict(type='float', default=azure_pacing.PACING_WINDOW) and azure_pacing.PACING_WINDOW == 10.0
    assert spec['pacing_share'] == dict(type='float', default=1.0)
    kwargs = azure_pacing.client_kwargs({}, azure_pacing.Pacer('premium'))
    assert isinstance(kwargs['custom_hook_policy'], azure_pacing.PacingPolicy)
    assert 'custom_hook_policy' not in azure_pacing.client_kwargs({})
