#!/usr/bin/env bash
# Build the test-only PKCS#11 proxy that adds CKM_RSA_AES_KEY_WRAP to SoftHSM (see rsa_aes_shim.c).
# Output: build/pkcs11_shim/librsaaesshim.so (relative to the repository root).
# Needs gcc, pkcs11.h from libp11-kit-dev (p11-kit/pkcs11.h) and libcrypto from libssl-dev; override with CC /
# PKCS11_INCLUDE.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/tests/pkcs11_shim/rsa_aes_shim.c"
out_dir="$root/build/pkcs11_shim"
out="$out_dir/librsaaesshim.so"
CC=${CC:-gcc}
include=${PKCS11_INCLUDE:-}
if [ -z "$include" ]; then
    for dir in /usr/include/p11-kit-1 /usr/local/include/p11-kit-1; do
        [ -f "$dir/p11-kit/pkcs11.h" ] && include=$dir && break
    done
fi
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "build.sh: $CC not found (apt-get install gcc)" >&2
    exit 2
fi
if [ -z "$include" ]; then
    echo "build.sh: p11-kit/pkcs11.h not found (apt-get install libp11-kit-dev, or set PKCS11_INCLUDE)" >&2
    exit 2
fi
mkdir -p "$out_dir"
"$CC" -std=c99 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
    -I"$include" -o "$out.tmp.$$" "$src" -ldl -lcrypto
# a private temporary name, then an atomic rename: parallel test workers may build at the same time
mv -f "$out.tmp.$$" "$out"
echo "$out"
