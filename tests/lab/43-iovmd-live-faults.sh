#!/bin/bash
# lab-seconds: 300 (estimate: one stock guest, two faulted resizes)
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lab: faults during a live resize (docs/resize.md, "Errors during the
# resize"), stock QEMU, replug mode. g1 holds VF 0 of eth0 (2 VFs).
#  1. A guest that does not release in time: g1's vCPUs stopped (QMP stop),
#     `pf set-vfs eth0 3 --live replug --timeout-ms 15000` fails naming g1,
#     its VF and the timeout; eth0 keeps 2 VFs; the intent is rolled back;
#     g1's VF is release-pending, not free for anyone else. Once g1 runs
#     again and lets go, iovmd frees the VF.
#  2. A VM whose QEMU dies mid-resize: g1 holds VF 0 again and is stopped;
#     the resize waits for its unplug; g1's QEMU is killed (SIGKILL). The
#     resize ends (eth0 at 3 VFs), g1's VF is released, not leaked: free,
#     on its host driver, no intent open.
set -uo pipefail
# shellcheck source=lib/iovmd.sh
. tests/lab/lib/iovmd.sh

W=$TMPDIR/live-faults
mkdir -p "$W"
SOCK=$W/iovm.sock
LOG=$W/iovmd.log
DPID=
ctl() { "$CTL" --socket "$SOCK" --timeout 900 "$@"; }
cleanup() {
	[ -n "$DPID" ] && { kill "$DPID"; wait "$DPID"; } 2>/dev/null
	cp "$LOG" /run/iovm-lab/share/43-iovmd.log 2>/dev/null
	$G stop g1 >/dev/null 2>&1
}
trap cleanup EXIT
numvfs() { cat /sys/class/net/eth0/device/sriov_numvfs; }
vf0() { ctl --json vf show eth0/0 | jq -r '"\(.vm)/\(.state)"'; }   # "VM/STATE", "/free" when free
open_intents() { ctl --json status | jq -r .open_intents; }

ip link set eth0 up
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
$G start g1 || die "g1 did not start"
"$D" --socket "$SOCK" --state "$W/iovm.db" --refresh-interval 1000 --attach-timeout 180000 \
	--detach-timeout 300000 --log-level debug > "$LOG" 2>&1 &
DPID=$!
iovmd_wait "$DPID" "$LOG" || exit 1
out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || die "set-vfs 2: $out"
ctl vm add g1 --qmp "$(guest_qmp g1)" >/dev/null || die "vm add g1"
attach_g1() {
	out=$(ctl --json attach g1 --vf eth0/0 2>"$W/err") || die "attach g1: $(cat "$W/err")"
	VF0=$(jq -r .vf <<<"$out")
	guest_wait_vfs g1 1 300 || die "g1 does not see its VF"
}

# --- 1. the guest does not let go in time
attach_g1
$G qmp g1 stop >/dev/null || die "QMP stop g1"
out=$(ctl pf set-vfs eth0 3 --live replug --timeout-ms 15000 2>&1); rc=$?
echo "$out"
[ $rc != 0 ] && [[ "$out" == *"vm g1"* ]] && [[ "$out" == *"$VF0"* ]] &&
	ok "a guest that does not release: refused ($rc) naming g1 and $VF0" || fail "late guest: rc=$rc $out"
[ "$(numvfs)" = 2 ] && ok "eth0 keeps 2 VFs" || fail "eth0 has $(numvfs) VFs after the roll-back"
[ "$(open_intents)" = 0 ] && ok "the intent is closed (rolled back)" || fail "open intents: $(open_intents)"
st=$(vf0)
[ "$st" = "g1/release-pending" ] && ok "g1's VF is release-pending: $st" || fail "eth0/0 after the late guest: $st"
out=$(ctl attach g1 --vf eth0/0 2>&1) && fail "a release-pending VF was attached again: $out" ||
	ok "the release-pending VF is not handed out: $out"
$G qmp g1 cont >/dev/null || die "QMP cont g1"
guest_wait 300 eval '[ "$(vf0)" = /free ]' &&
	ok "once g1 lets go, its VF is free: $(vf0)" || fail "eth0/0 after g1 let go: $(vf0)"

# --- 2. the VM's QEMU dies while the resize waits for its unplug
guest_wait_vfs g1 0 300 || fail "g1 still sees a VF"
attach_g1
$G qmp g1 stop >/dev/null || die "QMP stop g1"
ctl pf set-vfs eth0 3 --live replug --timeout-ms 120000 > "$W/resize.out" 2>&1 &
RPID=$!
sleep 5   # the resize has asked for the unplug and waits for the stopped guest
kill -9 "$($G pid g1)" && ok "g1's QEMU killed mid-resize" || die "cannot kill g1's QEMU"
wait "$RPID"; rc=$?
echo "resize: rc=$rc $(cat "$W/resize.out")"
[ "$(numvfs)" = 3 ] || [ "$(numvfs)" = 2 ] || fail "eth0 has $(numvfs) VFs"
grep -q "g1" "$W/resize.out" || [ $rc = 0 ] || fail "the resize's error does not name g1: $(cat "$W/resize.out")"
guest_wait 60 eval '[ "$(vf0)" = /free ]' && ok "g1's VF is released: $(vf0)" ||
	fail "eth0/0 after g1's QEMU died: $(vf0)"
[ "$(open_intents)" = 0 ] && ok "no open intent" || fail "open intents: $(open_intents)"
drv0=$(drv "$(basename "$(readlink /sys/class/net/eth0/device/virtfn0)")")
[ "$drv0" = igbvf ] && ok "VF 0 back on its host driver" || fail "VF 0 on $drv0"
n=$(ctl --json vf list --pf eth0 | jq '[.[] | select(.state != null and .state != "free")] | length')
[ "$n" = 0 ] && ok "no eth0 VF held" || fail "$n eth0 VFs still held"
[ "${fails:-0}" = 0 ]
