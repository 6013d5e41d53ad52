#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Choose the lab's base port before anything is installed (standard library only), and remember it.

The lab uses the base port (its login endpoint) and the four after it (its vaults). Order of choice:
LAB_PORT from the environment; the port the lab in this state directory already uses; the default 18443;
and when that is busy, the first free block of five ports above it (said on stderr). The choice is written to
<lab dir>/port and printed; `make lab-reset` keeps that file.
"""

import json
import os
import socket
import sys

DEFAULT = 18443
SPAN = 5


def free(base):
    for port in range(base, base + SPAN):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def ours_running(lab_dir):
    """True when this state directory's lab server is running (then its ports are busy because of it)."""
    try:
        with open(os.path.join(lab_dir, "vault", "server.pid"), encoding="ascii") as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


def current_port(lab_dir):
    """The base port in this state directory's lab configuration, or None."""
    try:
        with open(os.path.join(lab_dir, "vault", "config.json"), encoding="utf-8") as f:
            return int(json.load(f)["base_port"])
    except (OSError, ValueError, KeyError):
        return None


def main():
    lab_dir = sys.argv[1] if len(sys.argv) > 1 else ".lab"
    os.makedirs(lab_dir, mode=0o700, exist_ok=True)
    port_file = os.path.join(lab_dir, "port")
    wanted = os.environ.get("LAB_PORT")
    running = current_port(lab_dir) if ours_running(lab_dir) else None
    if running is not None:
        # this state directory's lab is up: it keeps its ports; moving it needs a stop first (one server per state dir)
        if wanted and wanted != str(running):
            print("lab: the lab of %s is running on ports %d-%d; stop it first (make lab-stop), then LAB_PORT=%s make demo"
                  % (lab_dir, running, running + SPAN - 1, wanted), file=sys.stderr)
            return 2
        with open(port_file, "w", encoding="ascii") as f:
            f.write("%d\n" % running)
        print(running)
        return 0
    if wanted:
        if not wanted.isdigit() or not 1024 <= int(wanted) <= 65531:
            print("lab: LAB_PORT=%s is not a port number between 1024 and 65531" % wanted, file=sys.stderr)
            return 2
        base = int(wanted)
        if not free(base):
            print("lab: LAB_PORT=%d: a port of %d-%d is in use; choose another LAB_PORT or leave it unset to let the lab pick "
                  "a free one" % (base, base, base + SPAN - 1), file=sys.stderr)
            return 2
    else:
        base = None
        for source in (port_file, os.path.join(lab_dir, "vault", "config.json")):
            try:
                with open(source, encoding="utf-8") as f:
                    text = f.read()
                base = int(json.loads(text)["base_port"]) if source.endswith(".json") else int(text.strip())
                break
            except (OSError, ValueError, KeyError):
                continue
        if base is None or not free(base):
            start = base or DEFAULT
            chosen = next((b for b in range(start, start + 400, SPAN) if free(b)), None)
            if chosen is None:
                print("lab: no block of %d free ports from %d on; set LAB_PORT" % (SPAN, start), file=sys.stderr)
                return 2
            if chosen != start:
                print("lab: ports %d-%d are busy; the lab uses %d-%d instead (set LAB_PORT to choose)"
                      % (start, start + SPAN - 1, chosen, chosen + SPAN - 1), file=sys.stderr)
            base = chosen
    with open(port_file, "w", encoding="ascii") as f:
        f.write("%d\n" % base)
    print(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
