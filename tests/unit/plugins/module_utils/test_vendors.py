# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Vendor profiles: firmware gates, wrap method choice, environment, detection, legacy methods; and that the
vendor roles only mirror the profiles (no decisions of their own)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re

import pytest
import yaml

from ansible_collections.byok.keyvault.plugins.module_utils import vendors

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
COMBINED = vendors.CKM_RSA_AES_KEY_WRAP
KWP = vendors.CKM_AES_KEY_WRAP_PAD
KWP_STD = vendors.CKM_AES_KEY_WRAP_KWP
LUNA_KWP = vendors.CKM_LUNA_AES_KWP
OAEP = vendors.CKM_RSA_PKCS_OAEP


def luna():
    return vendors.get_profile('luna')


# -- firmware gates ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('firmware', ['7.2', '7.2.9', (7, 0), '6.10'])
def test_luna_below_7_3_is_refused(firmware):
    with pytest.raises(vendors.VendorError, match=r'below 7\.3.*upgrade the HSM firmware'):
        vendors.check_firmware(luna(), firmware, 'RSA', 3072)


@pytest.mark.parametrize('firmware', ['7.3', '7.3.0', '7.7.1', (7, 8), '10.1'])
@pytest.mark.parametrize('key_type,key_size', [('RSA', 2048), ('RSA', 3072), ('EC', 256), ('oct', 256)])
def test_luna_7_3_and_later_transfer_other_targets(firmware, key_type, key_size):
    vendors.check_firmware(luna(), firmware, key_type, key_size)


@pytest.mark.parametrize('firmware', ['7.3', '7.3.2'])
def test_luna_rsa_4096_needs_7_4(firmware):
    with pytest.raises(vendors.VendorError, match=r'RSA-4096.*needs 7\.4 or later'):
        vendors.check_firmware(luna(), firmware, 'RSA', 4096)


@pytest.mark.parametrize('firmware', ['7.4', '7.4.0', '7.8.4'])
def test_luna_rsa_4096_from_7_4(firmware):
    vendors.check_firmware(luna(), firmware, 'RSA', 4096)


def test_unknown_firmware_is_not_gated():
    vendors.check_firmware(luna(), None, 'RSA', 4096)


@pytest.mark.parametrize('name', ['nshield', 'softhsm', 'generic'])
def test_other_vendors_have_no_firmware_gate(name):
    vendors.check_firmware(vendors.get_profile(name), '2.6', 'RSA', 4096)


# -- wrap path, from what the test wraps proved -------------------------------------------------------------------

PAD_3394 = 'output is RFC 3394 over PKCS#7 padding, not RFC 5649 (Azure cannot unwrap it)'


def proof(combined=None, kwp=(), oaep=None):
    """A proof as pkcs11_wrap.WrapProof.as_dict() gives it: combined/kwp outcomes per key class."""
    def both(outcome):
        return outcome if isinstance(outcome, dict) else {'secret': outcome, 'private': outcome}
    return {'oaep': oaep, 'combined': both(combined) if combined is not None else None,
            'kwp': [(m, both(o)) for m, o in kwp]}


EVERYTHING = proof('exact', [(KWP_STD, 'exact')])
SOFTHSM = proof(None, [(KWP_STD, 'not offered'), (KWP, {'secret': 'exact', 'private': 'zero-padded'})])
CONFORMING = proof(None, [(KWP_STD, 'exact'), (KWP, PAD_3394)])


@pytest.mark.parametrize('name,facts,expected', [
    ('luna', EVERYTHING, 'combined'),
    ('nshield', EVERYTHING, 'combined'),
    ('generic', EVERYTHING, 'combined'),
    ('softhsm', SOFTHSM, 'two_step'),
    ('generic', CONFORMING, 'two_step'),
    ('generic', proof('exact'), 'combined'),
])
def test_auto_prefers_combined_then_two_step(name, facts, expected):
    profile = vendors.get_profile(name)
    for requested in ('auto', None):
        for cls in ('secret', 'private'):
            assert vendors.choose_wrap_path(profile, requested, facts, cls)['method'] == expected


def test_a_mechanism_whose_output_did_not_match_is_never_used_whatever_its_name():
    path = vendors.choose_wrap_path(vendors.get_profile('generic'), 'auto', CONFORMING, 'private')
    assert path['mechanism'] == KWP_STD and path['zero_padded'] is False
    assert path['mechanism_name'] == 'CKM_AES_KEY_WRAP_KWP (0x210B) + CKM_RSA_PKCS_OAEP'
    with pytest.raises(vendors.VendorError) as exc:
        vendors.choose_wrap_path(vendors.get_profile('generic'), 'auto', proof(None, [(KWP, PAD_3394)]), 'private')
    assert 'CKM_AES_KEY_WRAP_PAD (0x210A): output is RFC 3394 over PKCS#7 padding' in str(exc.value)


def test_an_exact_encoding_wins_over_a_zero_padded_one_and_padding_is_reported():
    facts = proof({'secret': 'exact', 'private': 'zero-padded'}, [(KWP_STD, 'exact')])
    assert vendors.choose_wrap_path(vendors.get_profile('generic'), 'auto', facts, 'private')['method'] == 'two_step'
    assert vendors.choose_wrap_path(vendors.get_profile('generic'), 'auto', facts, 'secret')['method'] == 'combined'
    softhsm = vendors.choose_wrap_path(vendors.get_profile('softhsm'), 'auto', SOFTHSM, 'private')
    assert softhsm['mechanism'] == KWP and softhsm['zero_padded'] is True


def test_without_any_proved_path_the_refusal_names_everything_tried():
    facts = proof(None, [(KWP_STD, 'refused by C_WrapKey with CKR_BUFFER_TOO_SMALL'), (KWP, PAD_3394)])
    with pytest.raises(vendors.VendorError) as exc:
        vendors.choose_wrap_path(vendors.get_profile('generic'), 'auto', facts, 'private')
    msg = str(exc.value)
    assert '\n' not in msg and 'RSA and EC keys' in msg
    for words in ('CKM_RSA_AES_KEY_WRAP: not offered', 'CKM_AES_KEY_WRAP_KWP (0x210B): refused by C_WrapKey with '
                  'CKR_BUFFER_TOO_SMALL', 'CKM_AES_KEY_WRAP_PAD (0x210A): output is RFC 3394'):
        assert words in msg, (words, msg)


def test_a_class_the_token_cannot_wrap_is_refused_while_the_other_is_served():
    facts = proof(None, [(KWP_STD, {'secret': 'exact', 'private': 'refused by C_WrapKey with CKR_BUFFER_TOO_SMALL'})])
    assert vendors.choose_wrap_path(vendors.get_profile('generic'), 'auto', facts, 'secret')['method'] == 'two_step'
    with pytest.raises(vendors.VendorError, match='RSA and EC keys'):
        vendors.choose_wrap_path(vendors.get_profile('generic'), 'auto', facts, 'private')


def test_two_step_needs_the_oaep_step_proved():
    facts = proof(None, [(KWP_STD, 'exact')], oaep='output is not RSA-OAEP with SHA-1 and MGF1-SHA-1')
    with pytest.raises(vendors.VendorError, match='CKM_RSA_PKCS_OAEP .SHA-1.: output is not RSA-OAEP'):
        vendors.choose_wrap_path(vendors.get_profile('generic'), 'auto', facts, 'secret')


@pytest.mark.parametrize('method', ['combined', 'two_step'])
def test_explicit_method_is_honoured_when_proved(method):
    assert vendors.choose_wrap_path(luna(), method, EVERYTHING, 'private')['method'] == method


def test_combined_on_a_token_without_it_names_the_alternative():
    with pytest.raises(vendors.VendorError) as exc:
        vendors.choose_wrap_path(vendors.get_profile('softhsm'), 'combined', SOFTHSM, 'private')
    assert 'CKM_RSA_AES_KEY_WRAP: not offered' in str(exc.value) and 'two_step works here' in str(exc.value)


def test_two_step_on_a_combined_only_token_names_the_alternative():
    with pytest.raises(vendors.VendorError) as exc:
        vendors.choose_wrap_path(vendors.get_profile('generic'), 'two_step', proof('exact'), 'secret')
    assert 'wrap_method: auto (combined works here)' in str(exc.value)


def test_mechanism_codes():
    assert (COMBINED, KWP, KWP_STD, OAEP, LUNA_KWP) == (0x1054, 0x210A, 0x210B, 0x9, 0x80000171)
    assert vendors.kwp_candidates(vendors.get_profile('generic')) == (KWP_STD, KWP)
    assert vendors.kwp_candidates(luna()) == (LUNA_KWP, KWP_STD, KWP)


# -- environment and files ---------------------------------------------------------------------------------------

def test_luna_environment_default_only_when_unset():
    assert vendors.library_environment(luna(), environ={}) == {'ChrystokiConfigurationPath': '/etc'}
    assert vendors.library_environment(luna(), environ={'ChrystokiConfigurationPath': '/opt/luna'}) == {}


def test_nshield_environment_defaults():
    profile = vendors.get_profile('nshield')
    assert vendors.library_environment(profile, environ={}) == {'CKNFAST_LOADSHARING': '1'}
    assert vendors.library_environment(profile, environ={'CKNFAST_LOADSHARING': '0'}) == {}


@pytest.mark.parametrize('name', ['softhsm', 'generic'])
def test_no_environment_for_others(name):
    assert vendors.library_environment(vendors.get_profile(name), environ={}) == {}


def test_luna_needs_chrystoki_conf():
    missing = vendors.missing_files(luna(), environ={'ChrystokiConfigurationPath': '/x'}, exists=lambda p: False)
    assert missing == ['/x/Chrystoki.conf (from ChrystokiConfigurationPath=/x)']
    assert vendors.missing_files(luna(), environ={}, exists=lambda p: p == '/etc/Chrystoki.conf') == []


def test_default_library_takes_the_first_existing():
    paths = vendors.PROFILES['luna']['library_paths']
    assert vendors.default_library('luna', exists=lambda p: p == paths[1]) == paths[1]
    assert vendors.default_library('nshield', exists=lambda p: False) is None
    assert vendors.default_library('auto', exists=lambda p: p.endswith('libcknfast.so')).endswith('libcknfast.so')
    assert vendors.default_library('generic', exists=lambda p: True) is None


# -- detection ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('manufacturer,expected', [
    ('SafeNet, Inc.', 'luna'),
    ('Safenet, Inc. Luna K7', 'luna'),
    ('Thales', 'luna'),
    ('Gemalto', 'luna'),
    ('nCipher Corp. Ltd', 'nshield'),
    ('Entrust', 'nshield'),
    ('SoftHSM project', 'softhsm'),
    ('Utimaco IS GmbH', 'generic'),
    ('', 'generic'),
    (None, 'generic'),
])
def test_detect(manufacturer, expected):
    assert vendors.detect(manufacturer) == expected


def test_resolve_auto_reads_the_manufacturer_and_explicit_wins():
    assert vendors.resolve('auto', 'SafeNet, Inc.')['name'] == 'luna'
    assert vendors.resolve(None, 'nCipher Corp. Ltd')['name'] == 'nshield'
    assert vendors.resolve('generic', 'SafeNet, Inc.')['name'] == 'generic'
    with pytest.raises(vendors.VendorError, match='unknown'):
        vendors.get_profile('utimaco')


# -- legacy methods and quirks -----------------------------------------------------------------------------------

def test_nshield_legacy_method_message():
    msg = vendors.legacy_method_error(vendors.get_profile('nshield'), 'KeyTransferRemote')
    for fact in ('KeyTransferRemote', 'deprecated by Microsoft', '30 June 2021', 'current vendor-agnostic method'):
        assert fact in msg
    assert vendors.legacy_method_error(vendors.get_profile('nshield'), 'hsm_keygen') is None
    assert vendors.legacy_method_error(luna(), 'KeyTransferRemote') is None


@pytest.mark.parametrize('name', sorted(vendors.PROFILES))
def test_every_profile_generates_extractable_sensitive_private_keys(name):
    assert vendors.get_profile(name)['private_key_attributes'] == {'extractable': True, 'sensitive': True, 'private': True}


# -- the roles mirror the profiles and decide nothing themselves -------------------------------------------------

def _yaml(path):
    with open(os.path.join(ROOT, path)) as f:
        return yaml.safe_load(f)


def test_library_paths_are_written_only_in_the_profiles():
    """The roles hold no library path: preflight reports on the profile's own, as the modules try them."""
    paths = set(p for profile in vendors.PROFILES.values() for p in profile['library_paths'])
    for role in ('luna', 'nshield', 'generic_pkcs11', 'transfer', 'staged'):
        for where in ('defaults/main.yml', 'meta/argument_specs.yml', 'tasks/preflight.yml', 'tasks/main.yml'):
            path = os.path.join(ROOT, 'roles', role, where)
            if os.path.exists(path):
                with open(path) as f:
                    text = f.read()
                assert not [p for p in paths if p in text], (role, where)
    assert _yaml('roles/luna/defaults/main.yml')['luna_library_candidates'] == []
    assert _yaml('roles/nshield/defaults/main.yml')['nshield_library_candidates'] == []
    assert _yaml('roles/luna/defaults/main.yml')['luna_config_default_dir'] == \
        vendors.PROFILES['luna']['environment_defaults']['ChrystokiConfigurationPath']


def test_the_vendor_roles_preflight_reports_on_the_profiles_paths():
    from ansible_collections.byok.keyvault.plugins.filter.plan import byok_vendor_libraries
    assert byok_vendor_libraries('luna') == vendors.PROFILES['luna']['library_paths']
    assert byok_vendor_libraries('nshield') == vendors.PROFILES['nshield']['library_paths']
    for role in ('luna', 'nshield'):
        with open(os.path.join(ROOT, 'roles', role, 'tasks', 'preflight.yml')) as f:
            assert "'%s' | byok.keyvault.byok_vendor_libraries" % role in f.read()


def test_nshield_role_refuses_the_legacy_method_with_the_profile_facts():
    tasks = _yaml('roles/nshield/tasks/main.yml')
    assert_task = tasks[0]['ansible.builtin.assert']
    assert assert_task['that'] == 'nshield_legacy_method | length == 0'
    for fact in ('KeyTransferRemote', 'deprecated by Microsoft', '30 June 2021', 'current vendor-agnostic method'):
        assert fact in assert_task['fail_msg']


@pytest.mark.parametrize('role,vendor', [('luna', 'luna'), ('nshield', 'nshield'), ('generic_pkcs11', None)])
def test_roles_pass_only_the_profile_name(role, vendor):
    """No vendor branches in the roles: each passes its profile's name to the one shared procedure, which hands it to
    every HSM module through the action group's module_defaults."""
    tasks_text = ''
    for path in glob.glob(os.path.join(ROOT, 'roles', role, 'tasks', '*.yml')):
        with open(path) as f:
            tasks_text += f.read()
    assert not re.search(r'vendor\s*==|==\s*[\'"](luna|nshield|softhsm|generic)', tasks_text)
    if vendor:
        includes = [t for t in _flatten(_yaml('roles/%s/tasks/main.yml' % role)) if 'ansible.builtin.include_role' in t]
        shared = {'name': 'byok.keyvault.generic_pkcs11', 'tasks_from': 'procedure'}
        assert [t['ansible.builtin.include_role'] for t in includes] == [shared]
        assert includes[0]['vars']['generic_pkcs11_vendor'] == vendor
    procedure = _yaml('roles/generic_pkcs11/tasks/procedure.yml')
    # empty means auto, as for every role variable that names a vendor
    assert procedure[0]['module_defaults']['group/byok.keyvault.hsm']['vendor'] == "{{ generic_pkcs11_vendor | default('auto', true) }}"
    modules = [t for t in _flatten(procedure) if any(k in t for k in ('byok.keyvault.hsm_keygen', 'byok.keyvault.byok_wrap'))]
    assert len(modules) == 2 and not any('vendor' in (t.get('byok.keyvault.hsm_keygen') or t.get('byok.keyvault.byok_wrap'))
                                         for t in modules)


def _flatten(tasks):
    for task in tasks:
        yield task
        for key in ('block', 'rescue', 'always'):
            yield from _flatten(task.get(key, []))


# -- Luna 5/6, Key Export variant only ----------------------------------------------------------------------------

# Luna 5/6 firmware: no CKM_RSA_AES_KEY_WRAP; Luna's CKM_AES_KWP for the AES step, CKM_RSA_PKCS_OAEP


@pytest.mark.parametrize('firmware,expected', [
    ('5.0', 'luna56'), ('5.4', 'luna56'), ('6.10', 'luna56'), ('6.24', 'luna56'),
    ('7.0', 'luna'), ('7.2', 'luna'), ('7.3', 'luna'), ('7.8', 'luna'), ('4.9', 'luna'), (None, 'luna')])
def test_luna_firmware_picks_the_variant(firmware, expected):
    assert vendors.resolve('luna', 'Safenet, Inc. LunaSA', firmware)['name'] == expected
    assert vendors.resolve('auto', 'Safenet, Inc. LunaSA', firmware)['name'] == expected


def test_luna_model_alone_detects_luna_and_other_vendors_have_no_variants():
    assert vendors.detect('LunaSA') == 'luna'
    assert vendors.resolve('softhsm', 'SoftHSM project', '6.10')['name'] == 'softhsm'
    assert vendors.resolve('nshield', 'nCipher Corp. Ltd', '6.0')['name'] == 'nshield'


def test_below_luna_5_and_luna_7_before_7_3_are_still_refused():
    for fw in ('4.9', '7.2'):
        with pytest.raises(vendors.VendorError, match='below 7.3'):
            vendors.check_firmware(vendors.resolve('luna', 'Safenet', fw), fw, 'RSA', 2048)
    vendors.check_firmware(vendors.resolve('luna', 'Safenet', '6.10'), '6.10', 'RSA', 4096)


def test_luna56_wraps_in_two_steps_with_luna_kwp():
    profile = vendors.get_profile('luna56')
    facts = proof('exact', [(LUNA_KWP, 'exact'), (KWP_STD, 'exact'), (KWP, 'exact')])
    # Luna's own KWP is tried first; even if a library listed 0x1054, firmware 5/6 never takes the one-shot path
    path = vendors.choose_wrap_path(profile, 'auto', facts, 'private')
    assert (path['method'], path['mechanism']) == ('two_step', LUNA_KWP)
    assert vendors.kwp_candidates(profile) == (LUNA_KWP, KWP_STD, KWP)
    with pytest.raises(vendors.VendorError, match='combined is not possible on Thales Luna 5/6'):
        vendors.choose_wrap_path(profile, 'combined', facts, 'private')


def test_other_profiles_do_not_try_luna_kwp():
    assert LUNA_KWP not in vendors.kwp_candidates(vendors.get_profile('generic'))
    assert LUNA_KWP not in vendors.kwp_candidates(vendors.get_profile('nshield'))


def test_luna56_limits_and_private_key_wrap_rule():
    profile = vendors.get_profile('luna56')
    assert profile['max_key_sizes'] == {'RSA': 4096}
    with pytest.raises(vendors.VendorError, match='at most RSA-4096'):
        vendors.check_firmware(profile, '6.10', 'RSA', 8192)
    assert [n for n in vendors.PROFILES if vendors.PROFILES[n].get('private_key_wrap')] == ['luna56']
    with pytest.raises(vendors.VendorError) as err:
        vendors.refuse_private_key_wrap(profile, 'part1', 'LunaSA', '6.10', 'refused with CKR_KEY_NOT_WRAPPABLE')
    msg = str(err.value)
    assert '\n' not in msg
    for words in ("partition 'part1'", 'firmware 6.10', 'CKR_KEY_NOT_WRAPPABLE', 'cloning', 'Key Export',
                  'Allow private key wrapping', 'nothing was generated', 'changePolicy -policy 1 -value 1', 'Luna 7'):
        assert words in msg, (words, msg)


def test_luna56_shares_the_luna_client_facts():
    luna, luna56 = vendors.PROFILES['luna'], vendors.PROFILES['luna56']
    for field in ('library_paths', 'environment_defaults', 'required_files', 'token_selection', 'user_role'):
        assert luna56[field] == luna[field], field
