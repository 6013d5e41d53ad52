#!/usr/bin/env bash
# Run ansible-test on a copy of the collection, without Docker.
#   scripts/ansible-test.sh sanity      [extra ansible-test args]   -> ansible-test sanity --venv --python 3.11
#   scripts/ansible-test.sh units       [extra ansible-test args]   -> ansible-test units --venv --python 3.11
#   scripts/ansible-test.sh integration [extra ansible-test args]   -> ansible-test integration --local
# ansible-test must run from .../ansible_collections/<namespace>/<name> and resolves symlinks, so the
# repo is copied (not linked) to build/ansible-test/ansible_collections/byok/keyvault. With --venv it
# bootstraps pip from a download host that is not reachable here; a stand-in get-pip script that uses
# ensurepip and the configured package index is installed in ansible-test's cache instead.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

usage() { echo "usage: $0 sanity|units|integration [ansible-test args...]" >&2; exit 2; }
[ "$#" -ge 1 ] || usage
command=$1
shift

PYTHON_VERSION=${BYOK_TEST_PYTHON:-3.11}
dest="$ROOT/build/ansible-test/ansible_collections/byok/keyvault"

# One run at a time: a second run would re-copy the tree under the first one.
mkdir -p "$ROOT/build"
exec 9>"$ROOT/build/ansible-test.lock"
flock -n 9 || { echo "ansible-test.sh: waiting for another run to finish" >&2; flock 9; }

# 1. The copy. --delete keeps it identical to the tree; tests/output (results) survives in the copy.
#    The whole repository is tested (bench/ too, as a contributor's plain `ansible-test sanity` does); only what
#    is not part of it is left out: virtualenvs, lab state, build output, dist/ (galaxy build output).
mkdir -p "$dest"
if command -v rsync >/dev/null 2>&1; then
    rsync -a --delete \
        --exclude=/.venv --exclude=/.venv-matrix/ --exclude=/.lab/ --exclude=/build/ --exclude=/.git/ \
        --exclude=/tests/output/ --exclude=/bench/out/ --exclude=/dist/ \
        --exclude=__pycache__/ --exclude=.pytest_cache/ \
        "$ROOT/" "$dest/"
else
    # Without rsync: empty the copy except tests/output, then tar the tree over.
    find "$dest" -mindepth 1 -maxdepth 1 ! -name tests ! -name .git -exec rm -rf {} +
    [ ! -d "$dest/tests" ] || find "$dest/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
    tar -C "$ROOT" -cf - \
        --exclude=./.venv --exclude=./.venv-matrix --exclude=./.lab --exclude=./build --exclude=./.git \
        --exclude=./tests/output --exclude=./bench/out --exclude=./dist --exclude=__pycache__ --exclude=.pytest_cache . |
        tar -C "$dest" -xf -
fi

# ansible-test lists content with git when it finds a .git above it: without one of its own the copy would
# be seen through this repo's .git, where build/ is ignored, and every target would be skipped. An own,
# empty repository makes it list the copy's files (untracked, minus the copy's .gitignore).
[ -d "$dest/.git" ] || git -C "$dest" init -q

# 2. The get-pip stand-in, named after the pip version ansible-test pins (get_pip_24_2.py for pip 24.2).
pip_version=$(python - <<'PY'
import re
from pathlib import Path
import ansible_test
src = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
m = re.search(r"default_packages = dict\(\s*pip='([^']+)'", src.read_text())
if not m:
    raise SystemExit("cannot find the pip version ansible-test pins in %s" % src)
print(m.group(1))
PY
)
cache="$HOME/.ansible/test/cache"
get_pip="$cache/get_pip_${pip_version//./_}.py"
mkdir -p "$cache"
stand_in=$(cat <<'PY'
# Stand-in for get-pip.py, installed by byok.keyvault's scripts/ansible-test.sh.
# ansible-test runs "python get-pip.py [pip options] pip==X ... --no-setuptools --no-wheel" in a new venv.
# ensurepip runs in a subprocess (in-process it hides /etc/pip.conf and breaks TLS to the index),
# then pip installs the requested packages from the configured index.
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
)
if [ ! -f "$get_pip" ] || [ "$(cat "$get_pip")" != "$stand_in" ]; then
    printf '%s\n' "$stand_in" > "$get_pip"
fi

# 3. ansible-test from the copy.
cd "$dest"
case "$command" in
sanity|units)
    exec ansible-test "$command" --venv --python "$PYTHON_VERSION" "$@"
    ;;
integration)
    exec ansible-test integration --local "$@"
    ;;
*)
    usage
    ;;
esac
