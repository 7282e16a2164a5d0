#!/bin/bash
# lab-seconds: 720 (typical on a CI machine; scripts/run-tests starts the longest first)
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lab: iovmd's throughput sampling from the guest agent and rebalancing,
# with two real guests.
# 1. Counters: igb keeps no per-VF counters on the PF side (IFLA_VF_STATS
#    are zeros), so iovmd asks the guest's qemu-ga for the counters of the
#    interface with the VF's administrative MAC. r1 (high, registered with
#    --qga) gets VF 0 exclusively with --mac; r1 brings the igbvf interface
#    up and sends (ARP requests to an absent neighbour leave through the
#    VF); `vf show` must report bytes and a non-zero throughput, and iovmd's
#    log must show the counts came from the guest agent.
# 2. Rebalancing (--rebalance): r2 (normal) shares VF 1 (macvtap,
#    virtio-net in the guest). When r1 lets go of VF 0, iovmd moves r2 onto
#    it: r2's macvtap NIC is unplugged and VF 0 is attached to r2
#    exclusively, VF 1 goes back to free. Checked from iovmd's API, its
#    events, the host (no macvtap left) and inside r2.
set -uo pipefail
LAB_TOOLS=socat
LAB_MODULES=macvtap
# shellcheck source=lib/iovmd.sh
. tests/lab/lib/iovmd.sh
W=$TMPDIR/counters-rebalance
mkdir -p "$W"
SOCK=$W/iovm.sock
LOG=$W/iovmd.log
MAC=02:33:00:00:00:01
DPID=
EVPID=
ctl() { "$CTL" --socket "$SOCK" --timeout 300 "$@"; }
cleanup() {
	[ -n "$EVPID" ] && kill "$EVPID" 2>/dev/null
	[ -n "$DPID" ] && { kill "$DPID"; wait "$DPID"; } 2>/dev/null
	cp "$LOG" /run/iovm-lab/share/33-iovmd.log 2>/dev/null
	for g in r1 r2; do $G stop "$g" >/dev/null 2>&1; done
}
trap cleanup EXIT

# PCI functions in guest g with vendor:device ID (0x8086:0x10ca igbvf,
# 0x1af4:0x1000 or 0x1af4:0x1041 virtio-net): count_dev G PATTERN, and
# wait_dev G PATTERN COUNT WHAT (up to 600 s).
count_dev() { guest_pci_count "$@"; }
dev_is() { [ "$(guest_pci_count "$1" "$2")" = "$3" ]; }
wait_dev() {
	guest_wait 600 dev_is "$1" "$2" "$3" && return 0
	echo "$4: guest $1 shows $(count_dev "$1" "$2"), not $3" >&2
	return 1
}
VFDEV=0x8086:0x10ca
VIRTIO=0x1af4:0x1000\|0x1af4:0x1041

ip link set eth0 up
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
for g in r1 r2; do
	$G start "$g" --timeout 600 || die "guest $g did not start"
done
"$D" --socket "$SOCK" --state "$W/iovm.db" --rebalance --sample-interval 500 --window 4000 --refresh-interval 1000 \
	--attach-timeout 120000 --detach-timeout 120000 --log-level debug > "$LOG" 2>&1 &
DPID=$!
for _ in $(seq 300); do ctl status >/dev/null 2>&1 && break; sleep 0.2; done
ctl status >/dev/null || die "iovmd does not answer: $(tail -5 "$LOG")"
# Every client gets the events: one that only listens.
socat -u "UNIX-CONNECT:$SOCK" STDOUT > "$W/events" 2>&1 &
EVPID=$!
out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || die "set-vfs: $out"
ctl vm add r1 --qmp /run/iovm-lab/guests/r1/qmp.sock --qga /run/iovm-lab/guests/r1/qga.sock --priority high \
	>/dev/null || fail "vm add r1 --qga"
[ "$(ctl --json vm list | jq -r '.[] | select(.name == "r1") | .qga')" = /run/iovm-lab/guests/r1/qga.sock ] &&
	ok "the VM's guest agent is recorded" || fail "vm list: $(ctl --json vm list)"
ctl vm add r2 --qmp /run/iovm-lab/guests/r2/qmp.sock --priority normal >/dev/null || fail "vm add r2"
virtio0=$(count_dev r2 "$VIRTIO")
echo "r2 has $virtio0 virtio-net function(s) of its own"

out=$(ctl --json attach r1 --vf eth0/0 --mode exclusive --mac "$MAC" 2>"$W/err") ||
	die "attach r1: $out $(cat "$W/err")"
VF0=$(jq -r .vf <<<"$out")
out=$(ctl --json attach r2 --pf eth0 --mode shared 2>"$W/err") ||
	die "attach r2 shared: $out $(cat "$W/err")"
VF1=$(jq -r .vf <<<"$out")
[ "$(jq -r .mode <<<"$out")" = shared ] && [ "$VF1" != "$VF0" ] && ok "r1 holds $VF0, r2 shares $VF1" ||
	fail "r2's attach: $out"
wait_dev r2 "$VIRTIO" $((virtio0 + 1)) "the shared VF's virtio-net NIC" && ok "r2 sees its virtio-net NIC" ||
	fail "r2 does not see the shared VF's NIC"
[ "$(ip -o link show type macvtap | wc -l)" = 1 ] && ok "one macvtap on the host" ||
	fail "macvtaps: $(ip -o link show type macvtap)"
wait_dev r1 "$VFDEV" 1 "r1's VF" || fail "r1 does not see its VF"

# --- 1. counters from r1's guest agent
# The guest's igbvf interface: by the MAC the PF set, else by device id (a
# probe under load can miss the PF's MAC; asking for it again is allowed).
IF=
deadline=$(( $(date +%s) + 300 ))
while [ -z "$IF" ] && [ "$(date +%s)" -lt "$deadline" ]; do
	IF=$(guest_if_by_dev r1 0x8086:0x10ca)
	[ -n "$IF" ] || sleep "${GUEST_POLL_SECS:-3}"
done
[ -n "$IF" ] || die "the guest shows no igbvf interface"
$G exec r1 -- sh -c "ip link set $IF address $MAC; ip addr add 10.33.0.2/24 dev $IF; ip link set $IF up" ||
	fail "configuring $IF in the guest"
ok "guest interface $IF up with $MAC"
# Send in the background of a short command, so the agent stays free for
# iovmd's questions, and for as long as the wait below may last: a count
# needs two answers from the agent with traffic between them, and under
# load (a CI machine running two labs) one answer can take many seconds.
$G exec r1 -- sh -c "ping -i 0.2 -w 900 10.33.0.1 > /dev/null 2>&1 &" || fail "starting the sender"

best=0 total=0
t0=$(date +%s)
deadline=$((t0 + 480))
while [ "$(date +%s)" -lt "$deadline" ]; do
	sleep 3
	v=$(ctl --json vf show "$VF0")
	t=$(jq .throughput_bps <<<"$v"); total=$(jq .total_bytes <<<"$v")
	[ "${t:-0}" -gt "$best" ] && best=$t
	[ "$best" -gt 0 ] && [ "${total:-0}" -gt 0 ] && break
done
echo "vf show $VF0: best throughput ${best} bit/s, total ${total} bytes, after $(( $(date +%s) - t0 )) s"
[ "$best" -gt 0 ] && ok "iovmd measured the exclusive VF's throughput ($best bit/s)" ||
	fail "no throughput for the exclusive VF ($(grep -i 'guest agent' "$LOG" | tail -3))"
[ "${total:-0}" -gt 0 ] && ok "and its byte count ($total)" || fail "no bytes counted for $VF0"
# The guest's own count, for comparison, and the PF's per-VF counters.
$G exec r1 -- sh -c "cat /sys/class/net/$IF/statistics/tx_bytes /sys/class/net/$IF/statistics/rx_bytes" |
	tr '\r\n' '  ' | sed 's/^/guest tx rx bytes: /'; echo
pf=$(ip -s link show eth0 | grep -A4 "vf 0 " | tr '\n' ' ')
echo "PF's view of vf 0: $pf"
grep -q "vf $VF0: [0-9]* bytes from the guest agent" "$LOG" &&
	ok "the counts came from the guest agent: $(grep "bytes from the guest agent" "$LOG" | tail -1)" ||
	fail "iovmd's log shows no count from the guest agent"
$G exec r1 -- pkill ping >/dev/null 2>&1 || true


# --- 2. rebalancing

# r1 lets go: VF 0 is free, and r2 (the only sharer) moves onto it.
out=$(ctl detach r1 2>&1) && ok "r1 detached" || fail "detach r1: $out"
moved=
for _ in $(seq 300); do
	v=$(ctl --json vf show "$VF0")
	if [ "$(jq -r '.vm + " " + .mode' <<<"$v")" = "r2 exclusive" ] &&
	   [ "$(ctl --json vf show "$VF1" | jq -r .state)" = free ]; then
		moved=1; break
	fi
	sleep 1
done
ctl vf list --pf eth0
[ -n "$moved" ] && ok "iovmd moved r2 onto $VF0 exclusively; $VF1 is free" ||
	fail "no move: $(grep -i 'rebalance' "$LOG" | tail -5)"
grep "rebalance" "$LOG"
for _ in $(seq 30); do grep -q VF_REBALANCED "$W/events" && break; sleep 1; done
grep -q "\"VF_REBALANCED\".*\"vm\":\"r2\"" "$W/events" && ok "VF_REBALANCED event: $(grep VF_REBALANCED "$W/events")" ||
	fail "no VF_REBALANCED event for r2: $(tail -5 "$W/events")"
[ "$(ip -o link show type macvtap | wc -l)" = 0 ] && ok "no macvtap left on the host" ||
	fail "macvtaps left: $(ip -o link show type macvtap)"
wait_dev r2 "$VFDEV" 1 "the VF moved to r2" && ok "r2 sees the VF" || fail "r2 does not see $VF0"
wait_dev r2 "$VIRTIO" "$virtio0" "the shared NIC's removal" && ok "r2's shared virtio-net NIC is gone" ||
	fail "r2 still has the shared VF's NIC"
[ "$(readlink "/sys/bus/pci/devices/$VF0/driver" | xargs basename)" = vfio-pci ] &&
	ok "$VF0 on vfio-pci" || fail "$VF0 driver: $(readlink "/sys/bus/pci/devices/$VF0/driver")"

out=$(ctl detach r2 2>&1) && ok "r2 detached" || fail "detach r2: $out"
v=$(ctl --json vf list --pf eth0)
bad=$(jq -r '.[] | select(.state != "free" or .driver != "igbvf") | "\(.vf) \(.state) \(.driver)"' <<<"$v")
[ -z "$bad" ] && ok "all VFs free on igbvf" || fail "after detach: $bad"
[ "$(ctl --json status | jq '.assignments, .open_intents' | tr '\n' ' ')" = "0 0 " ] ||
	fail "status: $(ctl --json status)"
kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; DPID=
[ $fails = 0 ] && echo "all ok" || echo "$fails failures" >&2
exit $((fails > 0))
