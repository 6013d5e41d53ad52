#!/usr/bin/env bash
# ansible-lint, production profile, over the roles and playbooks (configuration in .ansible-lint).
#   scripts/lint.sh [extra ansible-lint args]
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

# ansible-lint resolves byok.keyvault.* through ANSIBLE_COLLECTIONS_PATH (build/collections, see bootstrap.sh).
if [ ! -e build/collections/ansible_collections/byok/keyvault ]; then
    mkdir -p build/collections/ansible_collections/byok
    ln -sfn "$ROOT" build/collections/ansible_collections/byok/keyvault
fi

exec ansible-lint --profile production -c .ansible-lint "$@" roles/ playbooks/
