# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How requests are sent to a vault: the SDK pipeline's retries, the Pacer that keeps a run under Azure's published
service limits, and Retry-After.

Every request to a vault is paced under the vault's limits (Pacer, in the SDK pipeline as PacingPolicy, after its retry
policy), and a 429's Retry-After holds back the requests after it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import threading
import time

from ansible_collections.byok.keyvault.plugins.module_utils import azure_options
from ansible_collections.byok.keyvault.plugins.module_utils.azure_errors import KeyVaultError

try:
    from azure.core.pipeline.policies import SansIOHTTPPolicy
except ImportError:  # pragma: no cover - azure-core is missing: azure_errors.AZURE_CORE_IMPORT_ERROR says so
    SansIOHTTPPolicy = object

# Retries of the SDK pipeline (429 honouring Retry-After, 5xx, connection errors) for reads and creates
RETRY = dict(retry_total=4, retry_backoff_factor=0.8, retry_backoff_max=30)

# Azure's service limits, per vault (Managed HSM: per instance), in windows of PACING_WINDOW seconds, weighted: a
# transaction costs 1/limit of its row's budget and the vault enforces the sum (Key Vault service limits; Managed HSM
# scaling guidance, whose operations per second are given here per 10 s).  A BYOK import counts as a CREATE.
PACING_WINDOW = azure_options.PACING_WINDOW
#: share of each budget the collection uses by default (pacing_share; azure_options says why all of it)
PACING_SHARE = azure_options.PACING_SHARE
PREMIUM_CREATE_LIMIT = 10
#: all other transactions on an HSM key of a Key Vault, by key type and size
PREMIUM_OTHER_LIMITS = {('RSA', 2048): 2000, ('RSA', 3072): 500, ('RSA', 4096): 250, ('EC', None): 2000}
MHSM_LIMITS = {'create': 10, 'delete': 100, 'other': 11000}


class Pacer(object):
    """Keeps one module run's requests to one vault under the vault's limits; shared by the run's threads.

    Each request is put in its bucket (create: create and import; Managed HSM also delete: delete, purge, recover;
    other: the rest) with the weight of its row; a request whose cost does not fit into what the last window's requests
    left of the share (pacing_share, default PACING_SHARE) of the budget waits until it does.  A request counts from
    when it is sent until a window after its answer came (the vault counts it somewhere in between), so a slow answer
    cannot make two windows' worth of requests reach the vault in one.  A 429 holds back every request for its Retry-After.  The 'other' row of a key
    is learnt from the vault's answers (RSA size, EC); until then it is RSA-2048's.
    """

    def __init__(self, kind, window=PACING_WINDOW, share=PACING_SHARE, clock=time.monotonic, sleep=time.sleep):
        self.kind = kind
        self.window = float(window)
        self.share = share
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._log = {}
        self._rows = {}
        self._hold_until = 0.0
        self.waited = 0.0
        self.requests = 0
        self.throttled = 0

    @staticmethod
    def _segments(url):
        from ansible.module_utils.six.moves.urllib.parse import unquote, urlparse
        return [unquote(part) for part in urlparse(url).path.strip('/').split('/') if part]

    def classify(self, method, url):
        """(bucket, limit of the row) of one request."""
        seg = self._segments(url)
        method = method.upper()
        is_create = (method == 'PUT' and len(seg) == 2 and seg[0] == 'keys') or (
            method == 'POST' and len(seg) == 3 and seg[0] == 'keys' and seg[2] == 'create')
        if self.kind == 'managed_hsm':
            if is_create:
                return 'create', MHSM_LIMITS['create']
            if (method == 'DELETE' and len(seg) == 2 and seg[0] in ('keys', 'deletedkeys')) or (
                    method == 'POST' and len(seg) == 3 and seg[0] == 'deletedkeys' and seg[2] == 'recover'):
                return 'delete', MHSM_LIMITS['delete']
            return 'other', MHSM_LIMITS['other']
        if is_create:
            return 'create', PREMIUM_CREATE_LIMIT
        name = seg[1].lower() if len(seg) > 1 and seg[0] in ('keys', 'deletedkeys') else None
        return 'other', self._rows.get(name, PREMIUM_OTHER_LIMITS[('RSA', 2048)])

    def _fits(self, log, cost, now):
        """0 when cost fits now, else the seconds until it does (entries [time, cost]; time None: no answer yet)."""
        log[:] = [entry for entry in log if entry[0] is None or entry[0] > now - self.window]
        used = sum(entry[1] for entry in log)
        if not log or used + cost <= self.share + 1e-9:
            return 0.0
        for stamp, item in sorted((entry for entry in log if entry[0] is not None), key=lambda entry: entry[0]):
            used -= item
            if used + cost <= self.share + 1e-9:
                return max(stamp + self.window - now, 0.001)
        return self.window / 10  # only requests still waiting for their answer: look again soon

    def acquire(self, method, url):
        """Wait until the request fits (or the 429 hold ends), then count it; the entry to pass to answered()."""
        bucket, limit = self.classify(method, url)
        cost = 1.0 / limit
        while True:
            with self._lock:
                now = self.clock()
                log = self._log.setdefault(bucket, [])
                wait = max(self._hold_until - now, self._fits(log, cost, now))
                if wait <= 0:
                    entry = [None, cost]
                    log.append(entry)
                    self.requests += 1
                    return entry
            self.waited += wait
            self.sleep(wait)

    def answered(self, entry):
        """The request of entry got its answer (or failed): it counts for a window from now."""
        if entry is not None:
            with self._lock:
                entry[0] = self.clock()

    def observe(self, method, url, status, retry_after=None, body=None):
        """Learn from an answer: a 429 holds back the next requests; a key's type and size give its row."""
        with self._lock:
            if status == 429:
                self.throttled += 1
                self._hold_until = max(self._hold_until, self.clock() + (retry_after if retry_after is not None else 1.0))
                return
        if self.kind == 'managed_hsm' or not isinstance(body, dict) or not isinstance(body.get('key'), dict):
            return
        seg = self._segments(url)
        jwk = body['key']
        kty = str(jwk.get('kty') or '')
        row = None
        if kty.startswith('EC'):
            row = ('EC', None)
        elif kty.startswith('RSA') and isinstance(jwk.get('n'), str):
            size = len(base64.urlsafe_b64decode(jwk['n'] + '=' * (-len(jwk['n']) % 4)).lstrip(b'\x00')) * 8
            row = ('RSA', size) if ('RSA', size) in PREMIUM_OTHER_LIMITS else None
        if row and len(seg) > 1 and seg[0] in ('keys', 'deletedkeys'):
            with self._lock:
                self._rows[seg[1].lower()] = PREMIUM_OTHER_LIMITS[row]


class PacingPolicy(SansIOHTTPPolicy):
    """The Pacer in the SDK pipeline, after its retry policy: every attempt, page and poll is paced."""

    def __init__(self, pacer):
        super(PacingPolicy, self).__init__()
        self.pacer = pacer

    def on_request(self, request):
        request.context['byok_pacing'] = self.pacer.acquire(request.http_request.method, request.http_request.url)

    def on_exception(self, request):
        self.pacer.answered(request.context.get('byok_pacing'))

    def on_response(self, request, response):
        self.pacer.answered(request.context.get('byok_pacing'))
        http = response.http_response
        body = None
        if http.status_code == 200 and 'json' in (http.headers.get('Content-Type') or ''):
            try:
                body = json.loads(http.text())
            except ValueError:
                body = None
        self.pacer.observe(request.http_request.method, request.http_request.url, http.status_code,
                           retry_after_value(http.headers.get('Retry-After')), body)


def pacer_for(params, kind):
    """The Pacer of one vault of a module run (kind: the vault's kind), or None with pacing: false; the pacing options
    checked first."""
    if not params.get('pacing', True):
        return None
    window = params.get('pacing_window')
    window = PACING_WINDOW if window is None else window
    if window <= 0:
        raise KeyVaultError('pacing_window is %s; give the length in seconds of the windows in which the vault counts '
                            "requests (Azure: %d), or set pacing: false" % (window, PACING_WINDOW))
    share = params.get('pacing_share')
    share = PACING_SHARE if share is None else share
    if not 0 < share <= 1:
        raise KeyVaultError('pacing_share is %s; give the share of each service limit this run may use, more than 0 '
                            'and at most 1 (default %s; for example 0.5 when another job uses the same vault at the '
                            'same time)' % (share, PACING_SHARE))
    return Pacer(kind, window, share)


def client_kwargs(params, pacer=None):
    """Pipeline options for every client of a module run: the collection's retry policy, pacing and TLS trust."""
    kwargs = dict(RETRY)
    if pacer is not None:
        kwargs['custom_hook_policy'] = PacingPolicy(pacer)
    if params.get('ca_bundle'):
        kwargs['connection_verify'] = params['ca_bundle']
    if params.get('verify_challenge_resource') is False:
        kwargs['verify_challenge_resource'] = False
    return kwargs


def retry_after(exc):
    response = getattr(exc, 'response', None)
    headers = getattr(response, 'headers', None) or {}
    return retry_after_value(headers.get('Retry-After') if hasattr(headers, 'get') else None)


def retry_after_value(value):
    """Seconds of a Retry-After header (a number of seconds; an HTTP date is not used by Key Vault), or None."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
