#!/usr/bin/env bash
# make docs: the HTML docsite of byok.keyvault (module and role pages from antsibull-docs, plus the guides of docs/).
#   scripts/docs.sh            -> build/docsite/build/html/index.html
# The Markdown guides in docs/*.md stay the source of truth. They are converted with pandoc (Debian's package) into
# reStructuredText inside a copy of the collection (build/docs-collection/ansible_collections/byok/keyvault), as
# antsibull-docs' "extra docs" (docs/docsite/extra-docs.yml + docs/docsite/rst/*.rst, generated there, never in the
# tree). antsibull-docs reads the collection from that copy; Sphinx builds with intersphinx off, so the build needs
# no network once the packages are installed (bootstrap installs antsibull-docs from requirements-dev.txt).
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"
start=$SECONDS

REPO_URL=$(python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["repository"].rstrip("/"))')
SITE="$ROOT/build/docsite"
COLL_BASE="$ROOT/build/docs-collection"
COLL="$COLL_BASE/ansible_collections/byok/keyvault"

# 1. Tools: pandoc from Debian, the docsite's Python packages into the venv (once).
if ! command -v pandoc >/dev/null 2>&1; then
    echo "docs: installing pandoc"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pandoc >/dev/null
fi
command -v dot >/dev/null 2>&1 || { echo "docs: graphviz (dot) is missing; run make bootstrap" >&2; exit 1; }

# 2. The flow picture, from its source.
dot -Tsvg docs/flow.dot -o docs/flow.svg
dot -Tpng -Gdpi=110 docs/flow.dot -o docs/flow.png

# 3. A copy of the collection with the guides as extra docs.
rm -rf "$COLL_BASE"
mkdir -p "$COLL"
tar -C "$ROOT" -cf - --exclude=./.venv --exclude=./.lab --exclude=./build --exclude=./.git --exclude=./bench \
    --exclude=./tests --exclude=__pycache__ --exclude=.pytest_cache --exclude='*.byok' \
    --exclude=./playbooks/byok-manifests . | tar -C "$COLL" -xf -
rst_dir="$COLL/docs/docsite/rst"
mkdir -p "$rst_dir"

# Guides in reading order; other docs/*.md (written later) are appended alphabetically.
order=(README flow quickstart inventory air-gapped awx azure-permissions security luna nshield generic-pkcs11
       performance troubleshooting lab)
guides=()
for name in "${order[@]}"; do
    [ -f "docs/$name.md" ] && guides+=("$name")
done
for f in docs/*.md; do
    name=$(basename "$f" .md)
    [[ " ${guides[*]} " == *" $name "* ]] || guides+=("$name")
done

# Links between guides become links between the generated pages; links to other files of the repository go to
# the repository; images stay relative and are copied next to the pages.
lua="$COLL_BASE/links.lua"
cat > "$lua" <<'LUA'
local repo = os.getenv("BYOK_DOCS_REPO") .. "/blob/main/"
local function fix(target)
  if target:match("^%a[%w+.-]*:") or target:match("^#") then return target end
  local page, anchor = target:match("^([%w_-]+)%.md(#?.*)$")
  if page then
    if page == "README" then page = "index_guides" end
    return page .. ".html" .. anchor
  end
  local path = target:gsub("^%./", "")
  local up = 0
  while path:match("^%.%./") do path = path:sub(4); up = up + 1 end
  if up == 0 then path = "docs/" .. path end
  path = path:gsub("/$", "")
  if path == "" or path == "docs" then return (repo:gsub("/blob/main/$", "")) end
  return repo .. path
end
function Link(el) el.target = fix(el.target); return el end
-- Sphinx makes the section ids itself (the same as GitHub's for these titles); explicit labels that do not start
-- with ansible_collections.byok.keyvault.docsite. would make antsibull-docs drop the page.
-- reStructuredText cannot skip a heading level, Markdown can ("## Roles" then "#### message"): a heading more than one
-- level below the one before it is raised to the next level.
local last_level = 0
function Header(el)
  el.identifier = ""
  if el.level > last_level + 1 then el.level = last_level + 1 end
  last_level = el.level
  return el
end
-- pandoc 2.17 leaves a word like CKNFAST_* unescaped, which reStructuredText reads as a reference "CKNFAST_".
function Str(el)
  if el.text:find("_[^%w]") or el.text:find("_$") then
    return pandoc.RawInline("rst", (el.text:gsub("([%*_`|\\])", "\\%1")))
  end
end
function CodeBlock(el)
  if #el.classes == 0 then el.classes = {"text"} end
  return el
end
LUA

toc=""
for name in "${guides[@]}"; do
    page=$name
    [ "$name" != README ] || page=index_guides
    {
        printf '.. _ansible_collections.byok.keyvault.docsite.%s:\n\n' "${page//-/_}"
        BYOK_DOCS_REPO=$REPO_URL pandoc --from=gfm --to=rst --wrap=none --lua-filter="$lua" "docs/$name.md"
    } > "$rst_dir/$page.rst"
    toc+="      - $page"$'\n'
done
cat > "$COLL/docs/docsite/extra-docs.yml" <<YAML
---
sections:
  - title: Guides
    toctree:
${toc}
YAML
cat > "$COLL/docs/docsite/links.yml" <<YAML
---
edit_on_github:
  repository: ${REPO_URL#https://github.com/}
  branch: main
  path_prefix: ''
extra_links:
  - description: Guides (Markdown)
    url: ${REPO_URL}/tree/main/docs
communication: {}
YAML

# 4. The docsite skeleton (once), with intersphinx off: no inventory downloads, works offline.
export ANSIBLE_COLLECTIONS_PATH="$COLL_BASE"
if [ ! -f "$SITE/conf.py" ]; then
    mkdir -p "$SITE"
    antsibull-docs sphinx-init --use-current --dest-dir "$SITE" byok.keyvault >/dev/null
fi
python - "$SITE/conf.py" <<'PY'
import re
import sys
path = sys.argv[1]
text = open(path).read()
marker = "# byok.keyvault: offline build"
if marker not in text:
    text += "\n%s: no intersphinx fetches\nintersphinx_mapping = {}\nintersphinx_disabled_reftypes = ['*']\n" % marker
    text += "project = 'byok.keyvault'\ntitle = html_short_title = 'byok.keyvault documentation'\n"
    open(path, "w").write(text)
PY
if ! python -c 'import sphinx, sphinx_ansible_theme, antsibull_docs' 2>/dev/null; then
    echo "docs: installing the docsite requirements into .venv"
    python -m pip install -q -r "$SITE/requirements.txt"
fi

# 5. The collection pages (modules, roles, filters, guides), the pictures, then Sphinx.
cd "$SITE"
mkdir -p rst
chmod og-w rst
antsibull-docs --config-file antsibull-docs.cfg collection --cleanup everything --use-current --dest-dir rst \
    byok.keyvault
docsite_out="rst/collections/byok/keyvault/docsite"
# Every picture of docs/ (flow.svg/png, performance.png, ...), next to the pages that show it.
find "$ROOT/docs" -maxdepth 1 -type f \( -name '*.png' -o -name '*.svg' -o -name '*.jpg' \) -exec cp {} "$docsite_out/" \;
# Labels of docs.ansible.com that the generated pages refer to; with intersphinx off they point out from here.
cat > rst/ansible_refs.rst <<'RST'
:orphan:

Ansible documentation
=====================

.. _common_return_values:

Return values common to all modules
-----------------------------------

https://docs.ansible.com/ansible/latest/reference_appendices/common_return_values.html

.. _action_plugins:

Action plugins
--------------

https://docs.ansible.com/ansible/latest/plugins/action.html

.. _ansible_configuration_settings:

Ansible configuration settings
------------------------------

https://docs.ansible.com/ansible/latest/reference_appendices/config.html
RST
rm -rf build
strict=()
[ "${BYOK_DOCS_STRICT:-0}" = 0 ] || strict=(-W)
sphinx-build -M html rst build -c . "${strict[@]}" --keep-going -q -j auto -w build/warnings.txt
if [ -s build/warnings.txt ]; then
    echo "docs: Sphinx warnings ($(wc -l < build/warnings.txt)), see $SITE/build/warnings.txt:" >&2
    sed "s|$SITE/||" build/warnings.txt >&2
fi
echo "docs: built $SITE/build/html/index.html in $((SECONDS - start)) s"
echo "docs: guides: $SITE/build/html/collections/byok/keyvault/index.html"
