#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The layering rules of docs/architecture.md, checked on the tree.

Each folder of src/ may include only the project headers listed for it
below (system headers are free); public headers include only public
headers; no C source or header is longer than MAX_LINES. Prints one line per
violation and ends with "N passed, N failed" (one check per file)."""
import re
import sys
from pathlib import Path

MAX_LINES = 800

HOST = {"iovm/error.h", "iovm/types.h", "iovm/host.h", "iovm/deadline.h", "iovm/pci.h",
        "iovm/sriov.h", "iovm/vfio.h", "iovm/vfnet.h", "iovm/vfconfig.h", "iovm/netdev.h",
        "iovm/monitor.h"}
VM = {"iovm/qmp.h", "iovm/qga.h", "iovm/qdev.h", "iovm/pool.h", "iovm/vm.h", "iovm/shared.h", "iovm/live.h"}
STATE = {"iovm/store.h"}
POLICY = {"iovm/policy.h"}
API = {"iovm/api.h", "iovm/api-schema.h"}
BASE = {"iovm/error.h", "iovm/types.h", "iovm/vfconfig.h"}

# folder -> (allowed project include prefixes or exact headers)
RULES = {
    "src/shared": {"shared/", "iovm/error.h"},
    "src/lib/host": HOST | {"lib/host/", "shared/"},
    "src/lib/vm": HOST | VM | {"lib/vm/", "shared/"},
    "src/lib/state": BASE | STATE | {"iovm/pci.h", "lib/state/", "shared/"},
    "src/lib/policy": BASE | POLICY | {"lib/policy/", "shared/"},
    "src/lib/api": BASE | API | {"iovm/pci.h", "lib/api/", "shared/"},
    "src/lib": BASE | {"shared/"},
    "src/iovmd": {"iovm/", "iovmd/", "shared/"},
    "src/iovmctl": BASE | API | {"iovmctl/", "shared/"},
    "src/devfwd": {"devfwd/", "iovm/error.h", "shared/"},
    "src/tools": {"iovm/", "shared/"},
    "include/iovm": {"iovm/"},
    "include/devfwd": {"devfwd/", "iovm/error.h"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def rule_for(rel):
    best = None
    for folder in RULES:
        if rel.startswith(folder + "/") and (best is None or len(folder) > len(best)):
            best = folder
    return best


def allowed(inc, rules):
    return any(inc == r or (r.endswith("/") and inc.startswith(r)) for r in rules)


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2])
    passed = failed = 0
    for path in sorted(list(root.glob("src/**/*.[ch]")) + list(root.glob("include/**/*.h"))):
        rel = path.relative_to(root).as_posix()
        text = path.read_text()
        problems = []
        folder = rule_for(rel)
        if folder is None:
            problems.append("no layering rule covers this folder")
        else:
            for inc in INCLUDE.findall(text):
                local = (path.parent / inc).exists() and "/" not in inc
                if not local and not allowed(inc, RULES[folder]):
                    problems.append(f'includes "{inc}", which {folder}/ may not')
        lines = text.count("\n")
        if lines > MAX_LINES:
            problems.append(f"{lines} lines, more than {MAX_LINES}: split it into modules")
        if problems:
            failed += 1
            for p in problems:
                print(f"FAIL {rel}: {p}")
        else:
            passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
