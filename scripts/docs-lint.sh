#!/usr/bin/env bash
# The collection's documentation as antsibull-docs (the docsite builder) reads it: every module's, role's and
# filter's documentation, their references to each other, and the docs/docsite files.
#   scripts/docs-lint.sh
# Fails on any error or warning antsibull-docs reports.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

out=$(mktemp "${TMPDIR:-/tmp}/byok-docs-lint.XXXXXX")
trap 'rm -f "$out"' EXIT
rc=0
antsibull-docs lint-collection-docs --plugin-docs . > "$out" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] || [ -s "$out" ]; then
    cat "$out" >&2
    echo "docs-lint: antsibull-docs lint-collection-docs --plugin-docs: exit code $rc, $(grep -c . "$out" || true) finding(s) (above)" >&2
    exit 1
fi
echo "docs-lint: antsibull-docs lint-collection-docs --plugin-docs: no error and no warning"
