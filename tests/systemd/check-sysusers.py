#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""contrib/sysusers.d/iovm.conf makes the accounts the units rely on.

Runs systemd-sysusers on it against an empty root and checks the result: a
group `iovm` (the sockets' access group), and a system user `iovm-devfwd`
(devfwd-backend's workers' default) with a system uid, its own group, no
shell and no home. Prints TAP; exits 77 (skip) without systemd-sysusers.

usage: check-sysusers.py CONF
"""
import os
import shutil
import subprocess
import sys
import tempfile


def table(root, name):
    """A passwd-style file as {name: fields}; {} if it was not made."""
    try:
        with open(os.path.join(root, name)) as f:
            return {l.split(":")[0]: l.rstrip("\n").split(":") for l in f if l.strip()}
    except FileNotFoundError:
        return {}


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if not shutil.which("systemd-sysusers"):
        print("1..0 # SKIP no systemd-sysusers")
        return 77
    with tempfile.TemporaryDirectory() as root:
        os.mkdir(os.path.join(root, "etc"))
        p = subprocess.run(["systemd-sysusers", "--root=" + root, sys.argv[1]], capture_output=True,
                           text=True, timeout=60)
        users, groups = table(root, "etc/passwd"), table(root, "etc/group")
    checks = [("systemd-sysusers succeeds", p.returncode == 0, p.stderr.strip()),
              ("group iovm exists", "iovm" in groups, repr(sorted(groups)))]
    u = users.get("iovm-devfwd")
    checks.append(("user iovm-devfwd exists", u is not None, repr(sorted(users))))
    if u:
        uid, gid = int(u[2]), int(u[3])
        checks += [("iovm-devfwd has a system uid, not root", 0 < uid < 1000, u[2]),
                   ("iovm-devfwd has a group of its own", groups.get("iovm-devfwd", [None] * 3)[2] == str(gid),
                    u[3]),
                   ("iovm-devfwd has no shell", u[6].endswith("nologin"), u[6]),
                   ("iovm-devfwd has no home", u[5] == "/", u[5])]
    print("1..%d" % len(checks))
    failed = 0
    for i, (what, good, detail) in enumerate(checks, 1):
        print("%s %d - %s%s" % ("ok" if good else "not ok", i, what, "" if good else " # " + detail))
        failed += not good
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
