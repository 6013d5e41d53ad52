# shellcheck shell=bash
# Source me: the virtualenvs of the version matrices (scripts/hsm-python-matrix.sh, scripts/controller-matrix.sh), kept
# in a cache of this user on this machine, so that a fresh clone does not build them again:
#   ${BYOK_VENV_CACHE:-${XDG_CACHE_HOME:-~/.cache}/byok-keyvault/venvs}/NAME-HASH
# HASH is of the interpreter and the requirements, so a venv is only ever used for what it was built with; a build
# holds NAME-HASH.lock, so runs of several clones at once build each venv once and never use one half built.
VENV_CACHE=${BYOK_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/byok-keyvault/venvs}

venv_dir() {  # venv_dir NAME PYTHON REQUIREMENT...: the folder of that venv in the cache
    local name=$1
    shift
    echo "$VENV_CACHE/$name-$(printf '%s\n' "$@" | sha256sum | cut -c1-12)"
}

ensure_venv() {  # ensure_venv DIR BUILD PYTHON REQUIREMENT...: DIR built with "BUILD DIR PYTHON REQUIREMENT..." once
    local dir=$1 build=$2
    shift 2
    mkdir -p "$VENV_CACHE"
    (
        flock 9
        [ -f "$dir/.complete" ] && exit 0
        rm -rf "$dir"
        "$build" "$dir" "$@" || exit 1
        touch "$dir/.complete"
    ) 9>"$dir.lock"
}
