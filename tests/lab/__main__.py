# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``PYTHONPATH=tests python -m lab COMMAND [--state-dir DIR]``, or ``byok-keyvault-lab COMMAND`` when installed
(``pip install ./tests/lab``)

Commands: init, start, stop, status, reset, env [--json], faults, settings, dump, serve (foreground).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Optional

from . import config

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def _cfg(args: argparse.Namespace) -> config.LabConfig:
    try:
        return config.load(args.state_dir)
    except FileNotFoundError:
        sys.exit("lab: %s is not initialised; run `python -m lab init --state-dir %s` first" % (args.state_dir, args.state_dir))


def _admin(cfg: config.LabConfig, method: str, what: str, body: Optional[dict] = None, timeout: float = 5.0) -> dict:
    """Call an admin endpoint of the running server (trusting only the lab CA)."""
    context = ssl.create_default_context(cafile=cfg.ca_path)
    data = json.dumps(body).encode("utf-8") if body is not None else None
    headers = {"Content-Type": "application/json"}
    headers.update(config.admin_headers(cfg))
    request = urllib.request.Request("%s/lab/%s" % (cfg.authority, what), data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, context=context, timeout=timeout) as response:  # nosec - fixed https URL of the lab
        return json.loads(response.read().decode("utf-8"))


def _pid(cfg: config.LabConfig) -> Optional[int]:
    """The pid of a running lab server for this state dir, or None (stale pid files are ignored)."""
    try:
        with open(cfg.pid_path, encoding="ascii") as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            cmdline = handle.read().split(b"\0")
    except OSError:
        return None
    if b"lab" not in cmdline or b"serve" not in cmdline:
        return None
    return pid


def _healthy(cfg: config.LabConfig) -> bool:
    try:
        return bool(_admin(cfg, "GET", "health", timeout=2.0).get("ok"))
    except (OSError, ValueError, urllib.error.URLError):
        return False


def cmd_init(args: argparse.Namespace) -> int:
    cfg = config.init(args.state_dir, port=args.port)
    print("lab initialised in %s: authority %s, vaults %s" % (cfg.state_dir, cfg.authority, ", ".join(
        "%s=%s" % item for item in sorted(cfg.urls.items()))))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import LabServer  # pylint: disable=import-outside-toplevel

    cfg = config.init(args.state_dir)
    stop = threading.Event()

    def _stop(_signum, _frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        lab = LabServer(cfg.state_dir, port=None)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print("lab: a port of %s (base %d and the three after it) is in use, probably by another lab; stop it "
                  "(make lab-stop in its checkout) or init this state dir with another --port" % (cfg.authority, cfg.base_port),
                  file=sys.stderr)
            return 2
        raise
    lab.start()
    with open(cfg.pid_path, "w", encoding="ascii") as handle:
        handle.write("%d\n" % os.getpid())
    try:
        stop.wait()
    finally:
        lab.stop()
        try:
            with open(cfg.pid_path, encoding="ascii") as handle:
                if handle.read().strip() == str(os.getpid()):
                    os.unlink(cfg.pid_path)
        except OSError:
            pass
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    cfg = config.init(args.state_dir)
    pid = _pid(cfg)
    if pid and _healthy(cfg):
        print("lab already running (pid %d) at %s" % (pid, cfg.authority))
        return 0
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    with open(cfg.log_path, "ab") as log:
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "lab", "serve", "--state-dir", cfg.state_dir],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=cfg.state_dir, start_new_session=True, close_fds=True)
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline:
        if proc.poll() is not None:
            print("lab server exited with status %s; last lines of %s:" % (proc.returncode, cfg.log_path), file=sys.stderr)
            with open(cfg.log_path, encoding="utf-8", errors="replace") as handle:
                print("".join(handle.readlines()[-3:]), file=sys.stderr)
            return 1
        if _healthy(cfg):
            print("lab started (pid %d): authority %s, log %s" % (proc.pid, cfg.authority, cfg.log_path))
            return 0
        time.sleep(0.2)
    print("lab server did not answer within %.0f s; see %s" % (START_TIMEOUT, cfg.log_path), file=sys.stderr)
    return 1


def cmd_stop(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    pid = _pid(cfg)
    if not pid:
        print("lab not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + STOP_TIMEOUT
    while time.time() < deadline and os.path.exists("/proc/%d" % pid):
        try:
            with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
                if handle.read().split(")")[-1].split()[0] == "Z":
                    break
        except OSError:
            break
        time.sleep(0.1)
    else:
        if os.path.exists("/proc/%d" % pid):
            print("lab server (pid %d) did not stop within %.0f s" % (pid, STOP_TIMEOUT), file=sys.stderr)
            return 1
    if os.path.exists(cfg.pid_path):
        os.unlink(cfg.pid_path)
    print("lab stopped (pid %d)" % pid)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    pid = _pid(cfg)
    if pid and _healthy(cfg):
        print("lab running (pid %d): authority %s, vaults %s" % (pid, cfg.authority, ", ".join(
            "%s=%s" % item for item in sorted(cfg.urls.items()))))
        return 0
    print("lab not running" + (" (pid %d does not answer)" % pid if pid else ""))
    return 3


def cmd_reset(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    if _pid(cfg) and _healthy(cfg):
        _admin(cfg, "POST", "reset", {})
        print("lab state reset (server running)")
        return 0
    vault_dir = cfg.path("vaults")
    if os.path.isdir(vault_dir):
        for name in os.listdir(vault_dir):
            if name.endswith(".json"):
                os.unlink(os.path.join(vault_dir, name))
    print("lab state reset")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    values = config.env_vars(cfg, cfg.authority, cfg.urls)
    if args.json:
        print(json.dumps(values, indent=2, sort_keys=True))
    else:
        for name, value in values.items():
            print("export %s=%s" % (name, shlex.quote(value)))
    return 0


def _configure(cfg: config.LabConfig, what: str, body: dict) -> int:
    """POST ``body`` to the admin endpoint ``what`` of the running server (GET when there is nothing to change) and
    print what it answers."""
    try:
        result = _admin(cfg, "POST" if body else "GET", what, body or None)
    except urllib.error.HTTPError as exc:
        print("lab: %s" % exc.read().decode("utf-8", "replace"), file=sys.stderr)
        return 1
    except (OSError, urllib.error.URLError) as exc:
        print("lab: the server does not answer (%s); start it first" % exc, file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def cmd_faults(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    body: dict = {}
    if args.off:
        body["off"] = True
    if args.rate is not None:
        body["rate"] = args.rate
        body["kinds"] = [k for k in args.kinds.split(",") if k]
    if args.seed is not None:
        body["seed"] = args.seed
    if args.slow_seconds is not None:
        body["slow_seconds"] = args.slow_seconds
    if args.next:
        body["next"] = [k for k in args.next.split(",") if k]
        if args.method:
            body["method"] = args.method
        if args.path:
            body["path"] = args.path
    return _configure(cfg, "faults", body)


def cmd_settings(args: argparse.Namespace) -> int:
    """Azure's service limits (on/off, time scale) and vault options (purge protection, delete and purge delays)."""
    cfg = _cfg(args)
    body: dict = {}
    limits: dict = {}
    if args.limits:
        limits["enabled"] = args.limits == "on"
    if args.time_scale is not None:
        limits["time_scale"] = args.time_scale
    if limits:
        body["limits"] = limits
    if args.clock_offset is not None:
        body["clock_offset"] = args.clock_offset
    options: dict = {}
    if args.purge_protection:
        options["purge_protection"] = args.purge_protection == "on"
    if args.delete_delay is not None:
        options["delete_delay"] = args.delete_delay
    if args.purge_delay is not None:
        options["purge_delay"] = args.purge_delay
    if options:
        if not args.vault:
            print("lab: --purge-protection, --delete-delay and --purge-delay need --vault NAME", file=sys.stderr)
            return 2
        body["vaults"] = {args.vault: options}
    return _configure(cfg, "settings", body)


def cmd_dump(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    if _pid(cfg) and _healthy(cfg):
        state = _admin(cfg, "GET", "state")
    else:
        from .store import LabState  # pylint: disable=import-outside-toplevel
        from .wire import state_summary  # pylint: disable=import-outside-toplevel

        lab_state = LabState(cfg.state_dir)
        for vdef in cfg.vaults:
            lab_state.add_vault(vdef.name, vdef.kind, cfg.urls[vdef.name])
        state = state_summary(lab_state)
    print(json.dumps(state, indent=2, sort_keys=True))
    return 0


def build_parser(prog: str = "python -m lab") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="The byok.keyvault lab Key Vault (local HTTPS Azure Key Vault keys API).")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", default=config.DEFAULT_STATE_DIR, help="state directory (default: %(default)s in the current directory)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", parents=[common], help="create the state dir, CA, server certificate, config and identities (idempotent)")
    p_init.add_argument("--port", type=int, default=None, help="base port (login endpoint); vaults use base+1..3 (default %d)" % config.DEFAULT_PORT)
    p_init.set_defaults(func=cmd_init)
    sub.add_parser("start", parents=[common], help="start the server in the background").set_defaults(func=cmd_start)
    sub.add_parser("stop", parents=[common], help="stop the background server").set_defaults(func=cmd_stop)
    sub.add_parser("status", parents=[common], help="is the server running? (exit 0 yes, 3 no)").set_defaults(func=cmd_status)
    sub.add_parser("reset", parents=[common], help="delete all keys (keeps CA and identities)").set_defaults(func=cmd_reset)
    sub.add_parser("serve", parents=[common], help="run the server in the foreground").set_defaults(func=cmd_serve)
    p_env = sub.add_parser("env", parents=[common], help="print export lines (operator credentials, CA, vault URLs)")
    p_env.add_argument("--json", action="store_true", help="print a JSON object instead")
    p_env.set_defaults(func=cmd_env)
    p_faults = sub.add_parser("faults", parents=[common], help="configure fault injection on the running server")
    p_faults.add_argument("--rate", type=float, help="probability that a vault request gets a fault")
    p_faults.add_argument("--kinds", default="429,500,503,reset,slow", help="comma-separated fault kinds (default: %(default)s)")
    p_faults.add_argument("--seed", type=int, help="random seed")
    p_faults.add_argument("--slow-seconds", type=float, help="delay of the 'slow' fault (default 2)")
    p_faults.add_argument("--next", help="queue these faults (comma-separated) for the next matching requests")
    p_faults.add_argument("--method", help="with --next: only requests with this HTTP method")
    p_faults.add_argument("--path", help="with --next: only requests whose path contains this string")
    p_faults.add_argument("--off", action="store_true", help="switch all faults off and clear the queue")
    p_faults.set_defaults(func=cmd_faults)
    p_settings = sub.add_parser("settings", parents=[common], help="Azure's service limits and vault options on the running server")
    p_settings.add_argument("--limits", choices=["on", "off"], help="throttle like Azure (429 + Retry-After) or not (default off)")
    p_settings.add_argument("--time-scale", type=float, help="shrink Azure's 10-second windows (0.1: 1 s windows, same counts)")
    p_settings.add_argument("--clock-offset", type=float, metavar="SECONDS",
                            help="move the vaults' clock (created, updated, nbf, exp): 31536000 makes new keys a year old")
    p_settings.add_argument("--vault", help="the vault the options below apply to (premium, mhsm, premium2, premium3)")
    p_settings.add_argument("--purge-protection", choices=["on", "off"], help="refuse purges (always on for mhsm)")
    p_settings.add_argument("--delete-delay", type=float, help="seconds before a deleted key is listed as deleted")
    p_settings.add_argument("--purge-delay", type=float, help="seconds a purged name still answers 409")
    p_settings.set_defaults(func=cmd_settings)
    sub.add_parser("dump", parents=[common], help="print the vault state summary as JSON").set_defaults(func=cmd_dump)
    return parser


def main(argv: Optional[list] = None, prog: Optional[str] = None) -> int:
    args = (build_parser(prog) if prog else build_parser()).parse_args(argv)
    return int(args.func(args))


def console() -> int:
    """The ``byok-keyvault-lab`` command of the installed package (the same CLI as ``python -m lab``)."""
    return main(prog=os.path.basename(sys.argv[0]) or "byok-keyvault-lab")


if __name__ == "__main__":
    sys.exit(main())
