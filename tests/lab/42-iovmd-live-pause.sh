#!/bin/bash
# lab-seconds: 1300 (estimate: four guests, two on the patched QEMU, two resizes; lab 37's shape)
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lab: pf-set-vfs while VMs hold VFs, through iovmd, in pause mode: p1 and
# p2 run on the patched QEMU (qemu/patches/, `lab/guest start --qemu
# patched`), so `--live auto` chooses the VFIO pause (docs/resize.md).
# eth0 has 2 VFs; p1 holds VF 0 (MAC M1), p2 holds VF 1 (MAC M2), each with
# an address that reaches a VF of eth1 (netns srv). Then:
#  1. `pf set-vfs eth0 4` (auto): pause chosen; both keep their VF index,
#     device id and MAC; in each guest the same interface, ifindex and PCI
#     address, no PCIe hot-plug event in its kernel log; both reach the
#     server again with the address they had (nothing reconfigured); once
#     eth0 has carrier again iovmd nudges both (x-vfio-nudge);
#  2. two new VMs p3 and p4 (stock QEMU) get VFs 2 and 3 and reach the
#     server through them: traffic on all four VFs; then they detach;
#  3. `pf set-vfs eth0 2` (auto): the same checks after the shrink;
#  4. no intent open; detaching both frees every VF.
# Four nested guests do not all run at once on the emulated host's CPU:
# as in lab 37, each step runs only the guests it needs.
set -uo pipefail
# shellcheck source=lib/iovmd.sh
. tests/lab/lib/iovmd.sh
[ -d /sys/class/net/eth1/device ] || skip "no second emulated igb"
[ -n "${IOVM_LAB_QEMU_PATCHED:-}" ] && [ -x "$IOVM_LAB_QEMU_PATCHED" ] ||
	skip "no patched QEMU built (lab/iovm-lab build-qemu)"
# shellcheck source=lib/vf-traffic.sh
. tests/lab/lib/vf-traffic.sh

W=$TMPDIR/live-pause
mkdir -p "$W"
SOCK=$W/iovm.sock
LOG=$W/iovmd.log
DPID=
GUESTS=(p1 p2 p3 p4)
HOLD=(p1 p2)
declare -A MAC=([p1]=02:42:00:00:00:01 [p2]=02:42:00:00:00:02 [p3]=02:42:00:00:00:03 [p4]=02:42:00:00:00:04)
declare -A GIP=([p1]=10.42.0.11 [p2]=10.42.0.12 [p3]=10.42.0.13 [p4]=10.42.0.14)
declare -A IDX=([p1]=0 [p2]=1 [p3]=2 [p4]=3)
declare -A IFC STATE
SRV_IP=10.42.0.1
ctl() { "$CTL" --socket "$SOCK" --timeout 900 "$@"; }
cleanup() {
	[ -n "$DPID" ] && { kill "$DPID"; wait "$DPID"; } 2>/dev/null
	cp "$LOG" /run/iovm-lab/share/42-iovmd.log 2>/dev/null
	for g in "${GUESTS[@]}"; do
		cp "/run/iovm-lab/guests/$g/console.log" "/run/iovm-lab/share/42-$g-console.log" 2>/dev/null
		$G stop "$g" >/dev/null 2>&1
	done
}
trap cleanup EXIT

numvfs() { cat /sys/class/net/eth0/device/sriov_numvfs; }
vfaddr() { pf_vf_addr eth0 "$1"; }
devid_of() { pf_vf_devid eth0 "$1"; }
vfmac() { pf_vf_mac eth0 "$1"; }
UP=("${GUESTS[@]}")   # the guests started and not stopped yet
running() { guests_only "${UP[*]}" "$@" || die "pausing/resuming guests"; }
# if_state G: "IFINDEX PCI-ADDRESS HOTPLUG-EVENTS" of G's VF interface.
if_state() {
	$G exec --timeout 120 "$1" -- sh -c "read i < /sys/class/net/${IFC[$1]}/ifindex
		d=\$(readlink /sys/class/net/${IFC[$1]}/device)
		echo \$i \${d##*/} \$(dmesg | grep -ciE 'pciehp.*(link down|card not present|removed)')" 2>/dev/null | tr -d '\r'
}
reaches() { # G: the guest pings the server with the address it has
	$G exec --timeout 300 "$1" -- sh -c "for i in 1 2 3 4 5 6; do ping -c 2 -W 5 $SRV_IP >/dev/null && exit 0; done; exit 1"
}

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
PF1=$(basename "$(readlink /sys/class/net/eth1/device)")
SRVDEV=$(_vft_up "$PF1" 0 srv "$SRV_IP/24") || die "server VF setup"

# --- p1 and p2 on the patched QEMU, p3 and p4 on Debian's, all paused
# until a step needs them; iovmd; VF 0 to p1 and VF 1 to p2
for g in "${HOLD[@]}"; do
	$G start "$g" --qemu patched --timeout 900 || die "$g did not start on the patched QEMU"
	grep -q '"x-vfio-pause"' < <($G qmp "$g" query-commands) || die "$g's QEMU has no x-vfio-pause"
	$G qmp "$g" stop >/dev/null || die "$g: QMP stop"
done
guests_start_paused p3 p4 || die "starting p3 and p4 ($(free -m | sed -n 2p))"
"$D" --socket "$SOCK" --state "$W/iovm.db" --refresh-interval 1000 --attach-timeout 180000 \
	--detach-timeout 300000 --log-level debug > "$LOG" 2>&1 &
DPID=$!
iovmd_wait "$DPID" "$LOG" || exit 1
out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || die "set-vfs 2: $out"
for g in "${GUESTS[@]}"; do
	ctl vm add "$g" --qmp "$(guest_qmp "$g")" >/dev/null || die "vm add $g"
done
# take G: G, running alone, gets eth0/IDX with its MAC and reaches the
# server through it.
take() {
	local g=$1
	running "$g"
	out=$(ctl attach "$g" --vf "eth0/${IDX[$g]}" --mac "${MAC[$g]}" 2>&1) || die "attach $g: $out"
	guest_wait_vfs "$g" 1 300 || die "$g does not see its VF"
	guest_vf_net "$g" exclusive "$(vfaddr "${IDX[$g]}")" "${GIP[$g]}" "${MAC[$g]}" "$SRV_IP" srv "$SRVDEV" ||
		die "$g: no traffic through its VF eth0/${IDX[$g]}"
	IFC[$g]=$GUEST_NET_IF
	STATE[$g]=$(if_state "$g")
	ok "$g holds eth0/${IDX[$g]} as ${IFC[$g]} and reaches $SRV_IP (ifindex, PCI address, hot-plug events: ${STATE[$g]})"
}
for g in "${HOLD[@]}"; do take "$g"; done

# resize N: a live resize with auto, which must choose the pause, and the
# checks of what each guest keeps.
resize() {
	local n=$1 g st modes i n0
	running "${HOLD[@]}"
	n0=$(wc -l < "$LOG")
	out=$(ctl --json pf set-vfs eth0 "$n" 2>"$W/err") && ok "live resize to $n VFs (auto)" ||
		fail "live resize to $n: $out $(cat "$W/err")"
	# once eth0 had carrier again, each paused guest was nudged to look at
	# its link (x-vfio-nudge)
	for g in "${HOLD[@]}"; do
		grep -q "live resize: vm $g: device $(devid_of "${IDX[$g]}") nudged" < <(tail -n +"$((n0 + 1))" "$LOG") &&
			ok "$g nudged once eth0 had carrier" || fail "$g not nudged (iovmd's log: $(tail -n +"$((n0 + 1))" "$LOG" | grep -E 'carrier|nudge' | tail -n 3))"
	done
	modes=$(printf '%s\n' "$out" | jq -r '[.live[]? | "\(.vm)=\(.mode)"] | sort | join(" ")')
	[ "$modes" = "p1=pause p2=pause" ] && ok "auto chose the pause for both: $modes" || fail "modes chosen: '$modes'"
	[ "$(numvfs)" = "$n" ] && ok "eth0 has $n VFs" || fail "eth0 has $(numvfs) VFs, want $n"
	# the VFs nobody holds were bound to the PF's driver kind (host)
	# after the held ones were back
	for ((i = 2; i < n; i++)); do
		[ "$(drv "$(vfaddr "$i")")" = igbvf ] && ok "eth0 vf $i on igbvf" ||
			fail "eth0 vf $i on '$(drv "$(vfaddr "$i")")', want igbvf"
	done
	for g in "${HOLD[@]}"; do
		st=$(ctl --json vf show "eth0/${IDX[$g]}" | jq -r '"\(.vm) \(.state)"')
		[ "$st" = "$g attached" ] && ok "$g keeps eth0/${IDX[$g]}" || fail "eth0/${IDX[$g]} after the resize: $st"
		[ "$($G qmp "$g" qom-get "{\"path\":\"/machine/peripheral/$(devid_of "${IDX[$g]}")\",\"property\":\"x-paused\"}")" = false ] &&
			ok "$g's $(devid_of "${IDX[$g]}") is not paused" || fail "$g's device is still paused or gone"
		[ "$(vfmac "${IDX[$g]}")" = "${MAC[$g]}" ] && ok "eth0 vf ${IDX[$g]} keeps MAC ${MAC[$g]}" ||
			fail "eth0 vf ${IDX[$g]} MAC $(vfmac "${IDX[$g]}"), want ${MAC[$g]}"
		st=$(if_state "$g")
		[ -n "$st" ] && [ "$st" = "${STATE[$g]}" ] &&
			ok "$g: same interface ${IFC[$g]}, ifindex, PCI address, no hot-plug event ($st)" ||
			fail "$g: interface state '$st', before '${STATE[$g]}'"
		reaches "$g" && ok "$g reaches $SRV_IP again, its address untouched" || fail "$g: no traffic after the resize"
	done
}
resize 4
# the grown VFs to two new VMs; with p1 and p2 checked above, traffic has
# gone through all four
for g in p3 p4; do take "$g"; done
for g in p3 p4; do
	running "$g"
	out=$(ctl detach "$g" --timeout-ms 300000 2>&1) && ok "$g detached" || fail "detach $g: $out"
	ctl vm remove "$g" >/dev/null 2>&1
done
for g in p3 p4; do $G stop "$g" >/dev/null 2>&1; done
UP=("${HOLD[@]}")
resize 2

open=$(ctl --json status | jq -r .open_intents)
[ "$open" = 0 ] && ok "no open intent" || fail "open intents: $open"
running "${HOLD[@]}"
for g in "${HOLD[@]}"; do
	out=$(ctl detach "$g" --timeout-ms 300000 2>&1) || fail "detach $g: $out"
done
n=$(ctl --json vf list --pf eth0 | jq '[.[] | select(.state != null and .state != "free")] | length')
[ "$n" = 0 ] && ok "every eth0 VF free after detaching" || fail "$n eth0 VFs still held"
[ "${fails:-0}" = 0 ]
