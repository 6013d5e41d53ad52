#!/usr/bin/env bash
# ansible-lint, production profile, as a contributor or a certification pipeline runs it: from the collection root,
# with no path argument (it finds every playbook, role, task file, YAML file and plugin documentation itself; what it
# leaves out is listed in .ansible-lint).
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

exec ansible-lint --profile production -c .ansible-lint "$@"
