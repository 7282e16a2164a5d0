#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""No early-exiting reader behind a pipe in the project's bash scripts.

Under `set -o pipefail` a pipeline fails when any member fails. In
`producer | grep -q PATTERN`, grep exits at its first match; a producer that
writes again afterwards dies of SIGPIPE, and the pipeline then reports "no
match" although there was one. It happens by timing (seen: one check in ten
for `apt-cache showsrc qemu | grep -q`). The scripts write
`grep -q PATTERN < <(producer)` instead, where the producer's status does not
count. Lines inside a `sh -c "..."` string run in another shell and are not
checked. Prints one line per violation and ends with "N passed, N failed"
(one check per script)."""
import re
import sys
from pathlib import Path

DIRS = ["scripts", "lab", "tests", "bench", ".ci"]
# A pipe into grep whose flags include q (-q, -Eiq, -qw, ...).
EARLY = re.compile(r"\|\s*grep\s+-[A-Za-z]*q")


def is_bash(path):
    try:
        with open(path, "rb") as f:
            first = f.readline()
    except OSError:
        return False
    return first.startswith(b"#!") and b"bash" in first or path.suffix == ".sh"


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2])
    passed = failed = 0
    for d in DIRS:
        for path in sorted((root / d).rglob("*")):
            if not path.is_file() or not is_bash(path):
                continue
            text = path.read_text(errors="replace")
            bad = []
            for n, line in enumerate(text.splitlines(), 1):
                m = EARLY.search(line)
                if m and 'sh -c "' not in line[: m.start()]:
                    bad.append(n)
            rel = path.relative_to(root).as_posix()
            if bad:
                failed += 1
                for n in bad:
                    print(f"{rel}:{n}: pipe into grep -q; write grep -q PATTERN < <(producer)")
            else:
                passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
