#!/usr/bin/env bash
# make test: everything. Unit tests, end-to-end tests against SoftHSM2 and the lab vault,
# ansible-test sanity, ansible-lint, a galaxy build installed into a fresh path, Galaxy's importer on the tarball,
# and the documentation as antsibull-docs reads it.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

# Tests that would skip when a tool is missing (the CKM_RSA_AES_KEY_WRAP shim's gcc and pkcs11.h, SoftHSM2, openssl,
# ansible-runner) fail instead: make test proves everything or fails.
export BYOK_REQUIRE_ALL=1

status=0
run() {
    local name=$1
    shift
    echo
    echo "=== $name"
    local start=$SECONDS
    if "$@"; then
        echo "=== $name: ok ($((SECONDS - start)) s)"
    else
        echo "=== $name: FAILED ($((SECONDS - start)) s)"
        status=1
    fi
}

for gate in scripts/ansible-test.sh scripts/integration.sh scripts/lint.sh scripts/galaxy-build.sh scripts/galaxy-importer.sh \
    scripts/docs-lint.sh scripts/ee-check.sh scripts/hsm-python-matrix.sh; do
    [ -x "$gate" ] || { echo "missing $gate" >&2; exit 1; }
done

# ansible-test passes no BYOK_* variable to the unit tests, so the tools those tests need are checked here first
run "tools the tests need (no test may skip)" \
    python -m pytest -q -p no:cacheprovider --collect-only \
    tests/unit/plugins/module_utils/test_pkcs11_combined.py tests/e2e/test_awx_runner.py
run "ansible-test sanity" scripts/ansible-test.sh sanity
run "ansible-lint (production profile)" scripts/lint.sh
run "galaxy build and install" scripts/galaxy-build.sh
run "galaxy-importer (the checks of Galaxy and Automation Hub; no error, no warning)" scripts/galaxy-importer.sh
run "collection docs (antsibull-docs lint-collection-docs; no error, no warning)" scripts/docs-lint.sh
run "execution environment definition" scripts/ee-check.sh
run "ansible-test units" scripts/ansible-test.sh units
run "HSM-host Pythons (3.6 to 3.13: hsm_keygen, byok_wrap on SoftHSM2)" scripts/hsm-python-matrix.sh
run "controller ansible-core 2.16 to 2.20 (a lab transfer, then a re-run that changes nothing)" scripts/controller-matrix.sh
run "ansible-test integration (SoftHSM2 + lab vault)" scripts/integration.sh
run "end-to-end tests (playbooks, faults, secrets; SoftHSM2 + lab vault)" \
    python -m pytest tests/e2e -q -p no:cacheprovider

echo
if [ "$status" -ne 0 ]; then
    echo "make test: FAILED (see the gates above)"
else
    echo "make test: all gates passed"
fi
exit "$status"
