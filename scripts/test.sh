#!/usr/bin/env bash
# The test gates, by group; make test runs every group, make unit/integration/e2e/matrix/sanity one.
#   scripts/test.sh              every group (make test, what .ci/run calls)
#   scripts/test.sh GROUP...     unit, integration, e2e, matrix, sanity
#
#   unit         the unit tests (tests/unit: module_utils, modules, action plugins, the lab), with pytest
#   integration  the ansible-test integration targets against SoftHSM2 and a lab vault of their own
#   e2e          end-to-end tests: playbooks, faults, kills, secrets, against SoftHSM2 tokens and lab vaults
#   matrix       hsm_keygen and byok_wrap on every HSM-host Python; a lab transfer and a no-change re-run on every
#                controller ansible-core
#   sanity       ansible-test sanity, ansible-lint (as a contributor runs it), a galaxy build installed into a fresh
#                path, Galaxy's importer, antsibull-docs lint, the execution environment definition
#
# All or nothing: a gate that fails fails the run (every gate still runs, so one run shows every failure), and a
# test that would skip for a missing tool fails instead. BYOK_TEST_SERIAL=1 runs the groups one after the other.
# shellcheck disable=SC2317  # the group_* functions are called by name ("group_$group")
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

# Tests that would skip when a tool is missing (the CKM_RSA_AES_KEY_WRAP shim's gcc and pkcs11.h, SoftHSM2, openssl,
# ansible-runner) fail instead: the gates prove everything or fail.
export BYOK_REQUIRE_ALL=1

GROUPS_ALL="sanity unit integration matrix e2e"
groups=${*:-$GROUPS_ALL}
target="make ${*:-test}"  # what was run, as the last line says (make unit, make e2e, ... or make test)
for group in $groups; do
    case " $GROUPS_ALL " in
        *" $group "*) ;;
        *) echo "usage: $0 [$(tr ' ' '|' <<<"$GROUPS_ALL")]... ('$group' is not a group)" >&2; exit 2 ;;
    esac
done

for gate in scripts/ansible-test.sh scripts/integration.sh scripts/lint.sh scripts/galaxy-build.sh scripts/galaxy-importer.sh \
    scripts/docs-lint.sh scripts/ee-check.sh scripts/hsm-python-matrix.sh scripts/controller-matrix.sh; do
    [ -x "$gate" ] || { echo "missing $gate" >&2; exit 1; }
done

status=0
failed=()
# run NAME COMMAND...: one gate, its output on stdout; in a lane (below), whose stdout is a log, its verdict also on
# the terminal (fd 3) as soon as it is known
exec 3>&1
in_lane=
verdict() { echo "$1"; [ -z "$in_lane" ] || echo "$1" >&3; }
run() {
    local name=$1
    shift
    echo
    echo "=== $name"
    local start=$SECONDS
    if "$@"; then
        verdict "=== $name: ok ($((SECONDS - start)) s)"
    else
        verdict "=== $name: FAILED ($((SECONDS - start)) s)"
        status=1
        failed+=("$name")
    fi
}

# pytest with the collection importable as ansible_collections.byok.keyvault (build/collections, see bootstrap.sh), and
# no bytecode written into the tree (other gates may read it at the same time)
pytest_run() {
    PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$ROOT/build/collections${PYTHONPATH:+:$PYTHONPATH}" python -m pytest -p no:cacheprovider "$@"
}

# pytest workers: two processes on a machine of two or more cores (BYOK_TEST_WORKERS=N to choose, 0 for one process).
# The tests are independent: each has its own SoftHSM2 tokens, key names and temporary folders, and each worker its own
# lab vault on ports of its own. loadfile keeps the tests of one file in one worker, so a module-scoped lab or token is
# made once.
test_workers() {
    local n=${BYOK_TEST_WORKERS:-}
    if [ -z "$n" ]; then
        n=$(nproc 2>/dev/null || echo 1)
        [ "$n" -gt 2 ] && n=2
        [ "$n" -lt 2 ] && n=0
    fi
    if [ "$n" -gt 0 ]; then
        echo "-n $n --dist loadfile"
    fi
}

group_sanity() {
    run "ansible-test sanity" scripts/ansible-test.sh sanity
    run "ansible-lint (production profile, no path argument)" scripts/lint.sh
    run "galaxy build and install" scripts/galaxy-build.sh
    run "galaxy-importer (the checks of Galaxy and Automation Hub; no error, no warning)" scripts/galaxy-importer.sh
    run "collection docs (antsibull-docs lint-collection-docs; no error, no warning)" scripts/docs-lint.sh
    run "execution environment definition" scripts/ee-check.sh
}

group_unit() {
    # shellcheck disable=SC2046  # the worker options are words or nothing
    run "unit tests (pytest tests/unit)" pytest_run -q tests/unit $(test_workers)
}

group_integration() {
    run "ansible-test integration (SoftHSM2 + lab vault)" scripts/integration.sh
}

group_matrix() {
    run "HSM-host Pythons (3.6 to 3.13: hsm_keygen, byok_wrap on SoftHSM2)" scripts/hsm-python-matrix.sh
    run "controller ansible-core 2.16 to 2.20 (a lab transfer, then a re-run that changes nothing)" scripts/controller-matrix.sh
}

group_e2e() {
    # shellcheck disable=SC2046,SC2086  # the worker options and BYOK_E2E_ARGS are words or nothing
    run "end-to-end tests (playbooks, faults, secrets; SoftHSM2 + lab vault)" \
        env PYTHONDONTWRITEBYTECODE=1 python -m pytest tests/e2e -q -p no:cacheprovider $(test_workers) ${BYOK_E2E_ARGS:-}
}

# Three lanes at once when every group runs (make test) on a machine of two or more cores. The gates of one lane share
# no file, port or lab with those of another, and no test depends on timing, so they may overlap; together they keep
# both cores busy, where one after the other each leaves a core idle most of the time.
#   lane 1: sanity, integration (ansible-test: one copy of the tree, one run at a time)
#   lane 2: unit, matrix
#   lane 3: e2e (its own pytest workers)
# Each lane's output goes to build/test-logs/lane-N.log and is printed when all are done; each gate's verdict is printed
# as soon as it is known.
lane() {  # lane LOG GROUP...: the groups in this (sub)shell, output to LOG; exit status 1 when a gate failed
    local log=$1 group
    shift
    in_lane=1
    {
        for group in "$@"; do
            "group_$group"
        done
        [ "${#failed[@]}" -eq 0 ] || printf '%s\n' "${failed[@]}" > "$log.failed"
    } > "$log" 2>&1
    exit "$status"
}

if [ "$groups" = "$GROUPS_ALL" ] && [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ] && [ -z "${BYOK_TEST_SERIAL:-}" ]; then
    logs="$ROOT/build/test-logs"
    mkdir -p "$logs"
    rm -f "$logs"/lane-*.log "$logs"/lane-*.log.failed
    echo "make test: three lanes at once: sanity, integration | unit, matrix | e2e (logs in build/test-logs, printed at the end)"
    pids=()
    (lane "$logs/lane-1.log" sanity integration) &
    pids+=($!)
    (lane "$logs/lane-2.log" unit matrix) &
    pids+=($!)
    (lane "$logs/lane-3.log" e2e) &
    pids+=($!)
    for pid in "${pids[@]}"; do
        wait "$pid" || status=1
    done
    for log in "$logs"/lane-1.log "$logs"/lane-2.log "$logs"/lane-3.log; do
        cat "$log"
        if [ -f "$log.failed" ]; then
            mapfile -t lane_failed < "$log.failed"
            failed+=("${lane_failed[@]}")
        fi
    done
else
    for group in $groups; do
        "group_$group"
    done
fi

echo
if [ "$status" -ne 0 ]; then
    joined=$(printf '%s; ' "${failed[@]}")
    echo "$target ($groups): FAILED: ${joined%; }"
else
    echo "$target ($groups): all gates passed"
fi
exit "$status"
