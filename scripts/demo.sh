#!/usr/bin/env bash
# make demo: a transfer in the lab, printing what moved.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

scripts/lab.sh up
eval "$(lab env)"
ansible-playbook -i playbooks/inventory/lab.yml playbooks/transfer.yml "$@"
echo "demo: inventory playbooks/inventory/lab.yml; to run a playbook yourself (transfer.yml, verify.yml):"
echo "      source scripts/env.sh; eval \"\$(lab env)\"; ansible-playbook -i playbooks/inventory/lab.yml playbooks/verify.yml"
