# shellcheck shell=bash
# Source me: the environment make demo and make test run in (venv, collection path, lab vault).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/build/collections"
export ANSIBLE_CONFIG="$ROOT/playbooks/ansible.cfg"
export BYOK_LAB_DIR="${BYOK_LAB_DIR:-$ROOT/.lab}"
lab() { local cmd=$1; shift; PYTHONPATH="$ROOT/tests" "$ROOT/.venv/bin/python" -m lab "$cmd" --state-dir "$BYOK_LAB_DIR/vault" "$@"; }
