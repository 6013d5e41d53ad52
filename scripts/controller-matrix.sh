#!/usr/bin/env bash
# The controller side on every ansible-core the collection claims (2.16 to 2.20): playbooks/transfer.yml in a lab of
# its own (the local Key Vault and two SoftHSM2 tokens, made by playbooks/lab_setup.yml), then a re-run that must
# change nothing.
#
#   scripts/controller-matrix.sh                every version of the matrix
#   scripts/controller-matrix.sh 2.16 2.20      only these
#
# Per version: a cached virtualenv (see venvs.sh) with ansible-core X.Y, the Azure SDK, python-pkcs11 and
# cryptography, on a Python that ansible-core supports as a controller (found with pyenv), and a lab state directory
# of its own on free ports. The modules run on the local connection with that venv's Python.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

MATRIX=${CONTROLLER_MATRIX:-"2.16 2.17 2.18 2.19 2.20"}
[ "$#" -gt 0 ] && MATRIX="$*"
# shellcheck source=scripts/venvs.sh
. "$ROOT/scripts/venvs.sh"
die() { echo "controller-matrix: $*" >&2; exit 1; }

controller_python() {  # a Python each ansible-core supports as a controller
    case "$1" in
        2.16 | 2.17) echo 3.11 ;;
        2.18 | 2.19) echo 3.12 ;;
        2.20) echo 3.12 ;;
        *) return 1 ;;
    esac
}

PYENV=$(command -v pyenv || echo "${PYENV_ROOT:-$HOME/.pyenv}/bin/pyenv")
[ -x "$PYENV" ] || die "pyenv not found; it provides the controller Pythons of the matrix ($MATRIX)"
interpreter() {
    local minor=$1 version
    version=$("$PYENV" versions --bare --skip-aliases 2>/dev/null | grep -E "^${minor//./\\.}\.[0-9]+$" | sort -t. -k3,3n | tail -n 1 || true)
    [ -n "$version" ] && [ -x "$("$PYENV" root)/versions/$version/bin/python$minor" ] || return 1
    echo "$("$PYENV" root)/versions/$version/bin/python$minor"
}

# shellcheck disable=SC2317  # called by name, by ensure_venv
build_core_venv() {  # dir python requirement...: the controller venv of one ansible-core
    local dir=$1 python=$2
    shift 2
    "$python" -m venv "$dir" || return 1
    "$dir/bin/python" -m pip install -q "$@" > "$dir.log" 2>&1 || { cat "$dir.log" >&2; return 1; }
}

status=0
for core in $MATRIX; do
    start=$SECONDS
    minor=$(controller_python "$core") || die "ansible-core $core is not in the matrix"
    py=$(interpreter "$minor") || die "Python $minor (for ansible-core $core) is not installed in pyenv; pyenv install $minor"
    want="ansible-core==$core.* azure-keyvault-keys>=4.11,<5 azure-identity>=1.27,<2 cryptography>=42 python-pkcs11==0.10.1"
    # shellcheck disable=SC2086  # the requirements are words
    venv=$(venv_dir "core$core" "$py" $want)
    # shellcheck disable=SC2086
    ensure_venv "$venv" build_core_venv "$py" $want || die "pip install for ansible-core $core failed"
    work=$(mktemp -d "${TMPDIR:-/tmp}/byok-core$core.XXXXXX")
    lab_dir="$work/lab"
    mkdir -m 700 "$lab_dir"
    port=$(python3 scripts/lab-port.py "$lab_dir" 2>/dev/null)
    run() {  # ansible-playbook of this ansible-core against this lab
        env -u ANSIBLE_CONFIG ANSIBLE_CONFIG="$ROOT/playbooks/ansible.cfg" BYOK_LAB_DIR="$lab_dir" \
            ANSIBLE_COLLECTIONS_PATH="$ROOT/build/collections" ANSIBLE_NOCOLOR=1 TMPDIR="$work" \
            "$venv/bin/ansible-playbook" -i playbooks/inventory/lab.yml -e "ansible_python_interpreter=$venv/bin/python" \
            -e "byok_manifest_dir=$work/manifests" "$@"
    }
    lab() { PYTHONPATH="$ROOT/tests" "$ROOT/.venv/bin/python" -m lab "$1" --state-dir "$lab_dir/vault" "${@:2}"; }
    result="ok"
    if ! { lab init --port "$port" >/dev/null && lab start >/dev/null; }; then
        result="FAILED (the lab did not start)"
    else
        eval "$(lab env)"
        if ! run playbooks/lab_setup.yml > "$work/setup.log" 2>&1; then
            result="FAILED (lab_setup.yml, log $work/setup.log)"
        elif ! run playbooks/transfer.yml > "$work/first.log" 2>&1 || ! grep -q "transferred: 2" "$work/first.log"; then
            result="FAILED (first transfer, log $work/first.log)"
        elif ! run playbooks/transfer.yml > "$work/second.log" 2>&1 \
                || ! grep -q "nothing to transfer: all 2 keys are already in their vaults" "$work/second.log" \
                || grep -E "^(hsm1|hsm2|localhost) +:" "$work/second.log" | grep -vq "changed=0"; then
            result="FAILED (the re-run changed something, log $work/second.log)"
        fi
        lab stop >/dev/null 2>&1 || true
    fi
    version=$("$venv/bin/ansible" --version 2>/dev/null | sed -n 1p)
    echo "=== ansible-core $core: $result ($version, Python $minor; $((SECONDS - start)) s)"
    if [ "$result" = ok ]; then rm -rf "$work"; else status=1; tail -n 40 "$work"/*.log 2>/dev/null | tail -n 60 >&2; fi
done
exit "$status"
