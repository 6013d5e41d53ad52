#!/usr/bin/env bash
# make demo: a transfer in the lab, printing what moved.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

scripts/lab.sh up
eval "$(lab env)"
ansible-playbook -i playbooks/inventory/lab.yml playbooks/transfer.yml "$@"
