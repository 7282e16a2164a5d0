#!/bin/bash
# lab-seconds: 330 (329 s on the 2-core lab machine at load average 5-7, 537 s at 10-12, 2026-12-07)
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lab: iovmd killed at every step of a live resize (docs/resize.md), then
# restarted. Guest g1 holds eth0/0 (MAC M) through iovmd; for each crash
# point set-vfs-live:STEP, `pf set-vfs eth0 N --live replug` (N alternating
# 3 and 2) kills the daemon at STEP (IOVM_CRASH_AT); the restarted daemon's
# recovery must finish the resize: eth0 has N VFs, g1 has its VF of index 0
# again (same device id, in QEMU and seen by the guest, MAC M), the VF is
# on vfio-pci, every other VF is free on igbvf (nothing leaked), no intent
# is left open.
set -uo pipefail
# shellcheck source=lib/iovmd.sh
. tests/lab/lib/iovmd.sh

# The mode, g1's QEMU and the crash points: replug on Debian's QEMU
# through every step by default; lab 46 runs the pause on the patched QEMU
# through the steps where g1 is paused.
MODE=${IOVM_LIVE_CRASH_MODE:-replug}
QEMU=${IOVM_LIVE_CRASH_QEMU:-stock}
STEPS=${IOVM_LIVE_CRASH_STEPS:-intent released numvfs configured restored done}
[ "$QEMU" = stock ] || { [ -n "${IOVM_LAB_QEMU_PATCHED:-}" ] && [ -x "$IOVM_LAB_QEMU_PATCHED" ]; } ||
	skip "no patched QEMU built (lab/iovm-lab build-qemu)"
W=$TMPDIR/live-crash-$MODE
mkdir -p "$W"
SOCK=$W/iovm.sock
DB=$W/iovm.db
LOG=$W/iovmd.log
DPID=
MAC=02:38:00:00:00:01
ctl() { "$CTL" --socket "$SOCK" --timeout 900 "$@"; }
cleanup() {
	stop_d
	cp "$LOG" "/run/iovm-lab/share/38-$MODE-iovmd.log" 2>/dev/null
	cp /run/iovm-lab/guests/g1/console.log "/run/iovm-lab/share/38-$MODE-g1-console.log" 2>/dev/null
	$G stop g1 >/dev/null 2>&1
}
trap cleanup EXIT

numvfs() { cat /sys/class/net/eth0/device/sriov_numvfs; }
if_state() { local i; i=$(guest_if_by_mac g1 "$MAC") && [ -n "$i" ] && guest_if_state g1 "$i"; }
VF0=
DEVID=
vfmac() { pf_vf_mac eth0 "$1"; }
in_qemu() {
	$G qmp g1 query-pci | jq -e --arg id "$DEVID" '[.. | objects | select(.qdev_id? == $id)] | length == 1' \
		>/dev/null
}

# consistent LABEL N: the kernel, iovmd's records, QEMU and the guest agree.
consistent() {
	local label=$1 n=$2 vfs bad st before=${fails:-0}
	[ "$(numvfs)" = "$n" ] || fail "$label: eth0 has $(numvfs) VFs, want $n"
	vfs=$(ctl --json vf list --pf eth0) || { fail "$label: vf list failed"; return; }
	st=$(jq -r '.[] | select(.index == 0) | "\(.vm) \(.state) \(.driver)"' <<<"$vfs")
	[ "$st" = "g1 attached vfio-pci" ] || fail "$label: eth0/0 is '$st', want 'g1 attached vfio-pci'"
	bad=$(jq -r '.[] | select(.index != 0) | select(.state != "free" or .driver != "igbvf") |
		"\(.vf) \(.state) \(.driver)"' <<<"$vfs")
	[ -z "$bad" ] || fail "$label: other VFs not free on igbvf (leaked): $bad"
	in_qemu || fail "$label: g1's QEMU has no $DEVID"
	if [ "$MODE" = pause ]; then
		[ "$($G qmp g1 qom-get "{\"path\":\"/machine/peripheral/$DEVID\",\"property\":\"x-paused\"}")" = false ] ||
			fail "$label: $DEVID is still paused"
		[ "$(if_state g1)" = "$STATE" ] ||
			fail "$label: g1's interface state '$(if_state g1)', before '$STATE' (a hot-plug?)"
	fi
	[ "$(vfmac 0)" = "$MAC" ] || fail "$label: eth0 vf 0 MAC $(vfmac 0), want $MAC"
	guest_wait_vfs g1 1 300 || fail "$label: g1 does not see its VF"
	[ "$(ctl --json status | jq .open_intents)" = 0 ] || fail "$label: open intents left"
	[ "${fails:-0}" = "$before" ] && ok "$label: consistent ($n VFs, g1 holds $VF0 as $DEVID)"
}

ip link set eth0 up
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
$G start g1 --qemu "$QEMU" || die "g1 did not start"
start_d || exit 1
out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || die "set-vfs 2: $out"
ctl vm add g1 --qmp "$(guest_qmp g1)" >/dev/null || die "vm add g1"
out=$(ctl --json attach g1 --vf eth0/0 --mac "$MAC" 2>"$W/err") || die "attach g1: $out $(cat "$W/err")"
VF0=$(jq -r .vf <<<"$out")
[ "$VF0" = "$(basename "$(readlink /sys/class/net/eth0/device/virtfn0)")" ] || die "attach g1 gave '$VF0', not VF 0"
DEVID=iovm-$(tr : - <<<"$VF0")
guest_wait_vfs g1 1 300 || die "g1 does not see its VF"
STATE=
[ "$MODE" = pause ] && { STATE=$(if_state g1); [ -n "$STATE" ] || die "g1's interface state unknown"; }
consistent "before the crashes" 2
stop_d

want=2
for step in $STEPS; do
	want=$((5 - want))
	start_d "set-vfs-live:$step" || break
	ctl pf set-vfs eth0 "$want" --live "$MODE" --timeout-ms 300000 >/dev/null 2>&1
	wait_dead "set-vfs-live:$step" || continue
	ok "iovmd killed itself at set-vfs-live:$step"
	start_d || break
	grep "recovery: intent .*live resize" "$LOG" | tail -2
	consistent "crash at set-vfs-live:$step" "$want"
	stop_d
done
start_d && { out=$(ctl detach g1 --timeout-ms 300000 2>&1) || fail "detach g1: $out"; }
[ "$(ctl --json vf list --pf eth0 | jq '[.[] | select(.state != "free")] | length')" = 0 ] &&
	ok "every VF free after the detach" || fail "VFs still held after the detach"
[ "${fails:-0}" = 0 ]
