#!/bin/bash
# lab-seconds: 260 (260 s on the 2-core lab machine at load average 10-11, 2026-12-07)
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lab: a live resize in failover mode (docs/resize.md), stock QEMU. Guest g1
# gets a virtio-net standby (failover=on, MAC M, a user-mode netdev) and,
# through iovmd, VF 0 of eth0 as its failover primary (same MAC,
# failover_pair_id). Then `pf set-vfs eth0 3` without --live (auto) must
# choose failover (stock QEMU has no VFIO pause), and g1 must end with its
# VF back as the primary: same device id and failover_pair_id in QEMU, the
# VF's netdev enslaved to the guest's net_failover master again.
# (Traffic continuity over the standby during the unplug is not measured
# here: the standby's user-mode network does not reach the VF's peer.)
set -uo pipefail
# shellcheck source=lib/iovmd.sh
. tests/lab/lib/iovmd.sh

W=$TMPDIR/live-failover
mkdir -p "$W"
SOCK=$W/iovm.sock
LOG=$W/iovmd.log
DPID=
MAC=02:39:00:00:00:01
ctl() { "$CTL" --socket "$SOCK" --timeout 900 "$@"; }
cleanup() {
	[ -n "$DPID" ] && { kill "$DPID"; wait "$DPID"; } 2>/dev/null
	cp "$LOG" /run/iovm-lab/share/39-iovmd.log 2>/dev/null
	cp /run/iovm-lab/guests/g1/console.log /run/iovm-lab/share/39-g1-console.log 2>/dev/null
	$G stop g1 >/dev/null 2>&1
}
trap cleanup EXIT

numvfs() { cat /sys/class/net/eth0/device/sriov_numvfs; }
# enslaved: g1's VF netdev (8086:10ca) has a master, the failover device.
enslaved() {
	$G exec g1 -- sh -c 'for i in /sys/class/net/*; do
		[ -e $i/device/device ] || continue; read d < $i/device/device
		[ "$d" = 0x10ca ] && [ -e $i/master ] && { echo ${i##*/}; exit 0; }; done; exit 1' 2>/dev/null
}
pair_of() {
	$G qmp g1 qom-get "{\"path\":\"/machine/peripheral/$1\",\"property\":\"failover_pair_id\"}" | jq -r .
}

ip link set eth0 up
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
$G start g1 || die "g1 did not start"
"$D" --socket "$SOCK" --state "$W/iovm.db" --refresh-interval 1000 --attach-timeout 180000 \
	--detach-timeout 300000 --log-level debug > "$LOG" 2>&1 &
DPID=$!
iovmd_wait "$DPID" "$LOG" || exit 1
out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || die "set-vfs 2: $out"
ctl vm add g1 --qmp "$(guest_qmp g1)" >/dev/null || die "vm add g1"

# --- the standby, then the VF as its primary
$G qmp g1 netdev_add '{"type":"user","id":"sbn0"}' >/dev/null || die "netdev_add"
$G qmp g1 device_add "{\"driver\":\"virtio-net-pci\",\"netdev\":\"sbn0\",\"id\":\"sb0\",\"mac\":\"$MAC\",\"failover\":true,\"bus\":\"hp4\"}" \
	--wait-event FAILOVER_NEGOTIATED --match device-id=sb0 --timeout 600 >/dev/null ||
	die "no FAILOVER_NEGOTIATED for the standby sb0"
ok "standby sb0 (virtio-net, failover=on, $MAC): FAILOVER_NEGOTIATED"
out=$(ctl --json attach g1 --vf eth0/0 --mac "$MAC" --failover-pair-id sb0 2>"$W/err") ||
	die "attach g1 as failover primary: $out $(cat "$W/err")"
VF0=$(jq -r .vf <<<"$out")
DEVID=$(jq -r .devid <<<"$out")
[ "$(pair_of "$DEVID")" = sb0 ] && ok "g1 holds $VF0 as $DEVID, failover_pair_id sb0" ||
	fail "$DEVID failover_pair_id: $(pair_of "$DEVID")"
guest_wait 300 enslaved >/dev/null && ok "g1's VF netdev is enslaved to its failover master" ||
	fail "g1's VF netdev has no failover master"

# --- live resize, auto: failover is chosen
s=$(date +%s)
out=$(ctl --json pf set-vfs eth0 3 --timeout-ms 300000 2>"$W/err"); rc=$?
[ $rc = 0 ] && ok "live grow to 3 (auto) in $(( $(date +%s) - s )) s" || fail "live grow (auto): rc=$rc $(cat "$W/err")"
mode=$(jq -r '.live[0].mode // empty' <<<"$out")
[ "$mode" = failover ] && ok "auto chose failover for g1" || fail "mode used: '$mode' ($out)"
[ "$(numvfs)" = 3 ] && ok "eth0 has 3 VFs" || fail "eth0 has $(numvfs) VFs"
st=$(ctl --json vf show eth0/0 | jq -r '"\(.vm) \(.state) \(.driver)"')
[ "$st" = "g1 attached vfio-pci" ] && ok "eth0/0: $st" || fail "eth0/0 after the resize: $st"
[ "$(pair_of "$DEVID")" = sb0 ] && ok "$DEVID is back with failover_pair_id sb0" ||
	fail "$DEVID after the resize: failover_pair_id '$(pair_of "$DEVID")'"
guest_wait 300 enslaved >/dev/null && ok "g1's VF netdev is enslaved to its failover master again" ||
	fail "g1's VF netdev has no failover master after the resize"
[ "$(ctl --json status | jq .open_intents)" = 0 ] && ok "no open intent" || fail "open intents left"
grep -E "back as|live resize" "$LOG" | tail -3
out=$(ctl detach g1 --timeout-ms 300000 2>&1) && ok "g1 detached" || fail "detach g1: $out"
[ "${fails:-0}" = 0 ]
