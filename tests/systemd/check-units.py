#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The shipped systemd units are hardened and valid.

For each UNIT=PROGRAM argument (a unit as meson generated it, and the built
program its ExecStart= names once installed):
  1. `systemd-analyze security --offline=true --threshold=40` on the unit:
     the overall exposure it prints must be at most MAX_EXPOSURE, and the
     command must succeed (it fails above the threshold);
  2. `systemd-analyze verify` on a copy whose ExecStart= runs the built
     program (verify checks that the program exists): no output, status 0.
Before that, a copy of the first unit without its sandbox must score above
MAX_EXPOSURE, so a check that cannot fail is caught.

Prints TAP; exits 77 (skip) without systemd-analyze or without --offline
(systemd < 250).

usage: check-units.py UNIT=PROGRAM...
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

MAX_EXPOSURE = 4.0
EXPOSURE = re.compile(r"Overall exposure level for (\S+): (\d+\.\d+) (\S+)")
# Lines kept in the unhardened copy: what a unit without a sandbox has.
PLAIN_KEYS = ("Type", "ExecStart", "ExecStartPre", "Description", "Restart", "RestartSec",
              "KillSignal", "WantedBy", "After", "Before", "Documentation")


def analyze(*args):
    p = subprocess.run(["systemd-analyze", "--no-pager"] + list(args), capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def exposure(path):
    """Returns (status, exposure or None, output)."""
    # --threshold counts in tenths of the printed level: 40 is 4.0.
    rc, out, err = analyze("security", "--offline=true", "--threshold=%d" % round(MAX_EXPOSURE * 10),
                           path)
    m = EXPOSURE.search(out + err)
    return rc, (float(m.group(2)) if m else None), out + err


def unhardened(src, dst):
    with open(src) as f, open(dst, "w") as o:
        for line in f:
            key = line.split("=", 1)[0].strip()
            if line.startswith("[") or "=" not in line or key in PLAIN_KEYS:
                o.write(line)


def with_program(src, dst, program):
    """The unit with its ExecStart= program replaced by the built one."""
    with open(src) as f:
        text = f.read()
    text, n = re.subn(r"^(ExecStart=[-+!@:]*)(\S+)", lambda m: m.group(1) + program, text,
                      flags=re.M)
    if n != 1:
        raise SystemExit("%s: %d ExecStart= lines, expected 1" % (src, n))
    with open(dst, "w") as o:
        o.write(text)


def main():
    pairs = [a.split("=", 1) for a in sys.argv[1:]]
    if not pairs or any(len(p) != 2 for p in pairs):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    if not shutil.which("systemd-analyze"):
        print("1..0 # SKIP no systemd-analyze (Debian package systemd)")
        return 77
    rc, out, err = analyze("security", "--help")
    if "--offline" not in out + err:
        print("1..0 # SKIP systemd-analyze has no --offline (systemd < 250)")
        return 77
    tmp = tempfile.mkdtemp(prefix="iovm-units.")
    n = 0
    failed = 0

    def result(good, what):
        nonlocal n, failed
        n += 1
        failed += not good
        print("%s %d - %s" % ("ok" if good else "not ok", n, what))

    try:
        plain = os.path.join(tmp, os.path.basename(pairs[0][0]))
        unhardened(pairs[0][0], plain)
        rc, level, out = exposure(plain)
        result(level is not None and level > MAX_EXPOSURE and rc != 0,
               "%s without its sandbox: exposure %s, status %d (must be above %.1f, non-zero)"
               % (os.path.basename(plain), level, rc, MAX_EXPOSURE))
        os.unlink(plain)
        for unit, program in pairs:
            name = os.path.basename(unit)
            rc, level, out = exposure(unit)
            good = rc == 0 and level is not None and level <= MAX_EXPOSURE
            result(good, "%s: exposure %s (at most %.1f), status %d" % (name, level, MAX_EXPOSURE, rc))
            if not good:
                print("# " + out.replace("\n", "\n# "))
            copy = os.path.join(tmp, name)
            with_program(unit, copy, program)
            rc, out, err = analyze("verify", "--man=no", copy)
            text = (out + err).strip()
            result(rc == 0 and not text, "%s: systemd-analyze verify: status %d%s"
                   % (name, rc, ", said: " + text.replace("\n", " | ") if text else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
