# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# The common start of the lab scenarios that drive iovmd with real guests:
# the paths, the skips (exit 77) when something they need is missing, and
# the ok/fail counters. Source it after `set -uo pipefail`. Set first, if
# needed: LAB_TOOLS (commands besides jq), LAB_MODULES (modules besides
# vfio-pci and igbvf).
B=${IOVM_BUILD:?}
D=$B/src/iovmd/iovmd
CTL=$B/src/iovmctl/iovmctl
G=lab/guest
# shellcheck source=guest.sh
. tests/lab/lib/guest.sh
[ -x "$D" ] && [ -x "$CTL" ] || { echo "skip: iovmd/iovmctl not built" >&2; exit 77; }
[ -d /sys/class/net/eth0 ] || { echo "skip: no emulated igb (not in the lab?)" >&2; exit 77; }
[ -x "$G" ] || { echo "skip: no lab/guest" >&2; exit 77; }
for _t in jq ${LAB_TOOLS:-}; do
	command -v "$_t" >/dev/null || { echo "skip: no $_t" >&2; exit 77; }
done
for _m in vfio-pci igbvf ${LAB_MODULES:-}; do
	modprobe "$_m" || { echo "skip: module $_m missing" >&2; exit 77; }
done
unset _t _m

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
