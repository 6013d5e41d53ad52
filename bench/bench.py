#!/usr/bin/env python
"""make bench: the collection against a plain-script floor (and the az CLI), in the lab.

Everything lives in bench/out/ (git-ignored): its own lab vault (state bench/out/lab, base port
BENCH_PORT, default 28443), its own SoftHSM2 tokens per run, generated inventories, logs,
results.json, table.md and bench.png (copied to docs/performance.png).

For each size in BENCH_SIZES (default 10,25,50,100; keys alternate RSA-3072 and EC P-256,
dealt in pairs over BENCH_HOSTS=5 HSM hosts):
  floor        bench/floor.py, one process, python-pkcs11 + Azure SDK, no Ansible (fresh tokens)
  floor no-op  the same script again (finds every key in place)
  collection   ansible-playbook playbooks/transfer.yml (fresh tokens, fresh vault key names)
  no-op        the same playbook again
  az           one `az keyvault key import --byok-file` per key for up to BENCH_AZ_KEYS keys (when az works)
The vault is reset before the floor and before the collection, so both start from an empty vault.
Then host scaling: BENCH_SCALING_SIZE keys (default 25) on each of BENCH_SCALING_HOSTS (default 1,2)
hosts, for the collection (the 5-host point is the main run of that size).

`bench.py --az N` runs only the az part for N keys (the lab's resource manager serves what az cloud
register and az login ask for) and prints its result.

Nothing here asserts a time: it measures and reports.
"""

import json
import os
import platform
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from lab.testing import lab_azure, lab_vaults, write_inventory as write_lab_inventory  # noqa: E402 (the tests' inventory writer)
OUT = os.environ.get("BENCH_OUT") or os.path.join(BENCH, "out")  # results, runs and the lab state
PY = os.path.join(ROOT, ".venv", "bin", "python")
LAB_STATE = os.path.join(OUT, "lab", "vault")
SOFTHSM_LIB = "/usr/lib/softhsm/libsofthsm2.so"

SIZES = [int(x) for x in os.environ.get("BENCH_SIZES", "10,25,50,100").split(",") if x.strip()]
PORT = int(os.environ.get("BENCH_PORT", "28443"))
HOSTS = int(os.environ.get("BENCH_HOSTS", "5"))
SCALING_SIZE = int(os.environ.get("BENCH_SCALING_SIZE", "25"))
SCALING_HOSTS = [int(x) for x in os.environ.get("BENCH_SCALING_HOSTS", "1,2").split(",") if x.strip()]
AZ_KEYS = int(os.environ.get("BENCH_AZ_KEYS", "10"))
AZ_SIZES = [int(x) for x in os.environ.get("BENCH_AZ_SIZES", "10,25,50,100").split(",") if x.strip()]
RUN_ID = time.strftime("%H%M%S")


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def lab(*args, capture=True):
    cmd = [PY, "-m", "lab", args[0], "--state-dir", LAB_STATE] + list(args[1:])
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tests"))
    return subprocess.run(cmd, env=env, check=True, capture_output=capture, text=True).stdout


def loadavg():
    return round(os.getloadavg()[0], 2)


def timed(cmd, env=None, stdout_path=None, cwd=ROOT):
    """Run cmd; (wall seconds, CPU seconds of it and its children, returncode, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = loadavg()
    t = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if stdout_path:
        with open(stdout_path, "w") as handle:
            handle.write(proc.stdout)
            handle.write("\n--- stderr ---\n")
            handle.write(proc.stderr)
    return {"wall": round(wall, 3), "cpu": round(cpu, 3), "rc": proc.returncode, "load1_before": load,
            "load1_after": loadavg()}, proc.stdout, proc.stderr


# -- machine -------------------------------------------------------------------------------------------
def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem_kb = int(line.split()[1])
    ansible_v = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible"), "--version"], capture_output=True,
                               text=True, check=False).stdout.splitlines()[0]
    softhsm = subprocess.run(["softhsm2-util", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kb / 1048576, 1),
            "python": platform.python_version(), "ansible": ansible_v, "softhsm": softhsm,
            "os": platform.platform(), "load1_at_start": loadavg()}


# -- tokens, keys, inventories ---------------------------------------------------------------------------
def make_keys(n, hosts, prefix):
    """n keys, RSA-3072 and EC P-256 alternating, dealt to the hosts in pairs so that every host gets both types
    (dealing one by one would give all RSA keys to one host and all EC keys to the other when there are 2 hosts)."""
    keys = []
    for i in range(n):
        rsa_key = i % 2 == 0
        spec = {"name": "%s-%03d-%s" % (prefix, i, "rsa" if rsa_key else "ec"), "host": "bh%d" % ((i // 2) % hosts + 1),
                "key_type": "RSA" if rsa_key else "EC", "key_size": 3072 if rsa_key else None,
                "curve": None if rsa_key else "P-256",
                "key_ops": ["sign", "verify", "wrapKey", "unwrapKey"] if rsa_key else ["sign", "verify"]}
        spec["label"] = spec["name"]
        keys.append(spec)
    return keys


def softhsm_conf(directory):
    os.makedirs(os.path.join(directory, "tokens"), mode=0o700, exist_ok=True)
    conf = os.path.join(directory, "softhsm2.conf")
    with open(conf, "w") as handle:
        handle.write("directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n"
                     "slots.removable = false\n" % directory)
    return conf


def init_token(conf, label, pin, so_pin):
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
                   env=dict(os.environ, SOFTHSM2_CONF=conf), check=True, capture_output=True)


def hsm_host_vars(run_dir, pin_file):
    """The byok_hsm_hosts group's variables: each host's token and softhsm2.conf by its name, the PIN from a file."""
    return {"byok_token_label": "{{ inventory_hostname }}-%s" % os.path.basename(run_dir),
            "byok_user_pin": "{{ lookup('ansible.builtin.file', '%s') }}" % pin_file,
            "byok_hsm_environment": {"SOFTHSM2_CONF": run_dir + "/hsm/{{ inventory_hostname }}/softhsm2.conf"}}


def keys_by_host(keys, hosts, vault=None):
    """{bhN: [byok_keys items]} (vault: every key into that vault, else each key's own)."""
    host_keys = {"bh%d" % (h + 1): [] for h in range(hosts)}
    for k in keys:
        item = {"name": k["name"], "vault": vault or k["vault"], "key_type": k["key_type"], "key_ops": k["key_ops"]}
        item.update({"curve": k["curve"]} if k["key_type"] == "EC" else {"key_size": k["key_size"]})
        host_keys[k["host"]].append(item)
    return {h: {"byok_keys": ks} for h, ks in host_keys.items()}


def write_inventory(path, run_dir, keys, hosts, env, pin_file, kek_name):
    write_lab_inventory(path, keys_by_host(keys, hosts, vault="premium"), lab_vaults(env, kek_name, kek_size=3072), lab_azure(env),
                        os.path.join(run_dir, "manifests"), hsm_vars=hsm_host_vars(run_dir, pin_file))


# -- runners ---------------------------------------------------------------------------------------------
def lab_reset():
    lab("reset")


def vault_versions(prefix):
    """{name: number of versions} of the premium vault's keys whose name starts with prefix."""
    dump = json.loads(lab("dump"))
    out = {}
    vault = dump.get("vaults", dump).get("premium", {}) if isinstance(dump, dict) else {}
    keys = vault.get("keys", vault)
    if isinstance(keys, dict):
        for name, item in keys.items():
            if name.startswith(prefix):
                versions = item.get("versions") if isinstance(item, dict) else None
                out[name] = len(versions) if isinstance(versions, list) else (versions if isinstance(versions, int) else 1)
    elif isinstance(keys, list):
        for item in keys:
            name = item.get("name", "")
            if name.startswith(prefix):
                v = item.get("versions")
                out[name] = len(v) if isinstance(v, list) else (v or 1)
    return out


def run_floor(run_dir, keys, env, pin, kek_name, hosts, tag, wrap_only_dir=None):
    hsm_dir = os.path.join(run_dir, "floor-hsm")
    spec_path = os.path.join(run_dir, "floor-spec.json")
    if not os.path.exists(spec_path):
        conf = softhsm_conf(hsm_dir)
        so_pin = secrets.token_hex(8)
        for h in range(hosts):
            init_token(conf, "fl%d-%s" % (h + 1, os.path.basename(run_dir)), pin, so_pin)
        spec = {"module": SOFTHSM_LIB, "softhsm2_conf": conf, "pin": pin, "vault_url": env["LAB_VAULT_PREMIUM"],
                "kek_name": kek_name, "kek_size": 3072, "ca": env["LAB_CA"], "authority": env["LAB_AUTHORITY"],
                "tenant": env["AZURE_TENANT"], "client_id": env["AZURE_CLIENT_ID"], "secret_env": "AZURE_SECRET",
                "hosts": [{"token_label": "fl%d-%s" % (h + 1, os.path.basename(run_dir)),
                           "keys": [k for k in keys if k["host"] == "bh%d" % (h + 1)]} for h in range(hosts)]}
        with open(spec_path, "w") as handle:
            json.dump(spec, handle, indent=1)
    if wrap_only_dir:
        spec = json.load(open(spec_path))
        spec["wrap_only_dir"] = wrap_only_dir
        spec_path = os.path.join(run_dir, "floor-spec-wraponly.json")
        json.dump(spec, open(spec_path, "w"), indent=1)
    env2 = dict(os.environ, **env)
    res, out, err = timed([PY, os.path.join(BENCH, "floor.py"), spec_path], env=env2,
                          stdout_path=os.path.join(run_dir, "%s.log" % tag))
    if res["rc"] != 0:
        raise RuntimeError("floor failed (%s): %s" % (tag, err[-2000:]))
    res["detail"] = json.loads(out.strip().splitlines()[-1])
    return res


RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def playbook_env(env, timer):
    """The environment of a bench run of playbooks/transfer.yml: the collection, the timing callback, the lab's pid."""
    env2 = dict(os.environ, **env)
    env2.update({
        "ANSIBLE_CONFIG": os.path.join(ROOT, "playbooks", "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(ROOT, "build", "collections"),
        "ANSIBLE_CALLBACK_PLUGINS": os.path.join(BENCH, "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "bench_timer",
        "BENCH_TIMER_OUT": timer,
        "BENCH_LAB_PID_FILE": os.path.join(LAB_STATE, "server.pid"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": os.path.join(ROOT, ".venv", "bin") + ":" + os.environ.get("PATH", ""),
    })
    return env2


def playbook_outcome(res, out, timer, tag, log_path):
    """res gets changed (HSM hosts), failed and the per-task timings of a run whose output is out; its recap returned."""
    recap = {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "failed": int(m.group(5))}
             for m in RECAP.finditer(out)}
    res["changed"] = sum(v["changed"] for h, v in recap.items() if h != "localhost")
    res["failed"] = sum(v["failed"] for v in recap.values())
    if res["rc"] != 0:
        raise RuntimeError("ansible-playbook failed (%s), see %s" % (tag, log_path))
    try:
        res["tasks"] = json.load(open(timer))
    except (OSError, ValueError):
        res["tasks"] = None
    return recap


def run_collection(run_dir, inv_path, env, tag):
    timer = os.path.join(run_dir, "%s-tasks.json" % tag)
    env2 = playbook_env(env, timer)
    res, out, err = timed([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inv_path,
                           os.path.join(ROOT, "playbooks", "transfer.yml")], env=env2,
                          stdout_path=os.path.join(run_dir, "%s.log" % tag))
    res["recap"] = playbook_outcome(res, out, timer, tag, os.path.join(run_dir, "%s.log" % tag))
    return res


def collection_run(name, n, hosts, env, pin):
    """Fresh tokens and key names; first run and no-op re-run of the playbook."""
    run_dir = os.path.join(OUT, "runs", "%s-%s" % (RUN_ID, name))
    os.makedirs(run_dir, exist_ok=True)
    keys = make_keys(n, hosts, "c%s%s" % (RUN_ID, name.replace("-", "")))
    so_pin = secrets.token_hex(8)
    for h in range(hosts):
        conf = softhsm_conf(os.path.join(run_dir, "hsm", "bh%d" % (h + 1)))
        init_token(conf, "bh%d-%s" % (h + 1, os.path.basename(run_dir)), pin, so_pin)
    inv = os.path.join(run_dir, "inventory.yml")
    write_inventory(inv, run_dir, keys, hosts, env, os.path.join(OUT, "lab", "pin"), "kek-c%s%s" % (RUN_ID, name.replace("-", "")))
    lab_reset()
    log("collection %s: %d keys on %d hosts, first run" % (name, n, hosts))
    first = run_collection(run_dir, inv, env, "collection")
    log("  %.1f s wall (%d changed)" % (first["wall"], first["changed"]))
    noop = run_collection(run_dir, inv, env, "noop")
    log("  no-op %.1f s wall (%d changed)" % (noop["wall"], noop["changed"]))
    versions = vault_versions(keys[0]["name"].rsplit("-", 2)[0])
    return {"first": first, "noop": noop, "vault_keys": len(versions),
            "single_version": all(v == 1 for v in versions.values()), "run_dir": run_dir}


# -- az CLI ---------------------------------------------------------------------------------------------
AZ_DIR = os.path.join(BENCH, "out", "azvenv")  # where bench/run.sh installs azure-cli
AZ = shutil.which("az") or os.path.join(AZ_DIR, "bin", "az")


def az_env(env):
    """The environment of every az call: its own config dir under OUT, the lab CA, no telemetry, no colour."""
    e = dict(os.environ)
    e["AZURE_CONFIG_DIR"] = os.path.join(OUT, "azconfig")
    e["REQUESTS_CA_BUNDLE"] = env["LAB_CA"]
    e["AZURE_CORE_COLLECT_TELEMETRY"] = "false"
    e["AZURE_CORE_ONLY_SHOW_ERRORS"] = "true"
    e["AZURE_CORE_NO_COLOR"] = "true"
    e["AZURE_CORE_SURVEY_MESSAGE"] = "false"
    return e


def az_setup(env):
    """(True, '') when az is logged in to the lab cloud, else (False, reason).

    The lab serves the cloud metadata at its resource manager URL (login endpoint, token audience,
    keyvault DNS suffix .0.0.1:PORT, so --vault-name 127 is the premium vault); az login asks it for
    the tenant's subscriptions (none: a tenant-level account).
    """
    reason_file = os.path.join(BENCH, "out", "az-unavailable.txt")  # written by bench/run.sh
    if os.environ.get("BENCH_AZ", "auto") == "0":
        return False, "BENCH_AZ=0"
    if not os.path.exists(AZ):
        if os.path.exists(reason_file):
            return False, open(reason_file).read().strip()
        return False, "az is not installed (bench/run.sh installs it into bench/out/azvenv when that takes < 5 min)"
    e = az_env(env)
    shutil.rmtree(e["AZURE_CONFIG_DIR"], ignore_errors=True)
    steps = [
        ["config", "set", "core.instance_discovery=false", "core.collect_telemetry=false"],
        ["cloud", "register", "-n", "LabCloud", "--endpoint-resource-manager",
         env.get("LAB_RESOURCE_MANAGER") or env["LAB_AUTHORITY"] + "/"],
        ["cloud", "set", "-n", "LabCloud"],
        ["login", "--service-principal", "-u", env["AZURE_CLIENT_ID"], "-p", env["AZURE_SECRET"],
         "--tenant", env["AZURE_TENANT"], "--allow-no-subscriptions", "-o", "none"],
    ]
    for step in steps:
        proc = subprocess.run([AZ] + step, env=e, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
            return False, "az %s failed: %s" % (" ".join(step[:2]), last[0] if last else "rc %d" % proc.returncode)
    return True, ""


def run_az(run_dir, keys, env, pin, kek_name, hosts):
    """Wrap the keys with the floor (wrap only), then one az keyvault key import per key; seconds of the az part."""
    byok_dir = os.path.join(run_dir, "byok")
    os.makedirs(byok_dir, exist_ok=True)
    run_floor(run_dir, keys, env, pin, kek_name, hosts, "az-wrap", wrap_only_dir=byok_dir)
    e = az_env(env)
    walls = []
    cpus = []
    for k in keys:
        cmd = [AZ, "keyvault", "key", "import", "--vault-name", "127", "--name", k["name"],
               "--byok-file", os.path.join(byok_dir, k["name"] + ".byok"), "--kty", k["key_type"],
               "--ops"] + k["key_ops"] + ["--protection", "hsm", "-o", "none"]
        if k["key_type"] == "EC":
            cmd += ["--curve", k["curve"]]
        res, _out, err = timed(cmd, env=e)
        if res["rc"] != 0:
            raise RuntimeError("az keyvault key import failed: %s" % err.strip()[-1500:])
        walls.append(res["wall"])
        cpus.append(res["cpu"])
    versions = vault_versions(keys[0]["name"].rsplit("-", 2)[0])
    return {"keys": len(keys), "wall": round(sum(walls), 3), "per_key": round(sum(walls) / len(walls), 3),
            "per_key_median": round(statistics.median(walls), 3), "cpu": round(sum(cpus), 3),
            "cpu_per_key": round(sum(cpus) / len(cpus), 3), "vault_keys": len(versions),
            "single_version": len(versions) == len(keys) and all(v == 1 for v in versions.values())}


def az_only(n):
    """bench.py --az N: only the az CLI part, N keys, against the bench lab (started if needed, reset first)."""
    os.makedirs(OUT, exist_ok=True)
    env = ensure_lab()
    ok, reason = az_setup(env)
    if not ok:
        print(json.dumps({"az": reason}))
        return 1
    tag = "a%sx%d" % (RUN_ID, n)
    run_dir = os.path.join(OUT, "runs", "%s-az%d" % (RUN_ID, n))
    os.makedirs(run_dir, exist_ok=True)
    lab_reset()
    log("az: %d keys" % n)
    result = run_az(run_dir, make_keys(n, HOSTS, tag), env, lab_pin(), "kek-" + tag, HOSTS)
    print(json.dumps(result, indent=1))
    return 0 if result["single_version"] else 1


# -- startup costs --------------------------------------------------------------------------------------
def startup_costs(env):
    """Median wall seconds of the fixed costs every module run pays (5 samples each)."""
    probes = {
        "python -c pass": "pass",
        "import ansible.module_utils.basic": "import ansible.module_utils.basic",
        "import azure.identity + azure.keyvault.keys": "import azure.identity, azure.keyvault.keys",
        "import pkcs11 + cryptography": "import pkcs11, cryptography.hazmat.primitives.asymmetric.rsa",
        "azure: token + one GET (incl. imports)": (
            "import os\nfrom azure.identity import ClientSecretCredential\nfrom azure.keyvault.keys import KeyClient\n"
            "from azure.core.exceptions import ResourceNotFoundError\n"
            "c=ClientSecretCredential(os.environ['AZURE_TENANT'],os.environ['AZURE_CLIENT_ID'],os.environ['AZURE_SECRET'],"
            "authority=os.environ['LAB_AUTHORITY'],disable_instance_discovery=True,connection_verify=os.environ['LAB_CA'])\n"
            "k=KeyClient(os.environ['LAB_VAULT_PREMIUM'],c,connection_verify=os.environ['LAB_CA'])\n"
            "try: k.get_key('none')\nexcept ResourceNotFoundError: pass\n"),
    }
    out = {}
    env2 = dict(os.environ, **env)
    for name, code in probes.items():
        walls = []
        for _dummy in range(5):
            res, _o, err = timed([PY, "-c", code], env=env2)
            if res["rc"] != 0:
                raise RuntimeError("probe %s failed: %s" % (name, err[-500:]))
            walls.append(res["wall"])
        out[name] = round(statistics.median(walls), 3)
    return out


# -- report ---------------------------------------------------------------------------------------------
def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def import_seconds(run):
    """Wall seconds of the collection's import task (all keys of the vault in one keyvault_import call), or None."""
    tasks = (run.get("tasks") or {}).get("tasks") or []
    walls = [t["wall"] for t in tasks if t.get("action") == "byok.keyvault.keyvault_import"]
    return sum(walls) if walls else None


def fmt(v, suffix=""):
    return "n/a" if v is None else ("%s%s" % (v, suffix))


def table(results):
    lines = []
    lines.append("| keys | floor s | collection s | collection/floor | no-op s | no-op/first | floor no-op s | "
                 "s/key floor | s/key collection | marginal s/key collection | az s/key | az/collection per key |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    prev = None
    for r in results["sizes"]:
        n = r["keys"]
        fl, co, no = r["floor"]["wall"], r["collection"]["first"]["wall"], r["collection"]["noop"]["wall"]
        az = r.get("az")
        az_pk = az["per_key"] if isinstance(az, dict) else None
        marginal = "%.2f" % ((co - prev[1]) / (n - prev[0])) if prev else "-"
        prev = (n, co)
        lines.append("| %d | %.1f | %.1f | %.2f | %.1f | %.2f | %.1f | %.2f | %.2f | %s | %s | %s |" % (
            n, fl, co, co / fl, no, no / co, r["floor_noop"]["wall"], fl / n, co / n, marginal,
            fmt(az_pk), fmt(ratio(az_pk, co / n)) if az_pk else "n/a"))
    if not any(isinstance(r.get("az"), dict) for r in results["sizes"]):
        lines.append("")
        lines.append("az CLI: n/a: %s" % results.get("az_reason"))
    else:
        lines.append("")
        lines.append("Import part only (az: one `az keyvault key import` per key; collection: its keyvault_import task, all keys "
                     "of the vault in one call):")
        lines.append("")
        lines.append("| keys | az keys | az s/key | az CPU s/key | collection import s/key | az/collection import |")
        lines.append("|---:|---:|---:|---:|---:|---:|")
        for r in results["sizes"]:
            az = r.get("az")
            imp = import_seconds(r["collection"]["first"])
            if isinstance(az, dict) and imp:
                lines.append("| %d | %d | %.2f | %.2f | %.3f | %.1f |" % (
                    r["keys"], az["keys"], az["per_key"], az.get("cpu_per_key", 0), imp / r["keys"], az["per_key"] / (imp / r["keys"])))
    lines.append("")
    lines.append("CPU seconds (user+sys of the process and all its children; the lab vault server not included):")
    lines.append("")
    lines.append("| keys | floor CPU s | collection CPU s | collection/floor CPU | no-op CPU s | load avg (1 min) during collection |")
    lines.append("|---:|---:|---:|---:|---:|---:|")
    for r in results["sizes"]:
        fc, cc, nc = r["floor"]["cpu"], r["collection"]["first"]["cpu"], r["collection"]["noop"]["cpu"]
        lines.append("| %d | %.1f | %.1f | %.2f | %.1f | %.1f-%.1f |" % (
            r["keys"], fc, cc, cc / fc, nc, r["collection"]["first"]["load1_before"], r["collection"]["first"]["load1_after"]))
    lines.append("")
    lines.append("Host scaling, collection, %d keys (first run / no-op; CPU = user+sys of all processes):" % SCALING_SIZE)
    lines.append("")
    lines.append("| HSM hosts | first s | first CPU s | no-op s | no-op CPU s | s/key | load avg during first run |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|")
    for h, r in sorted(results["scaling"].items(), key=lambda kv: int(kv[0])):
        lines.append("| %s | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f-%.1f |" % (
            h, r["first"]["wall"], r["first"]["cpu"], r["noop"]["wall"], r["noop"]["cpu"], r["first"]["wall"] / SCALING_SIZE,
            r["first"]["load1_before"], r["first"]["load1_after"]))
    if results.get("experiments"):
        lines.append("")
        lines.append("What-if runs (collection, same workload, one setting changed):")
        lines.append("")
        lines.append("| run | keys | first s | first CPU s | no-op s | no-op CPU s |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for name, x in sorted(results["experiments"].items()):
            r = x["run"]
            lines.append("| %s %s | %d | %.1f | %.1f | %.1f | %.1f |" % (
                name, x["settings"] or "", x["keys"], r["first"]["wall"], r["first"]["cpu"], r["noop"]["wall"], r["noop"]["cpu"]))
    lines.append("")
    lines.append("Targets:")
    for t in targets(results):
        lines.append("- %s" % t)
    return "\n".join(lines)


def targets(results):
    out = []
    by = {r["keys"]: r for r in results["sizes"]}
    n = 50 if 50 in by else max(by)
    r = by[n]
    fl, co, no = r["floor"]["wall"], r["collection"]["first"]["wall"], r["collection"]["noop"]["wall"]
    out.append("%d-key transfer <= 2x floor: %.2fx wall -> %s (CPU seconds: %.2fx)" % (
        n, co / fl, "met" if co / fl <= 2 else "MISSED", r["collection"]["first"]["cpu"] / r["floor"]["cpu"]))
    out.append("no-op re-run of %d keys <= 10 s: %.1f s -> %s" % (n, no, "met" if no <= 10 else "MISSED"))
    out.append("no-op re-run <= 0.2x first run: %.2fx -> %s" % (no / co, "met" if no / co <= 0.2 else "MISSED"))
    for size in sorted(by):
        fixed = by[size]["collection"]["noop"]["wall"] / by[size]["floor_noop"]["wall"]
        out.append("no-op re-run of %d keys within 3x the floor's no-op: %.2fx (%.1f s against %.1f s) -> %s" % (
            size, fixed, by[size]["collection"]["noop"]["wall"], by[size]["floor_noop"]["wall"], "met" if fixed <= 3 else "MISSED"))
    azs = [x for x in results["sizes"] if isinstance(x.get("az"), dict)]
    if azs:
        worst = min(x["az"]["per_key"] / (x["collection"]["first"]["wall"] / x["keys"]) for x in azs)
        out.append("per key >= 10x faster than az CLI, whole transfer (keygen+wrap+import) against az import only: %.1fx "
                   "(worst measured size) -> %s" % (worst, "met" if worst >= 10 else "MISSED"))
        parts = [x["az"]["per_key"] / (import_seconds(x["collection"]["first"]) / x["keys"])
                 for x in azs if import_seconds(x["collection"]["first"])]
        if parts:
            out.append("per key >= 10x faster than az CLI, import part against import part: %.1fx (worst measured size) -> %s"
                       % (min(parts), "met" if min(parts) >= 10 else "MISSED"))
    else:
        out.append("per key >= 10x faster than az CLI: n/a (%s)" % results.get("az_reason"))
    sizes = sorted(by)
    if len(sizes) >= 2:
        lo, hi = by[sizes[0]], by[sizes[-1]]
        pk_lo = lo["collection"]["first"]["wall"] / lo["keys"]
        pk_hi = hi["collection"]["first"]["wall"] / hi["keys"]
        # linear growth: the per-key time at the largest size does not exceed the smallest size's
        out.append("linear growth (s/key at %d keys <= s/key at %d keys): %.3f vs %.3f -> %s"
                   % (sizes[-1], sizes[0], pk_hi, pk_lo, "met" if pk_hi <= pk_lo * 1.1 else "MISSED"))
    return out


def ensure_lab():
    """The bench's own lab vault (state bench/out/lab/vault, base port PORT), started if needed; its env."""
    os.makedirs(os.path.dirname(LAB_STATE), mode=0o700, exist_ok=True)
    lab("init", "--port", str(PORT))
    if subprocess.run([PY, "-m", "lab", "status", "--state-dir", LAB_STATE],
                      env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tests")), capture_output=True,
                      check=False).returncode != 0:
        lab("start")
    return json.loads(lab("env", "--json"))


def lab_pin():
    """The user PIN of the bench's SoftHSM2 tokens (OUT/lab/pin, created once)."""
    pin_file = os.path.join(OUT, "lab", "pin")
    if not os.path.exists(pin_file):
        fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, secrets.token_hex(10).encode())
        os.close(fd)
    return open(pin_file).read().strip()


# -- main -----------------------------------------------------------------------------------------------
def main():
    os.makedirs(OUT, exist_ok=True)
    results = {"run_id": RUN_ID, "machine": machine(), "config": {"sizes": SIZES, "hosts": HOSTS, "port": PORT},
               "sizes": [], "scaling": {}}
    log("machine: %s" % results["machine"])
    env = ensure_lab()
    pin = lab_pin()

    log("start-up costs")
    results["startup"] = startup_costs(env)
    log("  %s" % results["startup"])

    az_ok, az_reason = az_setup(env)
    results["az_reason"] = az_reason
    log("az CLI: %s" % ("logged in to the lab cloud" if az_ok else "n/a: " + az_reason))

    t_all = time.monotonic()
    for n in SIZES:
        run_dir = os.path.join(OUT, "runs", "%s-n%d" % (RUN_ID, n))
        os.makedirs(run_dir, exist_ok=True)
        fkeys = make_keys(n, HOSTS, "f%sn%d" % (RUN_ID, n))
        lab_reset()
        log("floor: %d keys on %d tokens" % (n, HOSTS))
        floor = run_floor(run_dir, fkeys, env, pin, "kek-f%sn%d" % (RUN_ID, n), HOSTS, "floor")
        log("  %.1f s wall, %s" % (floor["wall"], floor["detail"]))
        floor_noop = run_floor(run_dir, fkeys, env, pin, "kek-f%sn%d" % (RUN_ID, n), HOSTS, "floor-noop")
        log("  no-op %.1f s wall" % floor_noop["wall"])
        coll = collection_run("n%d" % n, n, HOSTS, env, pin)
        entry = {"keys": n, "floor": floor, "floor_noop": floor_noop, "collection": coll}
        if az_ok and n in AZ_SIZES:
            az_dir = os.path.join(OUT, "runs", "%s-az%d" % (RUN_ID, n))
            os.makedirs(az_dir, exist_ok=True)
            akeys = make_keys(min(n, AZ_KEYS), HOSTS, "a%sn%d" % (RUN_ID, n))
            lab_reset()
            log("az: %d keys" % len(akeys))
            try:
                entry["az"] = run_az(az_dir, akeys, env, pin, "kek-a%sn%d" % (RUN_ID, n), HOSTS)
                log("  %s" % entry["az"])
            except RuntimeError as exc:
                entry["az"] = str(exc)[:300]
                log("  az failed: %s" % exc)
        elif not az_ok:
            entry["az"] = az_reason
        results["sizes"].append(entry)
        if n == SCALING_SIZE:  # host scaling right after its size, so a cut-short run still has it
            results["scaling"][str(HOSTS)] = coll
            for h in SCALING_HOSTS:
                results["scaling"][str(h)] = collection_run("s%dh%d" % (SCALING_SIZE, h), SCALING_SIZE, h, env, pin)
        results["machine"]["load1_at_end"] = loadavg()
        results["bench_seconds"] = round(time.monotonic() - t_all, 1)
        json.dump(results, open(os.path.join(OUT, "results.json"), "w"), indent=1)
    return report(results)


def report(results):
    text = table(results)
    with open(os.path.join(OUT, "table.md"), "w") as handle:
        handle.write(text + "\n")
    print(text)
    print("\nresults: %s" % os.path.join(OUT, "results.json"))
    return 0


def experiment(name, n):
    """A what-if the main run does not do: n keys on HOSTS hosts (first run + no-op) with a changed setting.

    pipelining  ANSIBLE_PIPELINING=True (no AnsiballZ temp files per module run)
    forks2      ANSIBLE_FORKS=2 (no more worker processes than cores)
    Appends to results.json["experiments"]; `bench.py --report` shows them.
    """
    settings = {"pipelining": {"ANSIBLE_PIPELINING": "True"}, "forks2": {"ANSIBLE_FORKS": "2"},
                "baseline": {}}[name]
    results = json.load(open(os.path.join(OUT, "results.json")))
    env = ensure_lab()
    pin = open(os.path.join(OUT, "lab", "pin")).read().strip()
    os.environ.update(settings)
    run = collection_run("x%s%d" % (name, n), n, HOSTS, env, pin)
    results.setdefault("experiments", {})["%s-%d" % (name, n)] = {
        "settings": settings, "keys": n, "hosts": HOSTS, "run": run, "load1": loadavg()}
    json.dump(results, open(os.path.join(OUT, "results.json"), "w"), indent=1)
    print("%s, %d keys: first %.1f s (CPU %.1f s), no-op %.1f s (CPU %.1f s)" % (
        name, n, run["first"]["wall"], run["first"]["cpu"], run["noop"]["wall"], run["noop"]["cpu"]))
    return 0


# -- scale: hundreds of keys, many hosts, several vaults, Azure's limits on ------------------------------------
SCALE_SIZES = [int(x) for x in os.environ.get("BENCH_SCALE_SIZES", "250,500,1000").split(",") if x.strip()]
SCALE_HOSTS = int(os.environ.get("BENCH_SCALE_HOSTS", "20"))
#: the lab's vaults: three Key Vault Premium vaults and a Managed HSM
SCALE_VAULTS = [v for v in os.environ.get("BENCH_SCALE_VAULTS", "premium,premium2,premium3,mhsm").split(",") if v]
SCALE_RSA_MIX = int(os.environ.get("BENCH_SCALE_RSA_MIX", "100"))
TIME_SCALE = float(os.environ.get("BENCH_TIME_SCALE", "0.1"))
#: Azure's published limits per 10 s window, as the lab models them (docs/lab.md): CREATE (a BYOK import is one) and
#: other transactions on a key; a Key Vault's subscription allows five times the per-vault limit over all its vaults
LIMIT_CREATE = {"premium": 10, "managed_hsm": 10}
LIMIT_OTHER = {("premium", "EC"): 2000, ("premium", "RSA"): 500, ("managed_hsm", "EC"): 11000, ("managed_hsm", "RSA"): 11000}
SUBSCRIPTION_FACTOR = 5
KEK_SIZE = 3072

RUSAGE_WRAPPER = ("import json, resource, subprocess, sys\n"
                  "rc = subprocess.call(sys.argv[1:], stdout=open(sys.argv[0] + '.out', 'w'), stderr=subprocess.STDOUT)\n"
                  "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
                  "print(json.dumps({'rc': rc, 'utime': r.ru_utime, 'stime': r.ru_stime, 'maxrss_kib': r.ru_maxrss}))\n")


def vault_kind(name):
    return "managed_hsm" if name.startswith("mhsm") else "premium"


def scale_keys(n, hosts, vaults, prefix, rsa_every=0):
    """n keys dealt round-robin over hosts and vaults; EC P-256, or every rsa_every-th one RSA-3072."""
    keys = []
    for i in range(n):
        rsa_key = bool(rsa_every) and i % rsa_every == 0
        keys.append({"name": "%s-%04d" % (prefix, i), "label": "%s-%04d" % (prefix, i), "host": "bh%d" % (i % hosts + 1),
                     "vault": vaults[(i // hosts) % len(vaults)], "key_type": "RSA" if rsa_key else "EC",
                     "key_size": 3072 if rsa_key else None, "curve": None if rsa_key else "P-256",
                     "key_ops": ["sign", "verify"]})
    return keys


def write_scale_inventory(path, run_dir, keys, hosts, env, pin_file, kek_name):
    vaults = lab_vaults(env, kek_name, kek_size=KEK_SIZE, names=sorted({k["vault"] for k in keys}))
    write_lab_inventory(path, keys_by_host(keys, hosts), vaults, lab_azure(env, pacing_window=10.0 * TIME_SCALE),
                        os.path.join(run_dir, "manifests"), hsm_vars=hsm_host_vars(run_dir, pin_file))


def lab_settings(*args):
    return json.loads(lab("settings", *args))


def rusage_run(cmd, env, log_path):
    """Run cmd under a wrapper process: wall, CPU seconds of everything it started, peak RSS of its largest process."""
    wrapper = log_path + ".wrap"
    with open(wrapper, "w") as handle:
        handle.write(RUSAGE_WRAPPER)
    load = loadavg()
    started = time.monotonic()
    proc = subprocess.run([PY, wrapper] + cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    os.replace(wrapper + ".out", log_path)
    os.unlink(wrapper)
    usage = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall": round(wall, 3), "cpu": round(usage["utime"] + usage["stime"], 3), "rc": usage["rc"],
            "maxrss_mib": round(usage["maxrss_kib"] / 1024.0, 1), "load1_before": load, "load1_after": loadavg()}


def run_scale_collection(run_dir, inv_path, env, tag):
    timer = os.path.join(run_dir, "%s-tasks.json" % tag)
    env2 = playbook_env(env, timer)
    lab_settings("--limits", "on", "--time-scale", str(TIME_SCALE))  # the 429 counts start from zero
    log_path = os.path.join(run_dir, "%s.log" % tag)
    command = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inv_path, os.path.join(ROOT, "playbooks", "transfer.yml")]
    if os.environ.get("BENCH_PROFILE") == "1":  # the controller's main process under cProfile (workers are not profiled)
        command = [PY, "-m", "cProfile", "-o", os.path.join(run_dir, "%s.prof" % tag)] + command
    res = rusage_run(command, env2, log_path)
    served = lab_settings()["limits"]
    res["throttled"] = sum(served.get("throttled", {}).values())
    res["throttled_by_vault"] = served.get("throttled", {})
    # the requests the vaults served (every request the limits counted; a 429 is not counted, as Azure does not)
    res["requests"] = sum(served.get("admitted", {}).values())
    out = open(log_path).read()
    playbook_outcome(res, out, timer, tag, log_path)
    return res


def hsm_floor(run_dir, keys, hosts, pin):
    """bench/hsm_floor.py over fresh tokens (one per host, all in one softhsm2.conf), one process per core."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys
    procs = os.cpu_count() or 1
    # one token directory per process: SoftHSM2 re-reads its token directory on every slot listing, and a token that
    # another process is writing can make that listing fail (CKR_GENERAL_ERROR)
    confs = [softhsm_conf(os.path.join(run_dir, "hsm-floor", "p%d" % p)) for p in range(procs)]
    so_pin = secrets.token_hex(8)
    tokens = []
    for h in range(hosts):
        label = "hf%d-%s" % (h + 1, os.path.basename(run_dir))
        init_token(confs[h % procs], label, pin, so_pin)
        tokens.append({"token_label": label, "softhsm2_conf": confs[h % procs],
                       "keys": [k for k in keys if k["host"] == "bh%d" % (h + 1)]})
    kek = rsa_keys.generate_private_key(65537, KEK_SIZE).public_key()
    spec = {"module": SOFTHSM_LIB, "pin": pin, "processes": procs, "tokens": tokens,
            "kek_pem": kek.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()}
    spec_path = os.path.join(run_dir, "hsm-floor.json")
    with open(spec_path, "w") as handle:
        json.dump(spec, handle)
    res, out, err = timed([PY, os.path.join(BENCH, "hsm_floor.py"), spec_path], env=dict(os.environ),
                          stdout_path=os.path.join(run_dir, "hsm-floor.log"))
    if res["rc"] != 0:
        raise RuntimeError("hsm floor failed: %s" % err[-2000:])
    res["detail"] = json.loads(out.strip().splitlines()[-1])
    if res["detail"]["keys"] != len(keys):
        raise RuntimeError("hsm floor wrapped %d keys of %d" % (res["detail"]["keys"], len(keys)))
    return res


def azure_floor(keys, time_scale):
    """The least time Azure's published limits allow for the first run: per vault, its imports plus the KEK's create in
    the CREATE bucket (10 per window; the first window's 10 at once, so C creates end (ceil(C/10) - 1) windows later), one
    read per key in the other bucket, and the subscription's CREATE ceiling (5 x 10 per window) over the Key Vaults.
    T = W * max(max_v(ceil(C_v / Lc_v) - 1), max_v(ceil(R_v / Lo_v) - 1), ceil(sum_premium C_v / (5 * Lc)) - 1), W = 10 s x time scale."""
    window = 10.0 * time_scale
    per_vault = {}
    for k in keys:
        v = per_vault.setdefault(k["vault"], {"creates": 1, "reads": 0, "other_limit": None})
        v["creates"] += 1
        v["reads"] += 1
        limit = LIMIT_OTHER[(vault_kind(k["vault"]), k["key_type"])]
        v["other_limit"] = limit if v["other_limit"] is None else min(v["other_limit"], limit)
    windows = {}
    for name, v in per_vault.items():
        kind = vault_kind(name)
        windows[name] = max(-(-v["creates"] // LIMIT_CREATE[kind]) - 1, -(-v["reads"] // v["other_limit"]) - 1)
    premium_creates = sum(v["creates"] for n, v in per_vault.items() if vault_kind(n) == "premium")
    sub = -(-premium_creates // (SUBSCRIPTION_FACTOR * LIMIT_CREATE["premium"])) - 1 if premium_creates else 0
    worst = max(list(windows.values()) + [sub])
    return {"seconds": round(worst * window, 3), "window": window, "windows_by_vault": windows, "subscription_windows": sub,
            "counts": {n: {"creates": v["creates"], "reads": v["reads"]} for n, v in per_vault.items()}}


def scale_size(n, env, pin, rsa_every=0):
    name = "scale%d%s" % (n, "rsa" if rsa_every else "")
    run_dir = os.path.join(OUT, "runs", "%s-%s" % (RUN_ID, name))
    os.makedirs(run_dir, exist_ok=True)
    prefix = "s%s%d%s" % (RUN_ID, n, "r" if rsa_every else "")
    keys = scale_keys(n, SCALE_HOSTS, SCALE_VAULTS, prefix, rsa_every)
    log("%s: HSM floor, %d keys on %d tokens, %d processes" % (name, n, SCALE_HOSTS, os.cpu_count()))
    floor_hsm = hsm_floor(run_dir, keys, SCALE_HOSTS, pin)
    log("  %.1f s wall, %.1f s CPU" % (floor_hsm["wall"], floor_hsm["cpu"]))
    floor_az = azure_floor(keys, TIME_SCALE)
    so_pin = secrets.token_hex(8)
    for h in range(SCALE_HOSTS):
        conf = softhsm_conf(os.path.join(run_dir, "hsm", "bh%d" % (h + 1)))
        init_token(conf, "bh%d-%s" % (h + 1, os.path.basename(run_dir)), pin, so_pin)
    inv = os.path.join(run_dir, "inventory.yml")
    write_scale_inventory(inv, run_dir, keys, SCALE_HOSTS, env, os.path.join(OUT, "lab", "pin"), "kek-" + prefix)
    lab_reset()
    log("%s: collection, first run" % name)
    first = run_scale_collection(run_dir, inv, env, "collection")
    log("  %.1f s wall, %.1f s CPU, %.0f MiB, %d throttled, %d changed, %d vault requests" % (
        first["wall"], first["cpu"], first["maxrss_mib"], first["throttled"], first["changed"], first["requests"]))
    noop = run_scale_collection(run_dir, inv, env, "noop")
    log("  no-op %.1f s wall, %.1f s CPU, %d throttled, %d changed, %d vault requests (%.2f per key)" % (
        noop["wall"], noop["cpu"], noop["throttled"], noop["changed"], noop["requests"], noop["requests"] / float(n)))
    dump = json.loads(lab("dump"))
    counts = [len(dump[k["vault"]]["keys"].get(k["name"], {}).get("versions", [])) for k in keys]
    lab_settings("--limits", "off")
    return {"keys": n, "hosts": SCALE_HOSTS, "vaults": SCALE_VAULTS, "rsa_every": rsa_every, "time_scale": TIME_SCALE,
            "floor_hsm": floor_hsm,
            "floor_azure": floor_az, "first": first, "noop": noop, "single_version": all(c == 1 for c in counts),
            "missing": sum(1 for c in counts if c == 0), "run_dir": run_dir}


def scale_table(results):
    lines = ["| keys | hosts | vaults | window s | wall s | CPU s | peak RSS MiB | 429s | HSM floor s | Azure floor s "
             "| wall / max(floors) | no-op s | no-op CPU s | no-op 429s | no-op / first | load 1 min |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["scale"]:
        f, o = r["first"], r["noop"]
        floor = max(r["floor_hsm"]["wall"], r["floor_azure"]["seconds"])
        lines.append("| %d%s | %d | %d | %g | %.1f | %.1f | %.0f | %d | %.1f | %.1f | %.2f | %.1f | %.1f | %d | %.2f | %.1f-%.1f |" % (
            r["keys"], " (1 in %d RSA-3072)" % r["rsa_every"] if r["rsa_every"] else " EC", r["hosts"], len(r["vaults"]),
            r["floor_azure"]["window"], f["wall"], f["cpu"], f["maxrss_mib"], f["throttled"], r["floor_hsm"]["wall"],
            r["floor_azure"]["seconds"], f["wall"] / floor, o["wall"], o["cpu"], o["throttled"], o["wall"] / f["wall"],
            f["load1_before"], f["load1_after"]))
    lines.append("")
    scales = sorted(set(r.get("time_scale", results.get("time_scale")) for r in results["scale"]))
    for scale in scales:
        ec = {r["keys"]: r for r in results["scale"]
              if not r["rsa_every"] and r.get("time_scale", results.get("time_scale")) == scale}
        if 500 in ec and 1000 in ec:
            hsm_cpu = ec[1000]["floor_hsm"]["cpu"] - ec[500]["floor_hsm"]["cpu"]
            coll_cpu = ec[1000]["first"]["cpu"] - ec[500]["first"]["cpu"]
            lines.append("Marginal 500 -> 1000 keys (windows of %g s): collection CPU %.1f s (%.1f ms/key), HSM floor CPU %.1f s "
                         "(%.1f ms/key); orchestration CPU (collection minus HSM floor) %.1f ms/key" % (
                             10.0 * scale, coll_cpu, coll_cpu * 2.0, hsm_cpu, hsm_cpu * 2.0, (coll_cpu - hsm_cpu) * 2.0))
    for r in results["scale"]:
        if r["noop"].get("requests") is not None:
            lines.append("Vault requests, %d keys: first run %d, no-op %d (%.2f per key; the vault read of each key, no KEK, no "
                         "import, no update)" % (r["keys"], r["first"]["requests"], r["noop"]["requests"],
                                                 r["noop"]["requests"] / float(r["keys"])))
    for r in results["scale"]:
        lines.append("Azure floor, %d keys: %s" % (r["keys"], json.dumps(r["floor_azure"])))
    return "\n".join(lines)


def scale_main():
    """bench.py --scale: BENCH_SCALE_SIZES EC keys (and an RSA-3072 mix at BENCH_SCALE_RSA_MIX) over BENCH_SCALE_HOSTS
    hosts and the lab's vaults, Azure's limits on at BENCH_TIME_SCALE; appends to OUT/scale.json."""
    os.makedirs(OUT, exist_ok=True)
    env = ensure_lab()
    pin = lab_pin()
    path = os.path.join(OUT, "scale.json")
    results = {"run_id": RUN_ID, "machine": machine(), "time_scale": TIME_SCALE, "scale": []}
    if os.environ.get("BENCH_SCALE_APPEND") == "1" and os.path.exists(path):  # add to the sizes of an earlier run
        results = json.load(open(path))
    sizes = [(n, 0) for n in SCALE_SIZES] + ([(SCALE_RSA_MIX, 2)] if SCALE_RSA_MIX else [])
    for n, rsa_every in sizes:
        results["scale"].append(scale_size(n, env, pin, rsa_every))
        results["machine"]["load1_at_end"] = loadavg()
        with open(path, "w") as handle:
            json.dump(results, handle, indent=1)
    text = scale_table(results)
    with open(os.path.join(OUT, "scale.md"), "w") as handle:
        handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--experiment":  # bench.py --experiment pipelining 25
        sys.exit(experiment(sys.argv[2], int(sys.argv[3])))
    if len(sys.argv) == 3 and sys.argv[1] == "--az":  # bench.py --az 10
        sys.exit(az_only(int(sys.argv[2])))
    if sys.argv[1:] == ["--scale"]:  # bench.py --scale (BENCH_SCALE_SIZES=250,500,1000)
        sys.exit(scale_main())
    if sys.argv[1:] == ["--scale-report"]:
        print(scale_table(json.load(open(os.path.join(OUT, "scale.json")))))
        sys.exit(0)
    if sys.argv[1:] == ["--report"]:  # table again from bench/out/results.json
        sys.exit(report(json.load(open(os.path.join(OUT, "results.json")))))
    sys.exit(main())
