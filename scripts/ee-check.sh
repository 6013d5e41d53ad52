#!/usr/bin/env bash
# Check the execution environment definition without a container engine:
#   1. build the collection tarball and stage it at build/ee/byok-keyvault.tar.gz (where execution-environment.yml
#      takes it from)
#   2. ansible-builder create: the build context (build/ee/context) must hold the Containerfile, the staged tarball
#      and a galaxy requirements file that installs it
#   3. ansible-builder introspect --sanitize on the collection installed from that tarball: the Python and system
#      requirements an EE build would install must include what the modules import
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

fail() { echo "ee-check: $*" >&2; exit 1; }
ee="$ROOT/build/ee"
context="$ee/context"
rm -rf "$ee"
mkdir -p "$ee/dist"

# 1. The tarball, under the fixed name execution-environment.yml refers to.
ansible-galaxy collection build --force --output-path "$ee/dist" . >/dev/null
tarballs=("$ee"/dist/byok-keyvault-*.tar.gz)
[ -f "${tarballs[0]}" ] || fail "ansible-galaxy collection build produced no tarball"
cp "${tarballs[0]}" "$ee/byok-keyvault.tar.gz"

# 2. The build context.
ansible-builder create -f execution-environment.yml --context "$context" --output-filename Containerfile -v 1
containerfile="$context/Containerfile"
[ -f "$containerfile" ] || fail "no $containerfile"
[ -f "$context/_build/collections/byok-keyvault.tar.gz" ] || fail "the staged tarball is not in the build context"
grep -q 'ansible-galaxy collection install' "$containerfile" || fail "the Containerfile installs no collections"
grep -q 'introspect' "$containerfile" || fail "the Containerfile does not introspect collection requirements"
grep -q '/build/collections/byok-keyvault.tar.gz' "$context/_build/requirements.yml" ||
    fail "the galaxy requirements in the build context do not install the byok.keyvault tarball"
echo "ee-check: ansible-builder create ok ($containerfile)"

# 3. Introspection of the collection as it ships.
collections=$(mktemp -d "${TMPDIR:-/tmp}/byok-ee.XXXXXX")
trap 'rm -rf "$collections"' EXIT
ANSIBLE_COLLECTIONS_PATH="$collections" ansible-galaxy collection install --offline -p "$collections" \
    "$ee/byok-keyvault.tar.gz" >/dev/null
ansible-builder introspect --sanitize "$collections" \
    --write-pip "$ee/requirements.txt" --write-bindep "$ee/bindep.txt" > "$ee/introspect.txt"
cat "$ee/introspect.txt"

missing=()
for req in cryptography python-pkcs11 azure-keyvault-keys azure-identity; do
    grep -Eiq "^${req}([^a-z0-9_.-]|$)" "$ee/requirements.txt" || missing+=("python:$req")
done
for req in softhsm2 opensc; do
    grep -Eq "^${req}([^a-z0-9_.-]|$)" "$ee/bindep.txt" || missing+=("system:$req")
done
grep -q 'byok.keyvault' "$ee/requirements.txt" || missing+=("python requirements not attributed to byok.keyvault")
[ "${#missing[@]}" -eq 0 ] || fail "introspection lacks ${missing[*]}"
echo "ee-check: ok: introspection lists the collection's Python and system requirements"
