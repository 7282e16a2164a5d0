# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# The common start of the lab scenarios that drive iovmd with real guests:
# the paths, the skips (exit 77) when something they need is missing, and
# common.sh's checks (fail, ok, ...). Source it after `set -uo pipefail`. Set first, if
# needed: LAB_TOOLS (commands besides jq), LAB_MODULES (modules besides
# vfio-pci and igbvf).
B=${IOVM_BUILD:?}
D=$B/src/iovmd/iovmd
CTL=$B/src/iovmctl/iovmctl
G=lab/guest
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
# shellcheck source=guest.sh
. tests/lab/lib/guest.sh
[ -x "$D" ] && [ -x "$CTL" ] || skip "iovmd/iovmctl not built"
[ -d /sys/class/net/eth0 ] || skip "no emulated igb (not in the lab?)"
[ -x "$G" ] || skip "no lab/guest"
for _t in jq ${LAB_TOOLS:-}; do
	command -v "$_t" >/dev/null || skip "no $_t"
done
for _m in vfio-pci igbvf ${LAB_MODULES:-}; do
	modprobe "$_m" || skip "module $_m missing"
done
unset _t _m


# iovmd_wait PID LOG: waits up to 120 s until the daemon PID answers the
# scenario's `ctl status`; fails with LOG's last lines if it exits first or
# does not answer.
iovmd_wait() {
	local pid=$1 log=$2
	for _ in $(seq 1 600); do
		ctl status >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || { fail "iovmd exited at start: $(tail -5 "$log")"; return 1; }
		sleep 0.2
	done
	fail "iovmd did not answer within 120 s: $(tail -5 "$log")"; return 1
}

# The VFs of a PF netdev, as iovmd names them:
# pf_vf_addr IFACE N: the PCI address of VF N (its virtfn link).
pf_vf_addr() { basename "$(readlink "/sys/class/net/$1/device/virtfn$2")"; }
# pf_vf_devid IFACE N: the QEMU device id iovmd gives VF N.
pf_vf_devid() { echo "iovm-$(pf_vf_addr "$1" "$2" | tr : -)"; }
# pf_vf_mac IFACE N: the MAC the PF gives VF N ("vf N link/ether M" lines).
pf_vf_mac() {
	ip link show "$1" | awk -v i="$2" '$1 == "vf" && $2 == i {
		for (k = 3; k < NF; k++) if ($k == "link/ether") print $(k + 1) }'
}

# For scenarios that kill the daemon at its crash points and start it
# again, with SOCK, DB and LOG set and ctl defined (DPID: the running one).
# start_d [OP:STEP]: starts it (with IOVM_CRASH_AT=OP:STEP) and waits until
# it answers. stop_d: stops it. wait_dead OP:STEP: waits up to
# IOVMD_CRASH_WAIT_S (default 600) for it to kill itself there; fails (and
# stops it) if it does not. IOVMD_REFRESH_MS, IOVMD_ATTACH_MS and
# IOVMD_DETACH_MS set its intervals (defaults 1000, 180000, 300000).
start_d() {
	IOVM_CRASH_AT=${1:-} "$D" --socket "$SOCK" --state "$DB" --refresh-interval "${IOVMD_REFRESH_MS:-1000}" \
		--attach-timeout "${IOVMD_ATTACH_MS:-180000}" --detach-timeout "${IOVMD_DETACH_MS:-300000}" \
		--log-level debug >> "$LOG" 2>&1 &
	DPID=$!
	iovmd_wait "$DPID" "$LOG"
}
stop_d() {
	[ -n "$DPID" ] || return 0
	kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; DPID=
}
wait_dead() {
	for _ in $(seq 1 $(( ${IOVMD_CRASH_WAIT_S:-600} * 5 ))); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.2; done
	if kill -0 "$DPID" 2>/dev/null; then fail "iovmd did not reach crash point $1"; stop_d; return 1; fi
	wait "$DPID" 2>/dev/null; DPID=
}
