#!/bin/bash
# lab-seconds: 900 (estimate: two guests, two replug resizes; 1405 s with four guests at load average 10-12)
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lab: pf-set-vfs while VMs hold VFs of the PF (docs/resize.md), stock QEMU.
# eth0 has 2 VFs; g1 holds VF 0 (MAC M1), g2 holds VF 1 (MAC M2), through
# iovmd. Then:
#  1. `pf set-vfs eth0 4` (live auto): refused, stock QEMU has no VFIO
#     pause and neither VF is a failover primary; both VMs named; nothing
#     changed;
#  2. `pf set-vfs eth0 1 --live replug`: refused, g2 holds index 1;
#  3. `pf set-vfs eth0 4 --live replug`: 4 VFs; g1 and g2 keep index 0 and
#     1 with the same device ids and MACs, see their VF again, and each
#     VF carries traffic to a VF of eth1 (netns srv);
#  4. `pf set-vfs eth0 2 --live replug`: 2 VFs, g1 and g2 keep theirs; g2's
#     VF carries traffic;
#  5. the journal has no open intent, and detaching both leaves every VF free.
# (New VMs on the grown VFs, with traffic on all four, is lab 42's, in
# pause mode; the re-create and the new VFs' binding are the same code.)
# The two nested guests do not both run at once on the emulated host's
# CPU: as in lab 31, each step runs only the guests it needs.
set -uo pipefail
# shellcheck source=lib/iovmd.sh
. tests/lab/lib/iovmd.sh
[ -d /sys/class/net/eth1/device ] || skip "no second emulated igb"
# shellcheck source=lib/vf-traffic.sh
. tests/lab/lib/vf-traffic.sh

W=$TMPDIR/live
mkdir -p "$W"
SOCK=$W/iovm.sock
LOG=$W/iovmd.log
DPID=
GUESTS=(g1 g2)
HOLD=(g1 g2)
declare -A MAC=([g1]=02:37:00:00:00:01 [g2]=02:37:00:00:00:02)
declare -A GIP=([g1]=10.37.0.11 [g2]=10.37.0.12)
declare -A IDX=([g1]=0 [g2]=1)
SRV_IP=10.37.0.1
ctl() { "$CTL" --socket "$SOCK" --timeout 900 "$@"; }
cleanup() {
	[ -n "$DPID" ] && { kill "$DPID"; wait "$DPID"; } 2>/dev/null
	cp "$LOG" /run/iovm-lab/share/37-iovmd.log 2>/dev/null
	for g in "${GUESTS[@]}"; do
		cp "/run/iovm-lab/guests/$g/console.log" "/run/iovm-lab/share/37-$g-console.log" 2>/dev/null
		$G stop "$g" >/dev/null 2>&1
	done
}
trap cleanup EXIT

PF0=$(basename "$(readlink /sys/class/net/eth0/device)")
PF1=$(basename "$(readlink /sys/class/net/eth1/device)")
numvfs() { cat /sys/class/net/eth0/device/sriov_numvfs; }
vfaddr() { pf_vf_addr eth0 "$1"; }
devid_of() { pf_vf_devid eth0 "$1"; }
vfmac() { pf_vf_mac eth0 "$1"; }
# in_qemu G DEVID: QEMU's query-pci (through lab/guest's own monitor) has it.
in_qemu() {
	$G qmp "$1" query-pci | jq -e --arg id "$2" '[.. | objects | select(.qdev_id? == $id)] | length == 1' \
		>/dev/null
}
running() { guests_only "${GUESTS[*]}" "$@" || die "pausing/resuming guests"; }

# --- the server side: one eth1 VF in netns srv
for pf in eth0 eth1; do
	echo 0 > "/sys/class/net/$pf/device/sriov_numvfs"
	ip link set "$pf" up
done
echo 0 > /sys/class/net/eth1/device/sriov_drivers_autoprobe
echo 1 > /sys/class/net/eth1/device/sriov_numvfs || die "eth1: cannot create a VF"
for pf in eth0 eth1; do
	_vft_wait 60 "carrier on $pf" _vft_carrier "$pf" || die "no carrier on $pf"
done
SRVDEV=$(_vft_up "$PF1" 0 srv "$SRV_IP/24") || die "server VF setup"
echo "server $SRV_IP on $SRVDEV in netns srv"

# --- guests, iovmd, VF 0 to g1 and VF 1 to g2
guests_start_paused "${GUESTS[@]}" || die "starting the guests ($(free -m | sed -n 2p))"
"$D" --socket "$SOCK" --state "$W/iovm.db" --refresh-interval 1000 --attach-timeout 180000 \
	--detach-timeout 300000 --log-level debug > "$LOG" 2>&1 &
DPID=$!
iovmd_wait "$DPID" "$LOG" || exit 1
out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || die "set-vfs 2: $out"
for g in "${GUESTS[@]}"; do
	ctl vm add "$g" --qmp "$(guest_qmp "$g")" >/dev/null || die "vm add $g"
done
# attach G: G gets eth0/IDX with its MAC, running alone, and sees it.
attach() {
	running "$1"
	out=$(ctl --json attach "$1" --vf "eth0/${IDX[$1]}" --mac "${MAC[$1]}" 2>&1) || die "attach $1: $out"
	guest_wait_vfs "$1" 1 300 || die "$1 does not see its VF after attach"
}
for g in "${HOLD[@]}"; do attach "$g"; done
ok "g1 holds eth0/0 ($(devid_of 0)), g2 holds eth0/1 ($(devid_of 1))"
ctl vf list --pf eth0

# --- 1. auto on stock QEMU without failover: refused, nothing changed
out=$(ctl pf set-vfs eth0 4 2>&1); rc=$?
echo "$out"
if [ $rc = 95 ] && [[ "$out" == *"vm g1 "* ]] && [[ "$out" == *"vm g2 "* ]] && [[ "$out" == *"x-vfio-pause"* ]] &&
	[[ "$out" == *"failover"* ]]; then
	ok "--live auto refused naming g1 and g2 and why"
else
	fail "--live auto on stock QEMU: rc=$rc $out"
fi
[ "$(numvfs)" = 2 ] && in_qemu g1 "$(devid_of 0)" && in_qemu g2 "$(devid_of 1)" &&
	ok "nothing changed: 2 VFs, both devices in their VMs" || fail "after the refused auto: $(numvfs) VFs"

# --- 2. shrink below a held index: refused naming g2
out=$(ctl pf set-vfs eth0 1 --live replug 2>&1); rc=$?
echo "$out"
[ $rc = 16 ] && [[ "$out" == *"vm g2 holds vf $(vfaddr 1) (index 1)"* ]] && [[ "$out" != *"vm g1 "* ]] &&
	ok "shrink to 1 refused naming g2" || fail "shrink below a held index: rc=$rc $out"
[ "$(numvfs)" = 2 ] || fail "shrink refused but eth0 has $(numvfs) VFs"

# check_kept N: after a live resize to N, g1 and g2 kept their index,
# device id and MAC, and see their VF again.
check_kept() {
	local g st
	[ "$(numvfs)" = "$1" ] && ok "eth0 has $1 VFs" || fail "eth0 has $(numvfs) VFs, want $1"
	for g in "${HOLD[@]}"; do
		st=$(ctl --json vf show "eth0/${IDX[$g]}" | jq -r '"\(.vm) \(.state)"')
		[ "$st" = "$g attached" ] && ok "$g keeps eth0/${IDX[$g]}: $st" ||
			fail "eth0/${IDX[$g]} after the resize: $st"
		in_qemu "$g" "$(devid_of "${IDX[$g]}")" && ok "$g's QEMU has $(devid_of "${IDX[$g]}") again" ||
			fail "$g's QEMU has no $(devid_of "${IDX[$g]}")"
		[ "$(vfmac "${IDX[$g]}")" = "${MAC[$g]}" ] && ok "eth0 vf ${IDX[$g]} keeps MAC ${MAC[$g]}" ||
			fail "eth0 vf ${IDX[$g]} MAC $(vfmac "${IDX[$g]}"), want ${MAC[$g]}"
		[ "$(drv "$(vfaddr "${IDX[$g]}")")" = vfio-pci ] || fail "VF ${IDX[$g]} on $(drv "$(vfaddr "${IDX[$g]}")")"
		guest_wait_vfs "$g" 1 300 && ok "$g sees its VF again" || fail "$g does not see its VF after the resize"
	done
}
traffic() {
	local g=$1
	running "$g"
	if guest_vf_net "$g" exclusive "$(vfaddr "${IDX[$g]}")" "${GIP[$g]}" "${MAC[$g]}" "$SRV_IP" srv "$SRVDEV"; then
		ok "$g reaches $SRV_IP through its VF eth0/${IDX[$g]}"
	else
		fail "$g: no traffic through its VF eth0/${IDX[$g]}"
	fi
}

# --- 3. grow 2 -> 4, replug: both guests run (their unplug needs them)
running g1 g2
s=$(date +%s)
out=$(ctl pf set-vfs eth0 4 --live replug --timeout-ms 300000 2>&1) && ok "live grow to 4 in $(( $(date +%s) - s )) s" ||
	fail "live grow to 4: $out"
echo "$out"
check_kept 4
for g in g1 g2; do traffic "$g"; done

# --- 4. shrink 4 -> 2, replug
running g1 g2
s=$(date +%s)
out=$(ctl pf set-vfs eth0 2 --live replug --timeout-ms 300000 2>&1) && ok "live shrink to 2 in $(( $(date +%s) - s )) s" ||
	fail "live shrink to 2: $out"
echo "$out"
check_kept 2
traffic g2

# --- 5. the journal is closed; detach frees everything
open=$(ctl --json status | jq -r .open_intents)
[ "$open" = 0 ] && ok "no open intent" || fail "open intents: $open"
grep -E "set-vfs-live|live resize|back as" "$LOG" | tail -8
running g1 g2
for g in "${HOLD[@]}"; do
	out=$(ctl detach "$g" --timeout-ms 300000 2>&1) || fail "detach $g: $out"
done
n=$(ctl --json vf list --pf eth0 | jq '[.[] | select(.state != null and .state != "free")] | length')
[ "$n" = 0 ] && ok "every eth0 VF free after detaching" || fail "$n eth0 VFs still held"
[ "${fails:-0}" = 0 ]
