#!/usr/bin/env bash
# Install what make demo / make test need on a fresh Debian machine: system packages and a venv.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(softhsm2 opensc openssl libssl-dev shellcheck graphviz libp11-kit-dev gcc)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing Python packages into .venv"
    if ! .venv/bin/python -m pip install -q -r requirements-dev.txt > .venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        echo "bootstrap: pip install failed (log above)" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi

# The collection as Ansible looks it up: build/collections/ansible_collections/byok/keyvault -> repo root
# (left alone when it is right; else replaced with a rename, so that a run reading it at the same time never misses it)
link=build/collections/ansible_collections/byok/keyvault
mkdir -p "$(dirname "$link")"
if [ "$(readlink "$link" 2>/dev/null)" != "$(pwd)" ]; then
    ln -sfn "$(pwd)" "$link.new.$$"
    mv -Tf "$link.new.$$" "$link"
fi
