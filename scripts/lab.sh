#!/usr/bin/env bash
# The lab: SoftHSM2 tokens (one per lab HSM host) and the local Key Vault server.
#   scripts/lab.sh up      start the vault server and create the tokens (idempotent)
#   scripts/lab.sh reset   stop the server, forget all tokens and vault keys
#   scripts/lab.sh stop    stop the server
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

case "${1:-up}" in
up)
    mkdir -p "$BYOK_LAB_DIR" && chmod 700 "$BYOK_LAB_DIR"
    port=$(python3 "$ROOT/scripts/lab-port.py" "$BYOK_LAB_DIR")
    lab init --port "$port" >/dev/null
    lab start
    eval "$(lab env)"
    ansible-playbook -i playbooks/inventory/lab.yml playbooks/lab_setup.yml
    ;;
reset)
    lab stop >/dev/null 2>&1 || true
    if [ -d "$BYOK_LAB_DIR" ]; then
        # the chosen port and the audit manifests of earlier runs stay; everything else goes
        find "$BYOK_LAB_DIR" -mindepth 1 -maxdepth 1 ! -name port ! -name manifests -exec rm -rf {} +
    fi
    echo "lab reset: tokens, vault keys and lab credentials removed from $BYOK_LAB_DIR" \
         "(kept: the port it uses and the audit manifests in $BYOK_LAB_DIR/manifests)"
    ;;
stop)
    lab stop
    ;;
*)
    echo "usage: $0 up|reset|stop" >&2
    exit 2
    ;;
esac
