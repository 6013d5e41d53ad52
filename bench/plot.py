#!/usr/bin/env python
"""Plot bench/out/results.json: wall seconds against key count (floor, collection, no-op, az); or, with --scale,
bench/out/scale.json: the scale runs against their two floors.

    plot.py RESULTS.json OUT.png      (bench/run.sh runs it with bench/out/plotvenv, which has matplotlib)
    plot.py --scale SCALE.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(results_path, png):
    results = json.load(open(results_path))
    sizes = results["sizes"]
    n = [r["keys"] for r in sizes]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    ax.plot(n, [r["floor"]["wall"] for r in sizes], "o-", label="floor: one Python process, no Ansible")
    ax.plot(n, [r["collection"]["first"]["wall"] for r in sizes], "s-", label="collection: transfer.yml, first run")
    ax.plot(n, [r["collection"]["noop"]["wall"] for r in sizes], "^-", label="collection: no-op re-run")
    ax.plot(n, [r["floor_noop"]["wall"] for r in sizes], "v:", label="floor: no-op re-run")
    az = [(r["keys"], r["az"]["per_key"] * r["keys"]) for r in sizes if isinstance(r.get("az"), dict)]
    if az:
        ax.plot([a[0] for a in az], [a[1] for a in az], "x--", label="az CLI, import only (s/key x keys)")
    else:
        ax.text(0.02, 0.97, "az CLI: n/a (%s)" % results.get("az_reason", "not run"), transform=ax.transAxes,
                fontsize=7, va="top", wrap=True)
    m = results["machine"]
    loads = [m["load1_at_start"], m.get("load1_at_end", m["load1_at_start"])]
    for r in sizes:
        for part in (r["floor"], r["floor_noop"], r["collection"]["first"], r["collection"]["noop"]):
            loads += [part["load1_before"], part["load1_after"]]
    ax.set_xlabel("keys (RSA-3072 and EC P-256 alternating, %d HSM hosts)" % results["config"]["hosts"])
    ax.set_ylabel("wall seconds")
    ax.set_title("byok.keyvault in the lab: %d cores, 1-min load average %.0f-%.0f during the runs"
                 % (m["nproc"], min(loads), max(loads)), fontsize=10)
    ax.set_xticks(n)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig.savefig(png)


def scale(results_path, png):
    results = json.load(open(results_path))
    # the EC runs at the bench's time scale (a run appended at another time scale is in the table, not in the plot)
    runs = [r for r in results["scale"] if not r["rsa_every"] and r.get("time_scale", results["time_scale"]) == results["time_scale"]]
    n = [r["keys"] for r in runs]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    ax.plot(n, [r["first"]["wall"] for r in runs], "s-", label="collection: transfer.yml, first run")
    ax.plot(n, [r["noop"]["wall"] for r in runs], "^-", label="collection: no-op re-run")
    ax.plot(n, [r["floor_hsm"]["wall"] for r in runs], "o:", label="parallel HSM floor (keygen + wrap, 1 process per core)")
    ax.plot(n, [r["floor_azure"]["seconds"] for r in runs], "v:", label="Azure-limit floor (published limits, lab time scale)")
    ax.plot(n, [1.2 * max(r["floor_hsm"]["wall"], r["floor_azure"]["seconds"]) for r in runs], "k--", linewidth=0.8,
            label="target: 1.2 x max(floors)")
    loads = [x for r in runs for x in (r["first"]["load1_before"], r["first"]["load1_after"])]
    ax.set_xlabel("EC P-256 keys (%d HSM hosts, %d vaults, Azure's limits on at time scale %s)" % (
        runs[0]["hosts"], len(runs[0]["vaults"]), results["time_scale"]))
    ax.set_ylabel("wall seconds")
    ax.set_title("byok.keyvault at scale: %d cores, 1-min load average %.1f-%.1f during the first runs"
                 % (results["machine"]["nproc"], min(loads), max(loads)), fontsize=10)
    ax.set_xticks(n)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(png)


if __name__ == "__main__":
    if sys.argv[1] == "--scale":
        scale(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2])
