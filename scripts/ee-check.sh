#!/usr/bin/env bash
# Check the execution environment definition without a container engine:
#   1. the broken case: on a clone without the staged tarball, ansible-builder create only warns; the build context
#      it makes must carry the guard that stops the image build at once (run here against that context: it must fail)
#   2. scripts/ee-build.sh --context-only: the tarball staged at build/ee/byok-keyvault.tar.gz, the build context
#      (build/ee/context) with the Containerfile, the tarball and a galaxy requirements file that installs it; the
#      guard passes there; the ansible-core the image installs may be 2.20
#   3. ansible-builder introspect --sanitize on the collection installed from that tarball: the Python and system
#      requirements an EE build would install must include what the modules import
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

fail() { echo "ee-check: $*" >&2; exit 1; }
ee="$ROOT/build/ee"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/byok-ee.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# 1. The broken case: no tarball staged (as on a fresh clone).
rm -rf "$ee"
unstaged="$scratch/unstaged"
out=$(ansible-builder create -f execution-environment.yml --context "$unstaged" --output-filename Containerfile -v 1 2>&1)
grep -q "No matches for 'build/ee/byok-keyvault.tar.gz'" <<<"$out" ||
    fail "ansible-builder create without the staged tarball did not warn as expected: $out"
[ ! -e "$unstaged/_build/collections/byok-keyvault.tar.gz" ] || fail "an unstaged context holds a tarball"
guard_line=$(grep -n '^RUN test -s /tmp/byok-context/' "$unstaged/Containerfile" | cut -d: -f1 || true)
install_line=$(grep -n 'ansible-galaxy collection install' "$unstaged/Containerfile" | cut -d: -f1 | head -n 1 || true)
if [ -z "$guard_line" ] || [ -z "$install_line" ] || [ "$guard_line" -ge "$install_line" ]; then
    fail "the Containerfile does not stop before the collection install when the tarball is missing"
fi
check_guard() {  # containerfile build-dir -> status of the guard with /tmp/byok-context mapped to build-dir
    local cmd
    cmd=$(grep -m1 '^RUN test -s /tmp/byok-context/' "$1")
    cmd=${cmd#RUN }
    sh -c "${cmd//\/tmp\/byok-context\//$2/}"
}
if msg=$(check_guard "$unstaged/Containerfile" "$unstaged/_build" 2>&1); then
    fail "the guard lets an image build go on without the collection tarball"
fi
grep -q 'scripts/ee-build.sh' <<<"$msg" || fail "the guard's message does not say how to build: $msg"
echo "ee-check: without the staged tarball the image build stops at once: $msg"

# 2. The build context as scripts/ee-build.sh makes it.
scripts/ee-build.sh --context-only
context="$ee/context"
containerfile="$context/Containerfile"
[ -f "$containerfile" ] || fail "no $containerfile"
[ -f "$context/_build/collections/byok-keyvault.tar.gz" ] || fail "the staged tarball is not in the build context"
check_guard "$containerfile" "$context/_build" || fail "the guard refuses the staged build context"
grep -q 'ansible-galaxy collection install' "$containerfile" || fail "the Containerfile installs no collections"
grep -q 'introspect' "$containerfile" || fail "the Containerfile does not introspect collection requirements"
grep -q '/build/collections/byok-keyvault.tar.gz' "$context/_build/requirements.yml" ||
    fail "the galaxy requirements in the build context do not install the byok.keyvault tarball"
python - "$containerfile" <<'PY' || fail "the ansible-core the image installs does not allow 2.16 and 2.20"
import re, sys
from packaging.requirements import Requirement
refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', open(sys.argv[1]).read(), re.M).group(1)
core = next(Requirement(r) for r in refs.split() if r.startswith("ansible-core"))
sys.exit(0 if all(v in core.specifier for v in ("2.16.0", "2.19.14", "2.20.0")) else 1)
PY
echo "ee-check: ansible-builder create ok ($containerfile)"

# 3. Introspection of the collection as it ships.
collections="$scratch/collections"
mkdir -p "$collections"
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
