#!/usr/bin/env bash
# Build the execution environment image from a clone: stage the collection, create the build context, build.
#   scripts/ee-build.sh [-t TAG] [--context-only]
# 1. ansible-galaxy collection build, copied to build/ee/byok-keyvault.tar.gz (where execution-environment.yml takes it
#    from: ansible-builder alone only warns when it is missing and leaves it out of the context)
# 2. ansible-builder create into build/ee/context; fails unless the tarball is in the context
# 3. ansible-builder build with podman or docker (skipped with --context-only)
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

tag=byok-keyvault-ee
context_only=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        -t | --tag) tag=$2; shift 2 ;;
        --context-only) context_only=1; shift ;;
        *) echo "usage: $0 [-t TAG] [--context-only]" >&2; exit 2 ;;
    esac
done

fail() { echo "ee-build: $*" >&2; exit 1; }
ee="$ROOT/build/ee"
context="$ee/context"
rm -rf "$ee"
mkdir -p "$ee/dist"

ansible-galaxy collection build --force --output-path "$ee/dist" . >/dev/null
tarballs=("$ee"/dist/byok-keyvault-*.tar.gz)
[ -f "${tarballs[0]}" ] || fail "ansible-galaxy collection build produced no tarball"
cp "${tarballs[0]}" "$ee/byok-keyvault.tar.gz"

ansible-builder create -f execution-environment.yml --context "$context" --output-filename Containerfile -v 1
[ -s "$context/_build/collections/byok-keyvault.tar.gz" ] ||
    fail "the build context $context lacks the collection tarball (_build/collections/byok-keyvault.tar.gz)"
echo "ee-build: build context ready: $context"
[ "$context_only" -eq 1 ] && exit 0

engine=
for candidate in podman docker; do
    command -v "$candidate" >/dev/null 2>&1 && { engine=$candidate; break; }
done
[ -n "$engine" ] || fail "no container engine (podman or docker) found; the context in $context is ready: build it where one is, with ansible-builder build --context $context -t $tag"
ansible-builder build -f execution-environment.yml --context "$context" --container-runtime "$engine" -t "$tag" -v 2
