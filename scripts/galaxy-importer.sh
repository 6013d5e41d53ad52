#!/usr/bin/env bash
# galaxy-importer on the collection tarball: the checks Ansible Galaxy and Automation Hub run on every upload
# (role READMEs, ansible-doc of every plugin, ansible-lint, flake8, required tags, changelog, version >= 1.0.0).
#   scripts/galaxy-importer.sh [TARBALL]   (default: a tarball built now with ansible-galaxy collection build)
# Fails on any error or warning the importer reports. ansible-test is off (it needs containers).
# galaxy-importer brings its own ansible-lint and flake8, so it lives in its own virtual environment, never in .venv:
# built once with the pinned version below in the venv cache of this user (scripts/venvs.sh), which a fresh clone
# reuses instead of installing it again.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

GALAXY_IMPORTER_VERSION=0.4.44
# ansible-core as in requirements-dev.txt, so that ansible-doc reads the documentation as the project's tools do
ANSIBLE_CORE_SPEC='ansible-core>=2.19,<2.20'

want="galaxy-importer==$GALAXY_IMPORTER_VERSION $ANSIBLE_CORE_SPEC"
# shellcheck source=scripts/venvs.sh
. "$ROOT/scripts/venvs.sh"
# shellcheck disable=SC2317  # called by name, by ensure_venv
build_galaxy_venv() {  # dir python requirement...
    local dir=$1 python=$2
    shift 2
    echo "galaxy-importer: installing $* into $dir"
    "$python" -m venv "$dir" || return 1
    "$dir/bin/python" -m pip install -q "$@" > "$dir.log" 2>&1 || { cat "$dir.log" >&2; echo "galaxy-importer: pip install failed (log above)" >&2; return 1; }
}
python=$(python3 -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))')  # the interpreter, not a checkout's venv
# shellcheck disable=SC2086  # the requirements are words
venv=$(venv_dir galaxy-importer "$python" $want)
# shellcheck disable=SC2086
ensure_venv "$venv" build_galaxy_venv "$python" $want

tmp=$(mktemp -d "${TMPDIR:-/tmp}/byok-importer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [ $# -ge 1 ]; then
    tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
    [ -f "$tarball" ] || { echo "galaxy-importer: $1 does not exist; build it with scripts/galaxy-build.sh" >&2; exit 1; }
else
    ansible-galaxy collection build --force --output-path "$tmp" . >/dev/null
    tarball=$(ls "$tmp"/*.tar.gz)
fi

# The configuration Galaxy and Automation Hub run with, less ansible-test (containers).
cat > "$tmp/galaxy-importer.cfg" <<'CFG'
[galaxy-importer]
run_ansible_test = False
run_ansible_lint = True
offline_ansible_lint = True
run_ansible_doc = True
run_flake8 = True
check_required_tags = True
check_changelog = True
require_v1_or_greater = True
log_level_main = INFO
CFG

# Only the importer's own tools: its venv first on PATH, no collection path or ansible.cfg of the checkout.
mkdir -p "$tmp/run" "$tmp/ansible-tmp"
log="$tmp/importer.log"
rc=0
(
    cd "$tmp/run"
    unset ANSIBLE_COLLECTIONS_PATH ANSIBLE_CONFIG
    export PATH="$venv/bin:$PATH" GALAXY_IMPORTER_CONFIG="$tmp/galaxy-importer.cfg"
    export GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP="$tmp/ansible-tmp" GALAXY_IMPORTER_TMP_ROOT_DIR="$tmp"
    "$venv/bin/python" -m galaxy_importer.main "$tarball"
) > "$log" 2>&1 || rc=$?

problems=$(grep -E '^(WARNING|ERROR|CRITICAL)' "$log" || true)
if [ "$rc" -ne 0 ] || [ -n "$problems" ] || ! grep -q '^Importer processing completed successfully' "$log"; then
    cat "$log" >&2
    echo "galaxy-importer: FAILED on $(basename "$tarball"): exit code $rc," \
        "$(grep -c '^ERROR' "$log" || true) error(s), $(grep -c '^WARNING' "$log" || true) warning(s) (log above)" >&2
    exit 1
fi
echo "galaxy-importer $GALAXY_IMPORTER_VERSION: $(basename "$tarball") accepted, no error and no warning" \
    "($(grep -c '^Loading' "$log" || true) contents loaded)"
