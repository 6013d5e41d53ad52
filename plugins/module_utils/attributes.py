# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attributes a vault key version gets at import: dates and tags, and Key Vault's rules for them.

Pure Python (no SDK), shared by keyvault_import and the transfer role's plan, so that a value Azure
would refuse is refused before any HSM or vault work, with the same words in both places.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.byok.keyvault.plugins.module_utils import key_identity as ki
from ansible_collections.byok.keyvault.plugins.module_utils.errors import ByokError

# Key Vault's documented limits for object tags (keys overview, "Key tags")
MAX_TAGS = 15
MAX_TAG_NAME = 256
MAX_TAG_VALUE = 256
#: tag the collection writes on the keys identified by their KCV (AES), so a user tag of this name is refused
KCV_TAG = ki.KCV_TAG
DATE_EXAMPLE = '2027-01-31T00:00:00Z'


class KeyAttributeError(ByokError, ValueError):
    """A date or tag Key Vault would refuse; the message names the value, the rule and the fix."""


def parse_datetime(value, option):
    """An aware datetime from an ISO 8601 value (Z or an offset; naive means UTC), None for empty."""
    if value in (None, ''):
        return None
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, datetime.date):
        parsed = datetime.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if text.endswith(('Z', 'z')):
            text = text[:-1] + '+00:00'
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise KeyAttributeError("%s '%s' is not an ISO 8601 date-time; use the form %s" % (option, value, DATE_EXAMPLE))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def check_dates(not_before, expires_on, now=None, what='the key'):
    """(not_before, expires_on) as aware datetimes, checked: expires_on in the future and after not_before."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    nbf = parse_datetime(not_before, 'not_before')
    exp = parse_datetime(expires_on, 'expires_on')
    for option, given, parsed in (('not_before', not_before, nbf), ('expires_on', expires_on, exp)):
        if parsed is not None and parsed.microsecond:
            raise KeyAttributeError("%s '%s' has a fraction of a second, and Key Vault keeps whole seconds: the vault would "
                                    "never hold it as given; write it to the second (like %s)"
                                    % (option, given, parsed.replace(microsecond=0).isoformat().replace('+00:00', 'Z')))
    if exp is not None and exp <= now:
        raise KeyAttributeError("expires_on '%s' is in the past; %s would be imported already expired: give a future date-time "
                                "(like %s) or leave expires_on out" % (expires_on, what, DATE_EXAMPLE))
    if nbf is not None and exp is not None and nbf >= exp:
        raise KeyAttributeError("not_before '%s' is not before expires_on '%s'; %s would never be usable: set not_before "
                                "earlier or expires_on later" % (not_before, expires_on, what))
    return nbf, exp


def tag_problems(tags, key_type=None):
    """Why Key Vault would refuse these tags: a list of (tag name or None, message); empty when they are fine."""
    problems = []
    if tags is None:
        return problems
    if not isinstance(tags, dict):
        return [(None, 'tags must be a dictionary of names to string values, like {owner: payments}')]
    limit = MAX_TAGS - 1
    if len(tags) > limit:
        problems.append((None, '%d tags are more than Key Vault allows on a key (%d, one is taken by %s, the identity the '
                               'collection records at import); remove %d'
                         % (len(tags), limit, ki.identity_tag(key_type), len(tags) - limit)))
    for name, value in tags.items():
        if not isinstance(name, str) or not name:
            problems.append((str(name), 'tag name %r is not a non-empty string; use quotes' % (name,)))
            continue
        if name.lower() in ki.IDENTITY_TAGS:
            problems.append((name, "tag name '%s' is reserved: the collection records the identity of an imported key in it "
                                   "(an AES key's KCV, an RSA or EC key's fingerprint); use another name" % name))
        if len(name) > MAX_TAG_NAME:
            problems.append((name, 'tag name is %d characters long; use at most %d' % (len(name), MAX_TAG_NAME)))
        if not isinstance(value, str):
            problems.append((name, "tag value %r is %s, not a string; Key Vault tag values are strings: use quotes "
                                   "(\"%s\")" % (value, _kind(value), value)))
        elif len(value) > MAX_TAG_VALUE:
            problems.append((name, 'tag value is %d characters long; use at most %d' % (len(value), MAX_TAG_VALUE)))
    return problems


def _kind(value):
    if isinstance(value, bool):
        return 'a boolean'
    if isinstance(value, int):
        return 'an integer'
    if isinstance(value, float):
        return 'a number'
    if value is None:
        return 'empty (null)'
    # plain type names: Ansible hands values over as subclasses of str, list and dict (tagged YAML values)
    for kind, name in ((str, 'a string'), (bytes, 'a string'), (dict, 'a dictionary'), (list, 'a list'), (tuple, 'a list'),
                       (datetime.datetime, 'a date-time'), (datetime.date, 'a date')):
        if isinstance(value, kind):
            return name
    if hasattr(value, 'keys'):
        return 'a dictionary'
    return 'a %s' % type(value).__name__
