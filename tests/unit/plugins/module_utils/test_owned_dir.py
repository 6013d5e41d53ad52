# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""owned_dir: the one check of the folders the collection writes; bundle: the seal and its digest."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import stat

import pytest

from ansible_collections.byok.keyvault.plugins.module_utils import bundle
from ansible_collections.byok.keyvault.plugins.module_utils import owned_dir


def test_missing_folders_are_created_0700_and_reported(tmp_path):
    created = []
    owned_dir.check_directory(str(tmp_path / 'b' / 'keks'), create=True, own_from=str(tmp_path / 'b'), created=created)
    assert created == [str(tmp_path / 'b'), str(tmp_path / 'b' / 'keks')]
    assert stat.S_IMODE(os.stat(str(tmp_path / 'b' / 'keks')).st_mode) == 0o700


def test_a_symlinked_component_is_refused_and_nothing_is_created_behind_it(tmp_path):
    target = tmp_path / 'target'
    target.mkdir(mode=0o755)
    (tmp_path / 'b').mkdir(mode=0o700)
    (tmp_path / 'b' / 'keks').symlink_to(target, target_is_directory=True)
    with pytest.raises(owned_dir.UnsafeDirectory) as info:
        owned_dir.check_directory(str(tmp_path / 'b' / 'keks' / 'x'), create=True, own_from=str(tmp_path / 'b'))
    assert info.value.component == str(tmp_path / 'b' / 'keks') and info.value.problem == 'a symbolic link'
    assert list(target.iterdir()) == [] and stat.S_IMODE(target.stat().st_mode) == 0o755


def test_an_own_folder_others_may_write_is_refused_and_never_chmodded(tmp_path):
    shared = tmp_path / 'b'
    shared.mkdir()
    os.chmod(str(shared), 0o775)
    with pytest.raises(owned_dir.UnsafeDirectory, match='mode 0775'):
        owned_dir.check_directory(str(shared), create=True)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o775


def test_an_ancestor_others_may_write_is_refused_unless_sticky(tmp_path):
    parent = tmp_path / 'p'
    parent.mkdir()
    os.chmod(str(parent), 0o777)
    with pytest.raises(owned_dir.UnsafeDirectory, match='only a sticky directory'):
        owned_dir.check_directory(str(parent / 'b'), create=True)
    assert not (parent / 'b').exists()
    os.chmod(str(parent), 0o1777)
    owned_dir.check_directory(str(parent / 'b'), create=True)


def test_dot_dot_is_refused():
    with pytest.raises(owned_dir.UnsafeDirectory, match="'..'"):
        owned_dir.check_directory('/tmp/../etc')


def test_a_missing_folder_is_no_problem_for_the_plan(tmp_path):
    assert owned_dir.problem_of(str(tmp_path / 'not' / 'yet')) is None
    (tmp_path / 'l').symlink_to(tmp_path, target_is_directory=True)
    assert owned_dir.problem_of(str(tmp_path / 'l' / 'm')).problem == 'a symbolic link'


@pytest.mark.parametrize('typed', ['3F2A-9C1D-77B0-E5F2-0A4B-6C8D-1E2F-3A4B', '3f2a 9c1d 77b0 e5f2 0a4b 6c8d 1e2f 3a4b',
                                   '3f2a9c1d77b0e5f20a4b6c8d1e2f3a4b' + '0' * 32])
def test_a_digest_is_read_as_typed(typed):
    assert bundle.normalize_digest(typed) == '3f2a9c1d77b0e5f20a4b6c8d1e2f3a4b'


def test_a_digest_needs_all_its_digits():
    assert bundle.normalize_digest('3f2a-9c1d') is None and bundle.normalize_digest(None) is None


def _sealed(tmp_path):
    root = tmp_path / 'bundle'
    folder = root / 'wrapped' / 'hsm1' / 'prod'
    folder.mkdir(parents=True, mode=0o700)
    for p in (root, root / 'wrapped', root / 'wrapped' / 'hsm1', folder):
        os.chmod(str(p), 0o700)
    (folder / 'k1.byok').write_bytes(b'{"blob": 1}')
    records = [{'vault': 'prod', 'name': 'k1', 'identity': 'ab' * 32, 'key_type': 'EC', 'key_size': None, 'curve': 'P-256',
                'kek_kid': 'https://v/keys/k/1', 'byok_sha256': bundle.file_sha256(str(root), 'wrapped/hsm1/prod', 'k1.byok')}]
    sealed = bundle.seal_records(str(root), 'hsm1', records, False)
    entry = {'host': 'hsm1', 'vault': 'prod', 'name': 'k1', 'key_type': 'EC', 'curve': 'P-256', 'key_size': None}
    return root, folder, sealed, entry


def test_seal_then_verify(tmp_path):
    root, folder, sealed, entry = _sealed(tmp_path)
    data = (root / 'wrapped' / 'hsm1' / 'seal.json').read_bytes()
    assert sealed['digest'].replace('-', '') == hashlib.sha256(data).hexdigest()[:32]
    assert sealed['keys'][0]['byok_sha256'] == hashlib.sha256(b'{"blob": 1}').hexdigest()
    assert sealed['lines'][-1].startswith('bundle digest of hsm1: %s' % sealed['digest'])
    results, refusal = bundle.verify(str(root), [entry], {'hsm1': sealed['digest']}, False)
    assert refusal is None and results[0]['ready'] and results[0]['hsm_fingerprint'] == 'ab' * 32


def test_a_replaced_byok_stops_every_import(tmp_path):
    root, folder, sealed, entry = _sealed(tmp_path)
    (folder / 'k1.byok').write_bytes(b'{"blob": 2}')
    results, refusal = bundle.verify(str(root), [entry], {'hsm1': sealed['digest']}, False)
    assert 'replaced after stage 2' in refusal and not results[0]['ready']


def test_a_rewritten_seal_or_no_digest_stops_every_import(tmp_path):
    root, folder, sealed, entry = _sealed(tmp_path)
    results, refusal = bundle.verify(str(root), [entry], {}, False)
    assert 'byok_expected_bundle_digests.hsm1 is not given' in refusal
    seal_path = root / 'wrapped' / 'hsm1' / 'seal.json'
    doc = json.loads(seal_path.read_text())
    doc['keys'][0]['identity'] = 'cd' * 32
    seal_path.write_text(json.dumps(doc, sort_keys=True, separators=(',', ':')) + '\n')
    results, refusal = bundle.verify(str(root), [entry], {'hsm1': sealed['digest']}, False)
    assert 'the bundle was altered after stage 2' in refusal and not results[0]['ready']


def test_a_missing_byok_is_not_done_and_the_others_go_on(tmp_path):
    root, folder, sealed, entry = _sealed(tmp_path)
    (folder / 'k1.byok').unlink()
    results, refusal = bundle.verify(str(root), [entry], {'hsm1': sealed['digest']}, False)
    assert refusal is None and not results[0]['ready'] and results[0]['msg'].startswith('not done: wrapped/hsm1/prod/k1.byok is missing')
