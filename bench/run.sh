#!/usr/bin/env bash
# make bench: the collection against a plain-script floor (and the az CLI when it works) in the lab.
#   BENCH_SIZES=10,25 make bench     smaller run (default 10,25,50,100)
#   BENCH_AZ=0                       do not try the az CLI
#   BENCH_SCALE=1 make bench         the scale runs instead (250, 500, 1000 EC keys, 20 hosts, the lab's vaults,
#                                    Azure's limits on): bench/out/scale.{json,md}, plot docs/performance.png
# Output (git-ignored): bench/out/{results.json,table.md,bench.png,runs/}; the plot is copied to docs/performance.png.
# Measures only; nothing here fails on a time.
set -euo pipefail
# shellcheck source=scripts/env.sh disable=SC1091
. "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
mkdir -p bench/out

# matplotlib only for the plot, in a venv of its own (the project's .venv and requirements stay untouched)
if ! bench/out/plotvenv/bin/python -c 'import matplotlib' 2>/dev/null; then
    echo "bench: installing matplotlib into bench/out/plotvenv"
    python3 -m venv bench/out/plotvenv
    bench/out/plotvenv/bin/python -m pip install -q matplotlib > bench/out/plotvenv.log 2>&1
fi

# az CLI: the one on PATH, or azure-cli in bench/out/azvenv when it installs within 5 minutes (tried once;
# the reason it is unavailable is kept in bench/out/az-unavailable.txt - delete that file to try again)
# (not for the scale runs, which do not use it)
if [ "${BENCH_AZ:-auto}" != 0 ] && [ "${BENCH_SCALE:-0}" != 1 ] && ! command -v az >/dev/null && [ ! -x bench/out/azvenv/bin/az ] \
        && [ ! -f bench/out/az-unavailable.txt ]; then
    echo "bench: trying pip install azure-cli into bench/out/azvenv (at most 5 minutes)"
    python3 -m venv bench/out/azvenv
    start=$(date +%s)
    if ! timeout 300 bench/out/azvenv/bin/python -m pip install -q azure-cli > bench/out/azvenv.log 2>&1; then
        echo "pip install azure-cli did not finish within 5 minutes ($(( $(date +%s) - start )) s, load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores)" \
            > bench/out/az-unavailable.txt
        rm -rf bench/out/azvenv
    fi
fi

# the bench's own lab vault server is stopped when the bench ends (bench.py starts it again when needed)
trap 'PYTHONPATH="$ROOT/tests" .venv/bin/python -m lab stop --state-dir bench/out/lab/vault >/dev/null 2>&1 || true' EXIT
if [ "${BENCH_SCALE:-0}" = 1 ]; then
    .venv/bin/python bench/bench.py --scale
    bench/out/plotvenv/bin/python bench/plot.py --scale bench/out/scale.json bench/out/bench.png
else
    .venv/bin/python bench/bench.py
    bench/out/plotvenv/bin/python bench/plot.py bench/out/results.json bench/out/bench.png
fi
cp bench/out/bench.png docs/performance.png
echo "plot: bench/out/bench.png (copied to docs/performance.png)"
