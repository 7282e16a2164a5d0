#!/bin/bash
# lab-seconds: 420 (typical on a CI machine; scripts/run-tests starts the longest first)
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lab: an exclusive VF's throughput from the guest agent (issue 6, sampling).
# igb keeps no per-VF counters on the PF side (IFLA_VF_STATS are zeros), so
# iovmd asks the guest's qemu-ga for the counters of the interface with the
# VF's administrative MAC. One guest registered with --qga gets a VF with
# --mac; the guest brings the igbvf interface up and sends (ARP requests to
# an absent neighbour are enough: they leave through the VF); `vf show` must
# then report bytes and a non-zero throughput for the VF, and iovmd's log
# must show the counts came from the guest agent (not from the PF).
set -uo pipefail
B=${IOVM_BUILD:?}
D=$B/src/iovmd/iovmd
CTL=$B/src/iovmctl/iovmctl
G=lab/guest
[ -x "$D" ] && [ -x "$CTL" ] || { echo "skip: iovmd/iovmctl not built" >&2; exit 77; }
[ -d /sys/class/net/eth0 ] || { echo "skip: no emulated igb (not in the lab?)" >&2; exit 77; }
[ -x "$G" ] || { echo "skip: no lab/guest" >&2; exit 77; }
command -v jq >/dev/null || { echo "skip: no jq" >&2; exit 77; }
modprobe vfio-pci && modprobe igbvf || { echo "skip: vfio-pci/igbvf modules missing" >&2; exit 77; }

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
W=$TMPDIR/counters
mkdir -p "$W"
SOCK=$W/iovm.sock
LOG=$W/iovmd.log
MAC=02:33:00:00:00:01
DPID=
ctl() { "$CTL" --socket "$SOCK" --timeout 240 "$@"; }
cleanup() {
	[ -n "$DPID" ] && { kill "$DPID"; wait "$DPID"; } 2>/dev/null
	cp "$LOG" /run/iovm-lab/share/33-iovmd.log 2>/dev/null
	cp /run/iovm-lab/guests/c1/console.log /run/iovm-lab/share/33-c1-console.log 2>/dev/null
	$G stop c1 >/dev/null 2>&1
}
trap cleanup EXIT

ip link set eth0 up
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
$G start c1 || { fail "guest did not start"; exit 1; }
"$D" --socket "$SOCK" --state "$W/iovm.db" --sample-interval 500 --window 4000 --refresh-interval 1000 \
	--attach-timeout 120000 --log-level debug > "$LOG" 2>&1 &
DPID=$!
for _ in $(seq 300); do ctl status >/dev/null 2>&1 && break; sleep 0.2; done
ctl status >/dev/null || { fail "iovmd does not answer: $(tail -5 "$LOG")"; exit 1; }
out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || { fail "set-vfs: $out"; exit 1; }
ctl vm add c1 --qmp /run/iovm-lab/guests/c1/qmp.sock --qga /run/iovm-lab/guests/c1/qga.sock >/dev/null ||
	fail "vm add c1 --qga"
[ "$(ctl --json vm list | jq -r '.[] | select(.name == "c1") | .qga')" = /run/iovm-lab/guests/c1/qga.sock ] &&
	ok "the VM's guest agent is recorded" || fail "vm list: $(ctl --json vm list)"
out=$(ctl --json attach c1 --vf eth0/0 --mode exclusive --mac "$MAC" 2>"$W/err") ||
	{ fail "attach: $out $(cat "$W/err")"; exit 1; }
VF=$(jq -r .vf <<<"$out")
ok "attached $VF with MAC $MAC"

# The guest's igbvf interface: by the MAC the PF set, else by device id (a
# probe under load can miss the PF's MAC; asking for it again is allowed).
IF=
deadline=$(( $(date +%s) + 300 ))
while [ -z "$IF" ] && [ "$(date +%s)" -lt "$deadline" ]; do
	IF=$($G exec c1 -- sh -c "for i in /sys/class/net/*; do
		[ \"\$(cat \$i/device/device 2>/dev/null)\" = 0x10ca ] && { basename \$i; exit 0; }; done; true" \
		2>/dev/null | tr -d '\r')
	[ -n "$IF" ] || sleep 2
done
[ -n "$IF" ] || { fail "the guest shows no igbvf interface"; exit 1; }
$G exec c1 -- sh -c "ip link set $IF address $MAC; ip addr add 10.33.0.2/24 dev $IF; ip link set $IF up" ||
	fail "configuring $IF in the guest"
ok "guest interface $IF up with $MAC"
# Send for a while in the background of a short command: the agent stays
# free for iovmd's questions.
$G exec c1 -- sh -c "ping -c 400 -i 0.2 10.33.0.1 > /dev/null 2>&1 &" || fail "starting the sender"

best=0 total=0
for _ in $(seq 30); do
	sleep 3
	v=$(ctl --json vf show "$VF")
	t=$(jq .throughput_bps <<<"$v"); total=$(jq .total_bytes <<<"$v")
	[ "${t:-0}" -gt "$best" ] && best=$t
	[ "$best" -gt 0 ] && [ "${total:-0}" -gt 0 ] && break
done
echo "vf show $VF: best throughput ${best} bit/s, total ${total} bytes"
[ "$best" -gt 0 ] && ok "iovmd measured the exclusive VF's throughput ($best bit/s)" ||
	fail "no throughput for the exclusive VF ($(grep -i 'guest agent' "$LOG" | tail -3))"
[ "${total:-0}" -gt 0 ] && ok "and its byte count ($total)" || fail "no bytes counted for $VF"
# The guest's own count, for comparison, and the PF's per-VF counters.
$G exec c1 -- sh -c "cat /sys/class/net/$IF/statistics/tx_bytes /sys/class/net/$IF/statistics/rx_bytes" |
	tr '\r\n' '  ' | sed 's/^/guest tx rx bytes: /'; echo
pf=$(ip -s link show eth0 | grep -A4 "vf 0 " | tr '\n' ' ')
echo "PF's view of vf 0: $pf"
grep -q "vf $VF: [0-9]* bytes from the guest agent" "$LOG" &&
	ok "the counts came from the guest agent: $(grep "bytes from the guest agent" "$LOG" | tail -1)" ||
	fail "iovmd's log shows no count from the guest agent"

out=$(ctl detach c1 --timeout-ms 120000 2>&1) && ok "detach" || fail "detach: $out"
[ $fails = 0 ] && echo "all ok" || echo "$fails failures" >&2
exit $((fails > 0))
