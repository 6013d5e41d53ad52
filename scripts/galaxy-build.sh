#!/usr/bin/env bash
# Build the collection tarball and prove the built artifact works on its own:
#   1. ansible-galaxy collection build into build/dist (--force: rebuilds the same version)
#   2. the tarball holds no lab state, venv, build output, test output, .byok blobs or caches
#   3. install it into a fresh, temporary collections path (--force, --offline)
#   4. ansible-doc reads every module's, role's and filter's documentation from that installed copy only
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

dist="$ROOT/build/dist"
mkdir -p "$dist"
version=$(python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
tarball="$dist/byok-keyvault-$version.tar.gz"

ansible-galaxy collection build --force --output-path "$dist" .
[ -f "$tarball" ] || { echo "galaxy-build: $tarball was not built" >&2; exit 1; }

# What must never ship: lab state, venv, build output, test results, wrapped keys (fatal); caches (warned).
contents=$(tar -tzf "$tarball" | sed 's|^\./||')
forbidden='(^|/)(\.lab|\.venv|build|dist|\.git)(/|$)|^tests/output(/|$)|\.byok$|\.tar\.gz$'
if bad=$(grep -E "$forbidden" <<<"$contents"); then
    echo "galaxy-build: $tarball contains files it must not ship:" >&2
    head -20 <<<"$bad" | sed 's/^/  /' >&2
    echo "  (add them to build_ignore in galaxy.yml)" >&2
    exit 1
fi
if cached=$(grep -E '(^|/)(\.pytest_cache|__pycache__|\.mypy_cache|\.ruff_cache)(/|$)|\.py[co]$' <<<"$contents"); then
    echo "galaxy-build: WARNING: the tarball ships caches ($(sort -u <<<"$(sed -E 's|/.*||' <<<"$cached")" | tr '\n' ' '));" \
        "add them to build_ignore in galaxy.yml" >&2
fi
echo "galaxy-build: tarball content ok ($(tar -tzf "$tarball" | grep -vc '/$') files)"

# A fresh collections path that holds only the installed tarball; the repo's own path is not used.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/byok-galaxy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export ANSIBLE_COLLECTIONS_PATH="$tmp"
unset ANSIBLE_CONFIG
ansible-galaxy collection install --force --offline -p "$tmp" "$tarball"
installed="$tmp/ansible_collections/byok/keyvault"
[ -f "$installed/MANIFEST.json" ] || { echo "galaxy-build: not installed at $installed" >&2; exit 1; }

# ansible-doc, one call per plugin type: every module and every role with argument specs must render,
# and must come from the installed copy.
modules=()
for module in "$installed"/plugins/modules/*.py; do
    name=$(basename "$module" .py)
    [ "$name" = "__init__" ] || modules+=("byok.keyvault.$name")
done
[ "${#modules[@]}" -gt 0 ] || { echo "galaxy-build: no modules in the installed collection" >&2; exit 1; }
roles=()
for role in "$installed"/roles/*/; do
    [ ! -f "$role/meta/argument_specs.yml" ] || roles+=("byok.keyvault.$(basename "$role")")
done
ansible-doc -t module "${modules[@]}" >/dev/null
ansible-doc --json -t module "${modules[@]}" | python -c '
import json, sys
docs = json.load(sys.stdin)
for name in sys.argv[2:]:
    doc = (docs.get(name) or {}).get("doc") or {}
    if not doc.get("filename", "").startswith(sys.argv[1]):
        raise SystemExit("galaxy-build: ansible-doc %s: no documentation from the installed copy (%r)" % (name, doc.get("filename")))
    print("galaxy-build: ansible-doc module %s ok (from the installed tarball)" % name)
' "$installed" "${modules[@]}"
if [ "${#roles[@]}" -gt 0 ]; then
    ansible-doc -t role "${roles[@]}" >/dev/null
    echo "galaxy-build: ansible-doc role ${roles[*]} ok"
fi
# Every filter the collection defines must have its documentation (plugins/filter/NAME.yml) in the installed copy.
mapfile -t filters < <(ansible-doc -t filter -l byok.keyvault --json | python -c '
import json, sys
print("\n".join(sorted(json.load(sys.stdin))))')
[ "${#filters[@]}" -gt 0 ] || { echo "galaxy-build: no filters in the installed collection" >&2; exit 1; }
filter_docs=$(ansible-doc --json -t filter "${filters[@]}") || {
    echo "galaxy-build: ansible-doc -t filter failed (above): every filter needs its plugins/filter/NAME.yml" >&2
    exit 1
}
python -c '
import json, sys
docs = json.load(sys.stdin)
for name in sys.argv[2:]:
    doc = (docs.get(name) or {}).get("doc") or {}
    if not doc.get("filename", "").startswith(sys.argv[1]) or not doc.get("description"):
        raise SystemExit("galaxy-build: ansible-doc -t filter %s: no documentation from the installed copy; add plugins/filter/%s.yml"
                         % (name, name.rsplit(".", 1)[-1]))
print("galaxy-build: ansible-doc filter: %d filters documented (from the installed tarball)" % (len(sys.argv) - 2))
' "$installed" "${filters[@]}" <<<"$filter_docs"
echo "galaxy-build: ok: $tarball"
