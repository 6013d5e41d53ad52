# shellcheck shell=bash
# Source me: the environment make demo and make test run in (venv, collection path, lab vault).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/build/collections"
export ANSIBLE_CONFIG="$ROOT/playbooks/ansible.cfg"
# The lab of this checkout, or the BYOK_LAB_DIR you set. A value this file set for another checkout, sourced earlier in
# the same shell (BYOK_LAB_DIR_OF names it), is not taken over: make lab-reset here never resets that checkout's lab.
if [ -z "${BYOK_LAB_DIR:-}" ] || [ "$BYOK_LAB_DIR" = "${BYOK_LAB_DIR_OF:-}/.lab" ]; then
    BYOK_LAB_DIR="$ROOT/.lab"
    BYOK_LAB_DIR_OF="$ROOT"
    export BYOK_LAB_DIR_OF
fi
export BYOK_LAB_DIR
lab() { local cmd=$1; shift; PYTHONPATH="$ROOT/tests" "$ROOT/.venv/bin/python" -m lab "$cmd" --state-dir "$BYOK_LAB_DIR/vault" "$@"; }
