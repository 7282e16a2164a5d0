# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# What every lab shell scenario reports with. Source it from the top of the
# source tree (where tests/lab/run-inside starts scenarios), first thing
# after `set -uo pipefail`:
#
#   skip WHY           the scenario cannot run here: "skip: WHY", exit 77
#   fail WHAT          a check failed: "FAIL: WHAT" on stderr, counted in
#                      $fails; the scenario goes on and ends non-zero
#   die WHAT           fail, and stop here (exit 1): nothing after it can pass
#   ok WHAT            a check passed: "ok: WHAT"
#   expect STATUS CMD...
#                      runs CMD, checks its exit status; its output is in $LAST
#   drv PCI-ADDRESS    the driver bound to a PCI function, or "-"
#
# LAB_TAG, if set, starts the fail/ok lines ("TAG: FAIL: WHAT").

fails=0
skip() { echo "skip: $*" >&2; exit 77; }
fail() { echo "${LAB_TAG:+$LAB_TAG: }FAIL: $*" >&2; fails=$((fails + 1)); }
die() { fail "$@"; exit 1; }
ok() { echo "${LAB_TAG:+$LAB_TAG: }ok: $*"; }
expect() {
	local want=$1; shift
	local out rc
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" != "$want" ]; then fail "'$*' exited $rc, want $want: $out"; return 1; fi
	ok "'$*' -> $rc${out:+: $out}"
	LAST=$out
}
drv() { basename "$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null)" 2>/dev/null || echo -; }
