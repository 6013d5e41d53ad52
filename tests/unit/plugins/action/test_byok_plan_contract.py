# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory contract, mistake by mistake: each is refused by the plan in one line that names the host and the
variable path the user wrote, and every problem of an inventory comes in one run (no rounds)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import json
import os
import types

import pytest
import yaml

from ansible_collections.byok.keyvault.plugins.action.byok_plan import ActionModule, load_spec
from ansible_collections.byok.keyvault.plugins.module_utils.fleet_plan import plan_fleet
from ansible_collections.byok.keyvault.plugins.module_utils.inventory import format_problems

SPEC = load_spec('transfer', 'main')
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
VAULTS = {'prod': {'url': 'https://contoso.vault.azure.net'}, 'mhsm': {'url': 'https://c.managedhsm.azure.net'}}
ROLE = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'transfer')


class Tagged(str):
    """A str subclass, as Ansible hands inventory strings over (its name must never reach a message)."""


def host(**values):
    base = {'byok_vaults': copy.deepcopy(VAULTS), 'byok_user_pin': '1234', 'byok_keys': [{'name': 'app-rsa', 'vault': 'prod'}]}
    base.update(values)
    return base


def lines(**values):
    plan, problems = plan_fleet(SPEC, {'hsm1': host(**values)}, now=NOW)
    return format_problems(problems, ['hsm1'])


def one_line(**values):
    found = lines(**values)
    assert len(found) == 1, found
    assert '\n' not in found[0]
    return found[0]


# -- names ending in a line break (a $-anchored regex matches before a final newline) ---------------------------------
def test_a_key_name_ending_in_a_newline_is_refused():
    line = one_line(byok_keys=[{'name': 'app-rsa\n', 'vault': 'prod'}])
    assert line.startswith("hsm1: byok_keys[0] (app-rsa\\n).name: 'app-rsa\\n' is not a valid Key Vault key name"), line
    assert 'line break' in line and "use 1-127 characters" in line


def test_a_kek_name_ending_in_a_newline_is_refused():
    vaults = dict(copy.deepcopy(VAULTS), prod={'url': 'https://contoso.vault.azure.net', 'kek_name': 'prod-kek\n'})
    line = one_line(byok_vaults=vaults)
    assert line.startswith("hsm1: byok_vaults.prod.kek_name: 'prod-kek\\n' is not a valid Key Vault key name"), line


def test_a_vault_short_name_ending_in_a_newline_is_refused():
    vaults = {'prod\n': {'url': 'https://contoso.vault.azure.net'}}
    found = lines(byok_vaults=vaults, byok_keys=[{'name': 'app-rsa', 'vault': 'prod\n'}])
    assert any(line.startswith("hsm1: byok_vaults.prod\\n: 'prod\\n' is not a vault short name") for line in found), found


# -- the vault's declared type against its URL ------------------------------------------------------------------------
def test_a_declared_type_that_contradicts_the_url_is_refused():
    vaults = dict(copy.deepcopy(VAULTS), mhsm={'url': 'https://c.managedhsm.azure.net', 'type': 'premium'})
    line = one_line(byok_vaults=vaults, byok_keys=[{'name': 'app-aes', 'vault': 'mhsm', 'key_type': 'oct'}])
    assert line.startswith("hsm1: byok_vaults.mhsm.type: 'premium' contradicts the url https://c.managedhsm.azure.net"), line
    assert 'set type: managed_hsm (or auto)' in line


# -- vault URLs parsed strictly ---------------------------------------------------------------------------------------
def test_a_url_with_two_ports_is_refused_by_the_plan():
    vaults = dict(copy.deepcopy(VAULTS), prod={'url': 'https://contoso.vault.azure.net:443:443'})
    line = one_line(byok_vaults=vaults)
    assert line.startswith("hsm1: byok_vaults.prod.url: url 'https://contoso.vault.azure.net:443:443' has an invalid port"), line


# -- booleans: what the plan accepts, the role reads the same way -----------------------------------------------------
def test_booleans_the_bool_filter_would_misread_are_refused_and_quoted_no_is_false():
    plan, problems = plan_fleet(SPEC, {'hsm1': host(byok_kek_delete_after_run='no')}, now=NOW)
    assert problems == []
    line = one_line(byok_kek_delete_after_run='n')
    assert line == "hsm1: byok_kek_delete_after_run: 'n' is not a boolean; use true or false", line


def test_the_role_reads_every_boolean_variable_through_the_bool_filter_in_its_conditions():
    """The plan takes 'no' as false (as argument specs do); a bare `when: VAR` would read the string 'no' as an error."""
    booleans = [name for name, option in SPEC.items() if option.get('type') == 'bool']
    tasks_dir = os.path.join(ROLE, 'tasks')
    bare = []
    for name in sorted(os.listdir(tasks_dir)):
        with open(os.path.join(tasks_dir, name)) as f:
            stack = list(yaml.safe_load(f) or [])
        while stack:
            task = stack.pop()
            for part in ('block', 'rescue', 'always'):
                stack.extend(task.get(part) or [])
            conditions = task.get('when') or []
            for condition in conditions if isinstance(conditions, list) else [conditions]:
                for var in booleans:
                    if var in str(condition) and '%s | bool' % var not in str(condition):
                        bare.append('%s: %s' % (name, condition))
    assert bare == []


def test_verify_signature_without_sign_is_refused():
    line = one_line(byok_verify_signature=True,
                    byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'key_ops': ['encrypt', 'decrypt']}])
    assert line.startswith("hsm1: byok_keys[0] (app-rsa).key_ops: ['encrypt', 'decrypt'] lacks sign, which "
                           "byok_verify_signature: true needs"), line
    assert 'add sign to key_ops or set byok_verify_signature: false' in line
    # as a string from extra vars, and an AES key (proved by its KCV) needs no sign
    assert lines(byok_verify_signature='true', byok_keys=[{'name': 'app-aes', 'vault': 'mhsm', 'key_type': 'oct',
                                                           'key_ops': ['encrypt']}]) == []


# -- byok_manifest_dir ------------------------------------------------------------------------------------------------
def manifest_problems(value):
    action = types.SimpleNamespace(_templar=types.SimpleNamespace(template=lambda v: v))
    return [p.line() for p in ActionModule._manifest_problems(action, {'byok_manifest_dir': value, 'byok_controller': 'ctl'})]


def test_a_manifest_dir_that_yaml_read_as_a_number_is_refused(tmp_path):
    found = manifest_problems(0o755)  # byok_manifest_dir: 0755, unquoted
    assert len(found) == 1 and found[0].startswith('ctl: byok_manifest_dir: 493 is an integer, not a string (a path)'), found
    assert manifest_problems(str(tmp_path / 'manifests')) == []


def test_a_manifest_dir_set_for_the_controller_alone_or_differently_per_host_is_refused(tmp_path):
    """The report writes with the controller's value (or an HSM host's, under a --limit that leaves the controller out):
    one value, checked, or the run moves keys and then cannot write its manifest (or writes it elsewhere)."""
    action = types.SimpleNamespace(_templar=types.SimpleNamespace(template=lambda v: v))
    bad = str(tmp_path / 'a-file' / 'manifests')
    hostvars = {'localhost': {'byok_manifest_dir': bad}, 'hsm1': {}, 'hsm2': {}}
    task_vars = {'hostvars': hostvars, 'byok_controller': 'localhost'}
    found = [p.line() for p in ActionModule._manifest_problems(action, task_vars, ['hsm1', 'hsm2'])]
    assert found == ["%s: byok_manifest_dir: unset (the default) here and '%s' on localhost; the report writes the audit "
                     "manifest with one value: set byok_manifest_dir once, under all: vars:" % (h, bad) for h in ('hsm1', 'hsm2')]
    good = tmp_path / 'manifests'
    good.mkdir(mode=0o700)
    hostvars = dict((h, {'byok_manifest_dir': str(good)}) for h in ('localhost', 'hsm1', 'hsm2'))
    assert ActionModule._manifest_problems(action, {'hostvars': hostvars, 'byok_controller': 'localhost'}, ['hsm1', 'hsm2']) == []


# -- near-miss variable names -----------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['byok-keys', 'Byok_keys', 'BYOK_KEYS'])
def test_a_near_miss_of_a_variable_name_is_refused_with_did_you_mean(name):
    problems = []
    hostvars = {'hsm1': {name: [{'name': 'a', 'vault': 'prod'}], 'byok_survey_answer': 1, 'ansible_host': 'x', 'backup_keys': []}}
    values = ActionModule._declared(None, hostvars, 'hsm1', SPEC, problems)
    assert values == {}
    found = [p.line() for p in problems]
    assert found == ['hsm1: %s: unknown variable; did you mean byok_keys? (names are case-sensitive and use _, not -)' % name]


# -- an expiry a few seconds ahead ------------------------------------------------------------------------------------
def test_an_expiry_less_than_an_hour_ahead_is_refused():
    soon = (NOW + datetime.timedelta(seconds=30)).strftime('%Y-%m-%dT%H:%M:%SZ')
    line = one_line(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'expires_on': soon}])
    assert line.startswith("hsm1: byok_keys[0] (app-rsa).expires_on: '%s' is less than an hour after now" % soon), line
    assert 'at least an hour ahead' in line
    later = (NOW + datetime.timedelta(hours=2)).strftime('%Y-%m-%dT%H:%M:%SZ')
    assert lines(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'expires_on': later}]) == []


def test_a_kek_expiry_less_than_an_hour_ahead_is_refused():
    soon = (NOW + datetime.timedelta(minutes=5)).strftime('%Y-%m-%dT%H:%M:%SZ')
    vaults = dict(copy.deepcopy(VAULTS), prod={'url': 'https://contoso.vault.azure.net', 'kek_expires_on': soon})
    line = one_line(byok_vaults=vaults)
    assert line.startswith("hsm1: byok_vaults.prod.kek_expires_on: '%s' is less than an hour after now" % soon), line


# -- messages: plain type names, examples that fit the key type, never import/export offered --------------------------
def test_type_names_are_plain():
    line = one_line(byok_keys=[Tagged('k1')])
    assert line == "hsm1: byok_keys[0]: 'k1' is a string, not a dictionary; use a mapping (key: value lines)", line


def test_an_ec_key_is_shown_an_ec_example_list():
    line = one_line(byok_keys=[{'name': 'app-ec', 'vault': 'prod', 'key_type': 'EC', 'key_ops': 'sign'}])
    assert line.startswith("hsm1: byok_keys[0] (app-ec).key_ops: 'sign' is a string, not a list; use a list like "
                           "[sign, verify]"), line
    assert 'encrypt' not in line


@pytest.mark.parametrize('key_type, op, allowed', [
    ('RSA', 'verfy', 'encrypt, decrypt, sign, verify, wrapKey, unwrapKey'),
    ('EC', 'sing', 'sign, verify'),
])
def test_the_key_ops_message_offers_only_what_the_key_type_may_do(key_type, op, allowed):
    line = one_line(byok_keys=[{'name': 'k', 'vault': 'prod', 'key_type': key_type, 'key_ops': [op]}])
    assert line.startswith("hsm1: byok_keys[0] (k).key_ops[0]: '%s' is not one of %s" % (op, allowed)), line
    assert 'import' not in line and 'export' not in line


# -- every problem in one run -----------------------------------------------------------------------------------------
def test_every_problem_of_a_key_comes_in_one_run():
    """Once: curve P384, key_ops Sign, key_type rsa, vault type Premium; then key_size 1024; then 'import' - in rounds."""
    vaults = {'prod': {'url': 'https://contoso.vault.azure.net', 'type': 'Premium'}}
    key = {'name': 'k', 'vault': 'prod', 'key_type': 'rsa', 'key_size': 1024, 'curve': 'P384', 'key_ops': ['Sign', 'import']}
    found = lines(byok_vaults=vaults, byok_keys=[key])
    expected = ["hsm1: byok_vaults.prod.type: 'Premium' is not one of auto, premium, managed_hsm; did you mean premium?",
                "hsm1: byok_keys[0] (k).key_type: 'rsa' is not one of RSA, EC, oct; did you mean RSA?",
                'hsm1: byok_keys[0] (k).key_size: RSA key_size 1024 is not accepted',
                "hsm1: byok_keys[0] (k).curve: 'P384' is not one of",
                'hsm1: byok_keys[0] (k).curve: curve is only for EC keys',
                "hsm1: byok_keys[0] (k).key_ops[0]: 'Sign' is not one of",
                "hsm1: byok_keys[0] (k).key_ops[1]: 'import' is not allowed for a BYOK target key"]
    for start in expected:
        assert any(line.startswith(start) for line in found), (start, found)
    assert len(found) == len(expected), found


def test_an_aes_key_of_a_wrong_size_for_a_premium_vault_gets_both_problems_at_once():
    found = lines(byok_keys=[{'name': 'k', 'vault': 'prod', 'key_type': 'OCT', 'key_size': 512}])
    assert len(found) == 3, found
    assert "hsm1: byok_keys[0] (k).key_type: 'OCT' is not one of RSA, EC, oct; did you mean oct?" in found
    assert any(line.startswith('hsm1: byok_keys[0] (k).key_size: oct (AES) key_size 512 is not accepted') for line in found)
    assert any(line.startswith('hsm1: byok_keys[0] (k).key_type: oct (AES) keys can only be imported into Azure Managed HSM')
               for line in found), found


# -- Secure Key Release: exportable keys and their release policies ---------------------------------------------------
CVM_POLICY = {'version': '1.0.0', 'anyOf': [{'authority': 'https://sharedeus.eus.attest.azure.net',
                                             'allOf': [{'claim': 'x-ms-attestation-type', 'equals': 'sevsnpvm'}]}]}


def test_an_exportable_key_without_a_release_policy_is_refused():
    line = one_line(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'exportable': True}])
    assert line.startswith('hsm1: byok_keys[0] (app-rsa).release_policy: is missing: an exportable key needs a release '
                           'policy (Key Vault answers "Exportable keys must have release policy")'), line


def test_a_release_policy_without_exportable_is_refused():
    line = one_line(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'release_policy': CVM_POLICY}])
    assert line.startswith('hsm1: byok_keys[0] (app-rsa).release_policy: is given for a key that is not exportable'), line
    assert 'AKV.SKR.1005' in line


def test_a_release_policy_of_the_wrong_shape_is_refused_where_it_is_wrong():
    policy = copy.deepcopy(CVM_POLICY)
    policy['version'] = '1.0'
    del policy['anyOf'][0]['allOf'][0]['equals']
    found = lines(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'exportable': True, 'release_policy': policy}])
    assert len(found) == 2, found
    assert found[0].startswith("hsm1: byok_keys[0] (app-rsa).release_policy.anyOf[0].allOf[0]: needs exactly one operator")
    assert found[1].startswith('hsm1: byok_keys[0] (app-rsa).release_policy.version: "1.0" is not a policy version')


def test_a_release_policy_file_is_read_on_the_controller_and_becomes_the_document(tmp_path):
    path = tmp_path / 'cvm.json'
    path.write_text(json.dumps(CVM_POLICY))
    key = {'name': 'app-rsa', 'vault': 'prod', 'exportable': True, 'release_policy': str(path)}
    plan, problems = plan_fleet(SPEC, {'hsm1': host(byok_keys=[key])}, now=NOW)
    assert problems == []
    entry, = plan['entries']
    assert entry['release_policy'] == CVM_POLICY and entry['exportable'] is True and entry['release_policy_immutable'] is False
    assert sorted(entry['stated']) == ['exportable', 'release_policy']  # stated by its path
    line = one_line(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'exportable': True,
                                'release_policy': str(tmp_path / 'nope.json')}])
    assert line.startswith('hsm1: byok_keys[0] (app-rsa).release_policy: names the file %s, which cannot be read'
                           % (tmp_path / 'nope.json')), line


def test_export_is_an_operation_of_exportable_keys_only():
    ok = [{'name': 'app-rsa', 'vault': 'prod', 'exportable': True, 'release_policy': CVM_POLICY, 'key_ops': ['sign', 'export']}]
    assert lines(byok_keys=ok) == []
    line = one_line(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'key_ops': ['sign', 'export']}])
    assert line.startswith("hsm1: byok_keys[0] (app-rsa).key_ops[1]: 'export' is not allowed for a BYOK target key"), line
    assert 'exportable: true' in line


# -- rotation by cryptoperiod ----------------------------------------------------------------------------------------
def test_a_rotate_after_that_is_not_an_iso_8601_period_is_refused_with_an_example():
    line = one_line(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'rotate_after': '365 days'}])
    assert line.startswith("hsm1: byok_keys[0] (app-rsa).rotate_after: '365 days' is not an ISO 8601 duration; write one "
                           "like P365D"), line
    assert lines(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'rotate_after': 'P1Y'}]) == []


def test_a_label_of_a_later_generation_of_a_rotating_key_is_refused():
    keys = [{'name': 'app-rsa', 'vault': 'prod', 'rotate_after': 'P1Y'}, {'name': 'other', 'vault': 'prod', 'label': 'app-rsa.r2'}]
    line = one_line(byok_keys=keys)
    assert line.startswith("hsm1: byok_keys[1] (other).label: 'app-rsa.r2' is the label of a later generation of "
                           "byok_keys[0]'s HSM key"), line


def test_the_staged_flow_refuses_rotate_after():
    from ansible_collections.byok.keyvault.plugins.module_utils.fleet_plan import flow_problems
    hosts = {'hsm1': host(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'rotate_after': 'P1Y'}])}
    assert flow_problems(hosts, 'transfer') == []
    (line,) = format_problems(flow_problems(hosts, 'staged'), ['hsm1'])
    assert line.startswith('hsm1: byok_keys[0] (app-rsa).rotate_after: the staged (air-gapped) flow does not rotate'), line


def test_null_attributes_are_not_stated_and_destroy_with_rotate_after_is_refused():
    key = {'name': 'app-rsa', 'vault': 'prod', 'expires_on': None, 'release_policy': None, 'tags': {'a': 'b'}}
    plan, problems = plan_fleet(SPEC, {'hsm1': host(byok_keys=[key])}, now=NOW)
    assert problems == [] and plan['entries'][0]['stated'] == ['tags']
    line = one_line(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'state': 'absent', 'destroy_hsm_key': True,
                                'rotate_after': 'P1Y'}])
    assert line.startswith('hsm1: byok_keys[0] (app-rsa).destroy_hsm_key: is true for a key with rotate_after'), line


def test_the_hsm_environment_takes_variable_names_with_one_value_and_no_secret():
    environment = {'SOFTHSM2_CONF': '/etc/softhsm/softhsm2.conf', 'CKNFAST_LOADSHARING': 1, 'PKCS11_TOKEN_LABEL': 'byok',
                   'PKCS11_USER_PIN': '1234', 'HSM_Password': 'x', '9LIVES': 'x', 'NESTED': {'a': 'b'}}
    seen = 'the environment of the HSM steps is put on the command line that starts each module (ps on the HSM host, -vvv)'
    assert lines(byok_hsm_environment=environment) == [
        "hsm1: byok_hsm_environment: '9LIVES' is not an environment variable name; use letters, digits and _ (not first a "
        "digit)",
        'hsm1: byok_hsm_environment.HSM_Password: names a secret, and %s; keep secrets out of it (the token PIN goes in '
        'byok_user_pin)' % seen,
        'hsm1: byok_hsm_environment.NESTED: is a dictionary; give the variable one value (a string or a number)',
        'hsm1: byok_hsm_environment.PKCS11_USER_PIN: %s; remove the PIN from it and set byok_user_pin (from Ansible Vault, '
        'or a lookup of the variable)' % seen,
    ]
    assert lines(byok_hsm_environment={'SOFTHSM2_CONF': '/etc/softhsm/softhsm2.conf', 'CKNFAST_LOADSHARING': 1,
                                       'ChrystokiConfigurationPath': '/etc', 'PKCS11_TOKEN_LABEL': 'byok'}) == []


def test_a_key_destroyed_on_a_token_another_host_sees_and_uses_is_refused():
    """Two HSM hosts on one network HSM partition (one token label, no serials): one retires its key with destroy_hsm_key,
    the other still lists the same HSM label; destroying it would take the other host's key."""
    retired = {'name': 'old-app', 'vault': 'prod', 'label': 'shared-label', 'state': 'absent', 'destroy_hsm_key': True}
    kept = {'name': 'new-app', 'vault': 'prod', 'label': 'shared-label'}
    hosts = {'hsm1': host(byok_token_label='partition', byok_keys=[retired]),
             'hsm2': host(byok_token_label='partition', byok_keys=[kept])}
    _plan, problems = plan_fleet(SPEC, hosts, now=NOW)
    (line,) = format_problems(problems, ['hsm1', 'hsm2'])
    assert line.startswith("hsm1: byok_keys[0] (old-app).destroy_hsm_key: is true, but HSM host hsm2 sees the same token "
                           "(token label partition) and its byok_keys[0] still uses HSM label 'shared-label'"), line
    # one host gives the serial too, the other the label alone: in doubt, one token
    hosts['hsm1']['byok_token_serial'] = '1111'
    (line,) = format_problems(plan_fleet(SPEC, hosts, now=NOW)[1], ['hsm1', 'hsm2'])
    assert 'sees the same token (token label partition)' in line, line
    # tokens of their own, told apart by serial: nothing shared, nothing refused
    hosts['hsm1']['byok_token_serial'], hosts['hsm2']['byok_token_serial'] = '1111', '2222'
    assert plan_fleet(SPEC, hosts, now=NOW)[1] == []


def test_a_date_with_a_fraction_of_a_second_is_refused_key_vault_keeps_whole_seconds():
    """expires_on 00.700Z would be held as 00Z: updated on every run, and drift in every audit."""
    line = one_line(byok_keys=[{'name': 'app-rsa', 'vault': 'prod', 'expires_on': '2030-01-01T00:00:00.700Z'}])
    assert line.startswith("hsm1: byok_keys[0] (app-rsa).expires_on: '2030-01-01T00:00:00.700Z' has a fraction "
                           "of a second"), line
    assert 'like 2030-01-01T00:00:00Z' in line, line


# -- hosts outside the run's --limit ----------------------------------------------------------------------------------
def test_a_key_of_the_run_that_a_host_outside_the_limit_lists_in_its_vault_is_refused():
    """hsm1 and hsm2 list one vault key: refused without a limit; with --limit hsm1 the plan must still see hsm2's entry,
    or hsm1 imports its key as the current version of hsm2's vault key."""
    hosts = {'hsm1': host(byok_keys=[{'name': 'app', 'vault': 'prod'}])}
    outside = {'hsm2': host(byok_keys=[{'name': 'APP', 'vault': 'prod'}])}
    _plan, problems = plan_fleet(SPEC, hosts, now=NOW, outside=outside)
    (line,) = format_problems(problems, ['hsm1'])
    assert line.startswith("hsm1: byok_keys[0] (app).name: vault key 'app' of https://contoso.vault.azure.net is also listed "
                           "by hsm2 (byok_keys[0], outside this run's --limit); a vault key holds one HSM key"), line
    assert plan_fleet(SPEC, hosts, now=NOW)[1] == []  # as the run alone sees it


def test_a_key_destroyed_on_a_token_a_host_outside_the_limit_uses_is_refused():
    retired = {'name': 'old-app', 'vault': 'prod', 'label': 'shared-label', 'state': 'absent', 'destroy_hsm_key': True}
    hosts = {'hsm1': host(byok_token_label='partition', byok_keys=[retired])}
    outside = {'hsm2': host(byok_token_label='partition', byok_keys=[{'name': 'new-app', 'vault': 'prod', 'label': 'shared-label'}])}
    _plan, problems = plan_fleet(SPEC, hosts, now=NOW, outside=outside)
    (line,) = format_problems(problems, ['hsm1'])
    assert line.startswith("hsm1: byok_keys[0] (old-app).destroy_hsm_key: is true, but HSM host hsm2 (outside this run's "
                           "--limit) sees the same token (token label partition)"), line


def test_a_host_outside_the_limit_never_has_a_problem_of_its_own_and_only_its_users_hold_the_seal():
    """Its own mistakes are its own run's to report; the records of the run name the hosts outside it that use their HSM
    key on the same token (the seal waits for them)."""
    hosts = {'hsm1': host(byok_token_serial='77', byok_keys=[{'name': 'a', 'vault': 'prod', 'label': 'shared'},
                                                             {'name': 'b', 'vault': 'prod', 'label': 'mine'}])}
    outside = {'hsm2': host(byok_token_serial='77', byok_keys=[{'name': 'c', 'vault': 'prod', 'label': 'shared',
                                                                'key_type': 'rsa'}]),
               'hsm3': host(byok_token_serial='78', byok_keys=[{'name': 'd', 'vault': 'prod', 'label': 'mine'}])}
    plan, problems = plan_fleet(SPEC, hosts, now=NOW, outside=outside)
    assert problems == []
    held = dict((r['name'], r.get('token_users_outside')) for r in plan['records'])
    assert held == {'a': ['hsm2'], 'b': None}, held


def test_the_plan_reads_of_a_host_outside_the_limit_only_its_keys_vaults_and_token(tmp_path):
    """An outside host's PIN (from an Ansible Vault or a lookup that another run resolves) is never resolved by this run, and
    its own mistakes are not this run's problems; its keys still count."""

    class HostVars(dict):
        """A host's variables as Ansible's hostvars give them: resolved when read."""

        def __getitem__(self, name):
            if name == 'byok_user_pin':
                raise AssertionError('the PIN of a host outside the run was resolved')
            return dict.__getitem__(self, name)

    hostvars = {'hsm1': host(byok_token_label='p', byok_keys=[{'name': 'a', 'vault': 'prod', 'label': 'shared'}]),
                'hsm2': HostVars(host(byok_token_label='p', byok_regenerate='sometimes',
                                      byok_keys=[{'name': 'b', 'vault': 'prod', 'label': 'shared'}]))}
    action = ActionModule.__new__(ActionModule)
    action._templar = types.SimpleNamespace(template=lambda value: value)
    args = {'hosts': ['hsm1'], 'outside_hosts': ['hsm2'], 'role': 'transfer', 'entry_point': 'main', 'vaults_required': True,
            'flow': 'transfer'}
    manifests = tmp_path / 'manifests'
    manifests.mkdir(mode=0o700)
    task_vars = dict(hostvars['hsm1'], hostvars=hostvars, byok_manifest_dir=str(manifests))
    result = action.act(args, task_vars, {})
    assert not result.get('failed'), result['msg']
    assert [r.get('token_users_outside') for r in result['records']] == [['hsm2']], result['records']


# -- mistakes that cost an HSM key, a KEK or a vault write, or came in rounds (second inventory review) ---------------
def fleet_lines(hosts, outside=None):
    return format_problems(plan_fleet(SPEC, hosts, now=NOW, outside=outside)[1], sorted(hosts))


def test_a_boolean_with_white_space_around_it_is_refused_the_roles_conditions_read_it_false():
    line = one_line(byok_hsm_seal_after_transfer='true ')
    assert line.startswith("hsm1: byok_hsm_seal_after_transfer: 'true ' has white space around it"), line
    assert lines(byok_hsm_seal_after_transfer='True') == [] and lines(byok_kek_purge='no') == []


def test_empty_key_ops_are_refused():
    line = one_line(byok_keys=[{'name': 'app-ec', 'vault': 'prod', 'key_type': 'EC', 'key_ops': []}])
    assert line.startswith('hsm1: byok_keys[0] (app-ec).key_ops: is empty, a key that may do nothing'), line
    assert 'like [sign, verify]' in line


@pytest.mark.parametrize('period', ['PT1S', 'PT59M', 'PT3599S'])
def test_a_rotation_period_shorter_than_an_hour_is_refused(period):
    line = one_line(byok_keys=[{'name': 'app-ec', 'vault': 'prod', 'key_type': 'EC', 'rotate_after': period}])
    assert line.startswith("hsm1: byok_keys[0] (app-ec).rotate_after: '%s' is shorter than an hour" % period), line
    assert lines(byok_keys=[{'name': 'app-ec', 'vault': 'prod', 'key_type': 'EC', 'rotate_after': 'PT12H'}]) == []


def test_verify_signature_with_a_disabled_or_not_yet_valid_key_is_refused():
    """The vault refuses to sign with them (403): the key would be imported, then reported failed."""
    keys = [{'name': 'off', 'vault': 'prod', 'key_type': 'EC', 'key_ops': ['sign', 'verify'], 'enabled': False},
            {'name': 'later', 'vault': 'prod', 'key_type': 'EC', 'key_ops': ['sign', 'verify'],
             'not_before': '2030-01-01T00:00:00Z'},
            {'name': 'now', 'vault': 'prod', 'key_type': 'EC', 'key_ops': ['sign', 'verify'], 'not_before': '2026-01-01T00:00:00Z'}]
    found = lines(byok_verify_signature=True, byok_keys=keys)
    assert len(found) == 2, found
    assert found[0].startswith('hsm1: byok_keys[0] (off).enabled: is false, and byok_verify_signature: true'), found
    assert found[1].startswith("hsm1: byok_keys[1] (later).not_before: '2030-01-01T00:00:00Z' is after now"), found
    assert lines(byok_keys=keys) == []


def test_an_aes_key_into_a_vault_whose_url_does_not_say_its_kind_is_refused():
    vaults = dict(copy.deepcopy(VAULTS), private={'url': 'https://kv.internal.example'})
    line = one_line(byok_vaults=vaults, byok_keys=[{'name': 'aes', 'vault': 'private', 'key_type': 'oct', 'key_size': 256}])
    assert line.startswith("hsm1: byok_keys[0] (aes).key_type: oct (AES) keys need a Managed HSM, and the url of vault "
                           "private (https://kv.internal.example) does not say whether it is one; set "
                           "byok_vaults.private.type: managed_hsm"), line
    vaults['private']['type'] = 'managed_hsm'
    assert lines(byok_vaults=vaults, byok_keys=[{'name': 'aes', 'vault': 'private', 'key_type': 'oct', 'key_size': 256}]) == []


def test_a_fleet_variable_set_differently_on_two_hosts_is_refused():
    """The vault steps run once for every HSM host with the first host's value: the other host's would be ignored."""
    found = fleet_lines({'hsm1': host(), 'hsm2': host(byok_kek_delete_after_run=True, byok_azure={'secret': 's3cr3t'},
                                                      byok_keys=[{'name': 'b', 'vault': 'prod'}])})
    assert found == [
        'hsm2: byok_azure: differs from its value on hsm1 (not shown: it may hold a secret); the vault steps run once for '
        'every HSM host, with one value: set it once, under all: vars:',
        'hsm2: byok_kek_delete_after_run: differs from its value on hsm1 (true against false); the vault steps run once for '
        'every HSM host, with one value: set it once, under all: vars:'], found


def test_one_vault_under_two_names_on_two_hosts_is_refused():
    found = fleet_lines({'hsm1': host(byok_vaults={'dr': {'url': 'https://dr.vault.azure.net', 'kek_size': 2048}},
                                      byok_keys=[{'name': 'a', 'vault': 'dr'}]),
                         'hsm2': host(byok_vaults={'dr-eu': {'url': 'https://DR.vault.azure.net/'}},
                                      byok_keys=[{'name': 'b', 'vault': 'dr-eu'}])})
    assert found == ["hsm2: byok_vaults.dr-eu.url: 'https://dr.vault.azure.net' is the vault hsm1 calls byok_vaults.dr (URLs "
                     "compare without case, default port and trailing slash); give each vault one name, under all: vars:"], found


def test_one_label_on_a_shared_token_with_two_key_types_is_refused():
    """hsm1 and hsm1b see one token: an EC and an RSA key cannot both be HSM label shared (with full_idempotence one host
    would replace the other's key)."""
    hosts = {'hsm1': host(byok_token_label='partition', byok_keys=[{'name': 'a', 'vault': 'prod', 'label': 'shared',
                                                                   'key_type': 'RSA'}]),
             'hsm1b': host(byok_token_label='partition', byok_keys=[{'name': 'b', 'vault': 'prod', 'label': 'shared',
                                                                    'key_type': 'EC'}])}
    found = fleet_lines(hosts)
    assert found == ["hsm1b: byok_keys[0] (b).label: 'shared' is also the label of byok_keys[0] of HSM host hsm1, which sees "
                     "the same token (token label partition), with another type, size, curve or id; one HSM label on a token "
                     "is one key: give this key its own label (hosts with tokens of their own: give each its "
                     "byok_token_serial)"], found
    hosts['hsm1b']['byok_keys'][0]['key_type'] = 'RSA'  # one key, into two vault keys: allowed
    assert fleet_lines(hosts) == []
    outside = {'hsm1b': hosts.pop('hsm1b')}
    outside['hsm1b']['byok_keys'][0]['key_type'] = 'EC'
    (line,) = fleet_lines(hosts, outside)
    assert line.startswith("hsm1: byok_keys[0] (a).label: 'shared' is also the label of byok_keys[0] of HSM host hsm1b "
                           "(outside this run's --limit)"), line


def test_problems_that_came_in_rounds_come_in_one_run():
    found = lines(byok_keys=[{'name': 'a', 'vault': 'prod', 'not_before': '2026-13-01T00:00:00Z',
                              'expires_on': '2020-01-01T00:00:00Z'}])
    assert sorted(f.split(':')[1].strip() for f in found) == ['byok_keys[0] (a).expires_on', 'byok_keys[0] (a).not_before'], found
    found = lines(byok_keys=[{'name': 'a', 'vault': 'prod', 'state': 'Absent', 'destroy_hsm_key': True}])
    assert len(found) == 1 and '.state:' in found[0], found
    found = lines(byok_vaults=[{'url': 'https://contoso.vault.azure.net'}])
    assert len(found) == 1 and found[0].startswith('hsm1: byok_vaults:'), found
    vaults = {'prod': {'url': 'https://contoso.vault.azure.net/keys', 'type': 'premium'}}
    found = lines(byok_vaults=vaults, byok_keys=[{'name': 'aes', 'vault': 'prod', 'key_type': 'oct', 'key_size': 256}])
    assert len(found) == 2 and any('can only be imported into Azure Managed HSM' in f for f in found), found
    found = lines(byok_keys=[{'name': 'a', 'vault': 'prod', 'label': 'L', 'key_size': 1024},
                             {'name': 'b', 'vault': 'prod', 'label': 'L', 'key_type': 'EC'}])
    assert len(found) == 2 and "'L' is also the label of byok_keys[0]" in found[1], found
    vaults = {'prod': {'url': 'https://contoso.vault.azure.net', 'kek_size': 1024}}
    found = fleet_lines({'hsm1': host(byok_vaults=vaults, byok_keys=[{'name': 'shared', 'vault': 'prod'}]),
                         'hsm2': host(byok_vaults=vaults, byok_keys=[{'name': 'Shared', 'vault': 'prod'}])})
    assert len(found) == 2 and 'is also listed by hsm1' in found[1], found


def test_a_later_generation_of_a_key_another_host_rotates_on_its_token_is_neither_destroyed_nor_taken():
    """hsm1 rotates rot (its vault holds rot.r2); hsm2, on the same token, retires an entry labelled rot.r2 with
    destroy_hsm_key: refused (also under --limit hsm2), as is a present entry labelled rot.r2 there."""
    rotating = {'name': 'rot', 'vault': 'prod', 'label': 'rot', 'key_type': 'EC', 'rotate_after': 'P90D'}
    retired = {'name': 'old', 'vault': 'prod', 'label': 'rot.r2', 'key_type': 'EC', 'state': 'absent', 'destroy_hsm_key': True}
    hosts = {'hsm2': host(byok_token_label='partition', byok_keys=[retired])}
    outside = {'hsm1': host(byok_token_label='partition', byok_keys=[rotating])}
    (line,) = fleet_lines(hosts, outside)
    assert line.startswith("hsm2: byok_keys[0] (old).destroy_hsm_key: is true, but HSM host hsm1 (outside this run's --limit) "
                           "sees the same token (token label partition) and its byok_keys[0] still uses HSM label 'rot.r2'"), line
    hosts['hsm2']['byok_keys'] = [dict(retired, state='present', destroy_hsm_key=False)]
    (line,) = fleet_lines(hosts, outside)
    assert line.startswith("hsm2: byok_keys[0] (old).label: 'rot.r2' is the label of a later generation of the key HSM host "
                           "hsm1 (outside this run's --limit) rotates"), line


@pytest.mark.parametrize('first, second', [({'byok_token_serial': '77'}, {'byok_token_label': 'partition'}), ({}, {})],
                         ids=['serial-and-label', 'neither'])
def test_a_destruction_beside_a_host_whose_token_the_inventory_does_not_tell_apart_is_refused(first, second):
    """One host names the token by serial, the other by label (or neither names it): they may be one token, and an HSM
    key cannot come back; only two different serials, or two different labels, tell tokens apart."""
    retired = {'name': 'old', 'vault': 'prod', 'label': 'shared', 'state': 'absent', 'destroy_hsm_key': True}
    kept = {'name': 'new', 'vault': 'prod', 'label': 'shared'}
    hosts = {'hsm1': host(byok_keys=[retired], **first), 'hsm2': host(byok_keys=[kept], **second)}
    (line,) = fleet_lines(hosts)
    assert ('HSM host hsm2 may see the same token (a token the inventory does not tell apart from its own)') in line, line
    hosts['hsm1']['byok_token_label'], hosts['hsm2']['byok_token_label'] = 'one', 'two'
    assert fleet_lines(hosts) == []


def test_ids_compare_as_hex_in_any_case_and_an_entry_without_id_takes_the_labels_key():
    keys = [{'name': 'a', 'vault': 'prod', 'label': 'L', 'key_type': 'EC', 'id': '8BE1'}]
    hosts = {'hsm1': host(byok_token_label='p', byok_keys=keys),
             'hsm2': host(byok_token_label='p', byok_keys=[dict(keys[0], name='b', id='8be1')]),
             'hsm3': host(byok_token_label='p', byok_keys=[{'name': 'c', 'vault': 'prod', 'label': 'L', 'key_type': 'EC'}])}
    assert fleet_lines(hosts) == []
    hosts['hsm2']['byok_keys'][0]['id'] = '8be2'
    (line,) = fleet_lines(hosts)
    assert line.startswith("hsm2: byok_keys[0] (b).label: 'L' is also the label of byok_keys[0] of HSM host hsm1"), line
