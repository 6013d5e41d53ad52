#!/usr/bin/env bash
# Run the ansible-test integration targets (tests/integration/targets) against a throwaway lab vault.
#   scripts/integration.sh [ansible-test integration args...]      e.g. scripts/integration.sh hsm_keygen
#
# 1. starts a lab Key Vault of its own (state in build/integration/lab, base port BYOK_IT_PORT, default 38443;
#    another free base port when that one is taken), so the developer's lab in .lab/ is left alone;
# 2. writes tests/integration/integration_config.yml (git-ignored, mode 0600) with the lab's coordinates, which
#    ansible-test passes as extra vars to every target (targets do not inherit this shell's environment);
# 3. runs scripts/ansible-test.sh integration (ansible-test integration --local, with the venv's Python);
# 4. stops the lab and removes integration_config.yml on exit.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

PYTHON="$ROOT/.venv/bin/python"
STATE_DIR="$ROOT/build/integration/lab"
CONFIG="$ROOT/tests/integration/integration_config.yml"
BASE_PORT=${BYOK_IT_PORT:-38443}

# (8>&-: the lab server must not inherit the lock below)
it_lab() { local cmd=$1; shift; PYTHONPATH="$ROOT/tests" "$PYTHON" -m lab "$cmd" --state-dir "$STATE_DIR" "$@" 8>&-; }

# Are base..base+4 free on 127.0.0.1? (the lab listens on base for the login endpoint and base+1..4 for the vaults)
ports_free() {
    "$PYTHON" - "$1" <<'PY'
import socket, sys
base = int(sys.argv[1])
socks = []
try:
    for port in range(base, base + 5):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the lab server does: TIME_WAIT is no obstacle
        socks.append(s)
        s.bind(("127.0.0.1", port))
except OSError:
    sys.exit(1)
finally:
    for s in socks:
        s.close()
PY
}

# One run at a time: a second run would stop and delete this run's lab.
mkdir -p "$ROOT/build"
exec 8>"$ROOT/build/integration.lock"
flock -n 8 || { echo "integration.sh: waiting for another run to finish" >&2; flock 8; }

# Set only once the lock is held, so that a waiting run never stops the running one's lab.
# shellcheck disable=SC2317  # invoked by the trap below
cleanup() {
    local rc=$?
    rm -f "$CONFIG"
    if [ -d "$STATE_DIR" ]; then
        it_lab stop >/dev/null 2>&1 || true
    fi
    exit "$rc"
}
trap cleanup EXIT INT TERM

# A lab left over by an interrupted run: stop it, then start from nothing.
if [ -d "$STATE_DIR" ]; then
    it_lab stop >/dev/null 2>&1 || true
    rm -rf "$STATE_DIR"
fi
mkdir -p "$(dirname "$STATE_DIR")"

started=
for _attempt in 1 2 3 4 5; do
    if ports_free "$BASE_PORT"; then
        it_lab init --port "$BASE_PORT" >/dev/null
        if it_lab start; then
            started=1
            break
        fi
        it_lab stop >/dev/null 2>&1 || true
        rm -rf "$STATE_DIR"
    fi
    BASE_PORT=$((20000 + RANDOM % 40000))
done
[ -n "$started" ] || { echo "integration.sh: the lab vault did not start (see $STATE_DIR/server.log)" >&2; exit 1; }

# integration_config.yml from `lab env --json`
umask 077
it_lab env --json | "$PYTHON" -c '
import json, secrets, sys
env = json.load(sys.stdin)
names = {
    "byok_lab_authority": "LAB_AUTHORITY",
    "byok_lab_ca": "LAB_CA",
    "byok_lab_client_id": "AZURE_CLIENT_ID",
    "byok_lab_secret": "AZURE_SECRET",
    "byok_lab_tenant": "AZURE_TENANT",
    "byok_lab_reader_client_id": "LAB_READER_CLIENT_ID",
    "byok_lab_reader_secret": "LAB_READER_SECRET",
    "byok_lab_vault_premium": "LAB_VAULT_PREMIUM",
    "byok_lab_vault_premium2": "LAB_VAULT_PREMIUM2",
    "byok_lab_vault_mhsm": "LAB_VAULT_MHSM",
    "byok_lab_admin_secret": "LAB_ADMIN_SECRET",
}
out = {var: env[key] for var, key in names.items()}
out["byok_lab_run_id"] = secrets.token_hex(3)
print("---")
print("# Written by scripts/integration.sh for one run; removed when it ends.")
for var in sorted(out):
    print("%s: %s" % (var, json.dumps(out[var])))
' > "$CONFIG"
umask 022

echo "integration.sh: lab vault on base port $BASE_PORT (state $STATE_DIR), config $CONFIG"
start=$(date +%s)
set +e
# --local runs the targets with the interpreter of ansible-test, which is the venv's (env.sh puts it first on
# PATH); --python-interpreter makes that explicit, and the targets check ansible_python_interpreter.
"$ROOT/scripts/ansible-test.sh" integration --python-interpreter "$PYTHON" -v "$@"
rc=$?
set -e
echo "integration.sh: ansible-test integration finished with rc=$rc in $(( $(date +%s) - start )) s"
exit "$rc"
