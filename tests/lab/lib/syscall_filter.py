#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Which system calls a unit's SystemCallFilter= lets through, and which of
those a traced run used that it would not.

usage: syscall_filter.py UNIT STRACE-C-OUTPUT

UNIT is a systemd unit (or its .in template); its SystemCallFilter= lines
are read in order as systemd reads them: the first one without "~" starts
an allow list, later ones add to it, lines with "~" take away. Groups
(@name) are expanded with `systemd-analyze syscall-filter`. The trace is
the summary `strace -f -c -o FILE` writes. Prints the calls used and
whether each is allowed; exits 1 if one is not, 2 on bad input.
"""
import re
import subprocess
import sys


def groups():
    out = subprocess.run(["systemd-analyze", "--no-pager", "syscall-filter"], capture_output=True,
                         text=True, check=True).stdout
    g, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = g.setdefault(line.split()[0], [])
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.append(line.strip())
    return g


def expand(name, g, seen=None):
    seen = set() if seen is None else seen
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    if name not in g:
        raise SystemExit("unknown system call group %s" % name)
    out = set()
    for x in g[name]:
        out |= expand(x, g, seen)
    return out


def allowed(unit, g):
    allow = None
    with open(unit) as f:
        for line in f:
            m = re.match(r"^SystemCallFilter=(~?)(.*)$", line.strip())
            if not m:
                continue
            names = set()
            for n in m.group(2).split():
                names |= expand(n, g)
            if m.group(1):
                if allow is None:
                    raise SystemExit("%s: a deny list first is not handled here" % unit)
                allow -= names
            else:
                allow = names if allow is None else allow | names
    if allow is None:
        raise SystemExit("%s: no SystemCallFilter=" % unit)
    return allow


def used(trace):
    calls = set()
    with open(trace) as f:
        for line in f:
            p = line.split()
            # "% time seconds usecs/call calls [errors] syscall"
            if len(p) >= 5 and re.match(r"^\d+(\.\d+)?$", p[0]) and p[-1] != "total":
                calls.add(p[-1])
    return calls


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    allow = allowed(sys.argv[1], groups())
    calls = used(sys.argv[2])
    if not calls:
        print("no system calls in %s" % sys.argv[2])
        return 2
    outside = sorted(calls - allow)
    print("%d system calls used, %d of them outside the filter%s"
          % (len(calls), len(outside), (": " + " ".join(outside)) if outside else ""))
    print("used: " + " ".join(sorted(calls)))
    return 1 if outside else 0


if __name__ == "__main__":
    sys.exit(main())
