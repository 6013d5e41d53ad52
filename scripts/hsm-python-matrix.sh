#!/usr/bin/env bash
# The HSM-side modules (hsm_keygen, byok_wrap) on the Pythons HSM hosts run, against a fresh SoftHSM2 token each.
#
#   scripts/hsm-python-matrix.sh              every interpreter of the matrix
#   scripts/hsm-python-matrix.sh 3.6 3.10     only these
#
# Per interpreter (found with pyenv): a cached virtualenv (see venvs.sh) with the python-pkcs11 that host
# Python gets (3.6/3.8: 0.7.0, built from source; 3.9: 0.9.4; 3.10+: 0.10.x) and a cryptography that installs there,
# then one EC P-256 keygen and one wrap (two-step, SoftHSM2 2.6) under an RSA-2048 KEK made with openssl, each in check
# mode and for real, with ansible_python_interpreter pointing at that venv, and one one-shot CKM_RSA_AES_KEY_WRAP wrap
# through the test proxy of tests/pkcs11_shim (the path Luna takes, where python-pkcs11 versions differ most). ansible-core 2.19 (the project venv)
# drives targets >= 3.8; Python 3.6 targets need ansible-core 2.16, which gets its own cached controller venv.
# The .byok written on each Python is unwrapped here with the KEK's private key and must hold the HSM's key.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"
cd "$ROOT"

MATRIX=${HSM_PYTHON_MATRIX:-"3.6 3.8 3.9 3.10 3.12 3.13"}
[ "$#" -gt 0 ] && MATRIX="$*"
# shellcheck source=scripts/venvs.sh
. "$ROOT/scripts/venvs.sh"
SOFTHSM_LIB=${SOFTHSM_LIB:-/usr/lib/softhsm/libsofthsm2.so}
HOST_PY="$ROOT/.venv/bin/python"

die() { echo "hsm-python-matrix: $*" >&2; exit 1; }

pkcs11_pin() {  # python-pkcs11 per host Python
    case "$1" in
        3.6 | 3.7 | 3.8) echo "python-pkcs11==0.7.0" ;;
        3.9) echo "python-pkcs11==0.9.4" ;;
        *) echo "python-pkcs11>=0.10,<0.11" ;;
    esac
}

find_pyenv() {
    if command -v pyenv >/dev/null 2>&1; then command -v pyenv; return; fi
    local candidate="${PYENV_ROOT:-$HOME/.pyenv}/bin/pyenv"
    [ -x "$candidate" ] && { echo "$candidate"; return; }
    return 1
}

PYENV=$(find_pyenv) || die "pyenv not found (PATH, \$PYENV_ROOT or ~/.pyenv); install pyenv and the Pythons of the matrix ($MATRIX)"
PYENV_ROOT_DIR=$("$PYENV" root)

interpreter() {  # newest pyenv-installed CPython X.Y.Z for X.Y, as a path
    local minor=$1 version
    version=$("$PYENV" versions --bare --skip-aliases 2>/dev/null | grep -E "^${minor//./\\.}\.[0-9]+$" | sort -t. -k3,3n | tail -n 1 || true)
    [ -n "$version" ] || return 1
    local bin="$PYENV_ROOT_DIR/versions/$version/bin/python$minor"
    [ -x "$bin" ] || return 1
    echo "$bin"
}

# -- check the matrix before building anything: a missing interpreter fails the gate, naming it
missing=()
for minor in $MATRIX; do
    interpreter "$minor" >/dev/null || missing+=("$minor")
done
if [ "${#missing[@]}" -gt 0 ]; then
    die "Python ${missing[*]} not installed in pyenv ($PYENV_ROOT_DIR); install with: pyenv install ${missing[*]} (the HSM-host matrix is $MATRIX)"
fi
for tool in softhsm2-util openssl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found; apt-get install -y softhsm2 openssl"
done
[ -e "$SOFTHSM_LIB" ] || die "$SOFTHSM_LIB not found; apt-get install -y softhsm2 (or set SOFTHSM_LIB)"

# A venv of the cache, built once per interpreter and requirements (see venvs.sh)
# shellcheck disable=SC2317  # called by name, by ensure_venv
build_venv() {  # dir python requirement...
    local dir=$1 python=$2
    shift 2
    echo "--- building $dir ($*)"
    local minor
    minor=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || return 1
    "$python" -m venv "$dir" || return 1
    # the newest pip/setuptools/wheel for that Python (an index without Requires-Python data would offer newer ones)
    local -a pins
    read -r -a pins <<<"$(bootstrap_pins "$minor")"
    "$dir/bin/python" -m pip install -q --disable-pip-version-check -U "${pins[@]}" || return 1
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@" || return 1
}

# shellcheck disable=SC2317  # called by build_venv
bootstrap_pins() {
    case "$1" in
        3.6) echo "pip==21.3.1 setuptools==59.6.0 wheel==0.37.1" ;;
        3.7) echo "pip==24.0 setuptools==68.0.0 wheel==0.42.0" ;;
        3.8) echo "pip==25.0.1 setuptools==75.3.0 wheel==0.45.1" ;;
        *) echo "pip setuptools wheel" ;;
    esac
}

controller_for() {  # ansible bin dir that can drive a target of Python X.Y
    case "$1" in
        3.6 | 3.7)
            local py
            py=$(interpreter 3.11 || interpreter 3.10 || interpreter 3.12) || die "no Python 3.10-3.12 in pyenv for the ansible-core 2.16 controller"
            local dir
            dir=$(venv_dir controller-2.16 "$py" "ansible-core>=2.16,<2.17")
            ensure_venv "$dir" build_venv "$py" "ansible-core>=2.16,<2.17" >&2 || die "cannot build $dir"
            echo "$dir/bin"
            ;;
        *) echo "$ROOT/.venv/bin" ;;
    esac
}

SHIM_LIB=$(bash "$ROOT/tests/pkcs11_shim/build.sh") || die "cannot build the CKM_RSA_AES_KEY_WRAP test proxy (tests/pkcs11_shim/build.sh)"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/kek.key" 2>/dev/null
openssl pkey -in "$WORK/kek.key" -pubout -out "$WORK/kek.pem"
KID="https://matrix.vault.azure.net/keys/matrix-kek/0123456789abcdef0123456789abcdef"

# one ad hoc module run; prints the module's JSON result, fails unless it says changed=$expect_changed
run_module() {  # label bin python check(yes|no) expect_changed module args-json
    local label=$1 bin=$2 python=$3 check=$4 expect=$5 module=$6 args=$7
    local out="$WORK/$label.out"
    local -a extra=()
    [ "$check" = yes ] && extra=(--check)
    if ! (cd "$WORK" && env -u ANSIBLE_CONFIG SOFTHSM2_CONF="$TOKEN_CONF" BYOK_SHIM_TARGET="$SOFTHSM_LIB" \
        ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_NOCOLOR=1 \
        "$bin/ansible" localhost -i localhost, -c local -e "ansible_python_interpreter=$python" \
        -m "byok.keyvault.$module" -a "$args" -o "${extra[@]}") >"$out" 2>&1; then
        echo "FAILED: $label" >&2
        tail -c 3000 "$out" >&2
        return 1
    fi
    "$HOST_PY" - "$out" "$expect" "$label" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
m = re.search(r"^\S+ \| (SUCCESS|CHANGED) => (\{.*\})\s*$", text, re.M)
if not m:
    sys.exit("%s: no result line:\n%s" % (sys.argv[3], text[-3000:]))
result = json.loads(m.group(2))
if str(bool(result.get("changed"))).lower() != sys.argv[2]:
    sys.exit("%s: changed=%s, expected %s:\n%s" % (sys.argv[3], result.get("changed"), sys.argv[2], text[-3000:]))
print(json.dumps(result))
EOF
}

# the module really ran on that Python: the setup module reports the interpreter it ran with
run_python_version() {  # bin python minor
    local out
    out=$(cd "$WORK" && env -u ANSIBLE_CONFIG ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_NOCOLOR=1 "$1/ansible" localhost -i localhost, \
        -c local -e "ansible_python_interpreter=$2" -m ansible.builtin.setup -a "$facts" -o 2>&1) || { echo "$out" >&2; return 1; }
    if ! "$HOST_PY" -c 'import json, re, sys
m = re.search(r"=> (\{.*\})\s*$", sys.argv[1], re.M)
py = json.loads(m.group(1))["ansible_facts"]["ansible_python"] if m else {}
version = "%s.%s" % (py.get("version", {}).get("major"), py.get("version", {}).get("minor"))
sys.exit(0 if (version, py.get("executable")) == (sys.argv[2], sys.argv[3]) else 1)' "$out" "$3" "$2"; then
        echo "FAILED: the modules would not run on Python $3 ($2): $out" >&2
        return 1
    fi
}

status=0
for minor in $MATRIX; do
    started=$SECONDS
    python=$(interpreter "$minor")
    venv=$(venv_dir "py$minor" "$python" "$(pkcs11_pin "$minor")" cryptography)
    if ! ensure_venv "$venv" build_venv "$python" "$(pkcs11_pin "$minor")" cryptography; then
        echo "=== Python $minor: FAILED to build $venv"
        status=1
        continue
    fi
    bin=$(controller_for "$minor")
    target="$venv/bin/python"
    versions=$("$target" -c 'import sys, cryptography; from importlib import import_module
try:
    from importlib.metadata import version
except ImportError:
    import pkg_resources; version = lambda n: pkg_resources.get_distribution(n).version
print("Python %s, python-pkcs11 %s, cryptography %s" % (sys.version.split()[0], version("python-pkcs11"), cryptography.__version__))')
    controller=$("$bin/ansible" --version)
    controller=${controller%%$'\n'*}

    tok="$WORK/token-$minor"
    mkdir -p "$tok/tokens"
    TOKEN_CONF="$tok/softhsm2.conf"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$tok/tokens" >"$TOKEN_CONF"
    pin=$(openssl rand -hex 8)
    SOFTHSM2_CONF="$TOKEN_CONF" softhsm2-util --init-token --free --label "matrix-$minor" --pin "$pin" \
        --so-pin "$(openssl rand -hex 8)" >/dev/null
    p11="\"vendor\": \"softhsm\", \"pkcs11_module\": \"$SOFTHSM_LIB\", \"token_label\": \"matrix-$minor\", \"user_pin\": \"$pin\""
    keygen="{$p11, \"label\": \"mtx-ec\", \"key_type\": \"EC\", \"curve\": \"P-256\"}"
    byok="$WORK/mtx-$minor.byok"
    wrap="{$p11, \"label\": \"mtx-ec\", \"kek_file\": \"$WORK/kek.pem\", \"kek_kid\": \"$KID\", \"dest\": \"$byok\"}"
    oneshot="${wrap/\"$SOFTHSM_LIB\"/\"$SHIM_LIB\"}"
    oneshot="${oneshot/\"dest\": \"$byok\"/\"dest\": \"$byok.oneshot\", \"wrap_method\": \"combined\"}"
    facts="gather_subset=!all filter=ansible_python"
    if run_python_version "$bin" "$target" "$minor" &&
        run_module "keygen-check-$minor" "$bin" "$target" yes true hsm_keygen "$keygen" >/dev/null &&
        run_module "keygen-$minor" "$bin" "$target" no true hsm_keygen "$keygen" >"$WORK/keygen-$minor.json" &&
        run_module "wrap-check-$minor" "$bin" "$target" yes true byok_wrap "$wrap" >/dev/null &&
        { [ ! -e "$byok" ] || { echo "FAILED: byok_wrap in check mode wrote $byok"; false; }; } &&
        run_module "wrap-$minor" "$bin" "$target" no true byok_wrap "$wrap" >/dev/null &&
        run_module "wrap-oneshot-$minor" "$bin" "$target" no true byok_wrap "$oneshot" >"$WORK/oneshot-$minor.json" &&
        grep -q '"wrap_method": "combined"' "$WORK/oneshot-$minor.json" &&
        "$HOST_PY" - "$byok" "$WORK/kek.key" "$WORK/keygen-$minor.json" "$KID" "$byok.oneshot" <<'EOF'; then
import base64, hashlib, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
kek = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), password=None)
keygen = json.load(open(sys.argv[3]))
for path in (sys.argv[1], sys.argv[5]):
    doc = json.load(open(path))
    assert doc["header"] == {"kid": sys.argv[4], "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"}, doc["header"]
    blob = base64.urlsafe_b64decode(doc["ciphertext"] + "=" * (-len(doc["ciphertext"]) % 4))
    n = kek.key_size // 8
    aes = kek.decrypt(blob[:n], padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    plain = aes_key_unwrap_with_padding(aes, blob[n:])
    length = plain[1] if plain[1] < 0x80 else int.from_bytes(plain[2:2 + (plain[1] & 0x7f)], "big")
    header = 2 if plain[1] < 0x80 else 2 + (plain[1] & 0x7f)
    plain = plain[:header + length]  # SoftHSM 2.6 zero-pads the PKCS#8 to a multiple of 8 bytes
    key = serialization.load_der_private_key(plain, password=None)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if hashlib.sha256(spki).hexdigest() != keygen["fingerprint"]:
        sys.exit("%s does not hold the HSM key %s" % (path, keygen["fingerprint"]))
EOF
        echo "=== Python $minor: ok ($versions; $controller; $((SECONDS - started)) s)"
    else
        echo "=== Python $minor: FAILED ($versions; $controller)"
        status=1
    fi
done
exit "$status"
