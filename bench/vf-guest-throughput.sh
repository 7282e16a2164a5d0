#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Benchmark (the scale for the published allocation tables): TCP throughput
# through an igb VF from a nested guest that holds it by passthrough
# (vfio-pci, attached with iovm-vm), against the same transfer from the
# emulated host's own igbvf netdev of another VF of the same PF, in the same
# run (host, guest, host again). The sink is a VF of eth1 in netns srv,
# across the emulated cable; it counts the bytes of one connection over a
# SECS-second window that starts with the first byte. The sender is busybox
# `nc < /dev/zero` on both sides.
#   IOVM_BUILD=$PWD/build lab/iovm-lab run -- bench/vf-guest-throughput.sh
# (IOVM_BENCH_SECS, default 20). Prints Mbit/s per transfer and the ratio
# guest/host.
set -uo pipefail
B=${IOVM_BUILD:?}
VM=$B/src/tools/iovm-vm/iovm-vm
G=lab/guest
[ -x "$VM" ] || { echo "skip: iovm-vm not built" >&2; exit 77; }
[ -d /sys/class/net/eth0 ] && [ -d /sys/class/net/eth1 ] || { echo "skip: needs the lab's two igb" >&2; exit 77; }
modprobe vfio-pci && modprobe igbvf || { echo "skip: vfio-pci/igbvf missing" >&2; exit 77; }
# shellcheck source=../tests/lab/lib/vf-traffic.sh
. tests/lab/lib/vf-traffic.sh

SECS=${IOVM_BENCH_SECS:-20}
SRV_IP=10.80.0.1 HOST_IP=10.80.0.2 GUEST_IP=10.80.0.3 GMAC=02:80:00:00:00:03
QMP=/run/iovm-lab/guests/b1/qmp.sock
W=$TMPDIR/vfbench
mkdir -p "$W"
cleanup() { $G stop b1 >/dev/null 2>&1; }
trap cleanup EXIT
die() { echo "vf-guest-throughput: $*" >&2; exit 1; }

for pf in eth0 eth1; do
	d=/sys/class/net/$pf/device
	echo 0 > "$d/sriov_drivers_autoprobe"
	echo 0 > "$d/sriov_numvfs"
	echo 2 > "$d/sriov_numvfs" || die "$pf: cannot create VFs"
done
PF0=$(basename "$(readlink /sys/class/net/eth0/device)")
PF1=$(basename "$(readlink /sys/class/net/eth1/device)")
VFG=$(basename "$(readlink "/sys/bus/pci/devices/$PF0/virtfn1")")
echo "setting up the host's VF path"
vf_traffic_setup "$PF0" 0 "$PF1" 0 cli srv "$HOST_IP/24" "$SRV_IP/24" || die "no traffic between the host's VFs"
SRV_DEV=$VF_TRAFFIC_DEV_B

cat > "$W/sink.py" <<'EOF'
import socket, sys, threading, time
ip, secs, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, 5201)); s.listen(1)
open(out + ".ready", "w").close()
s.settimeout(secs + 300)           # a sender that never comes: exit, write nothing
c, peer = s.accept()
c.settimeout(secs + 300)
n = [0]
def serve():
    while True:
        try:
            b = c.recv(1 << 16)
        except OSError:
            break
        if not b:
            break
        n[0] += len(b)
t = threading.Thread(target=serve); t.start()
deadline = time.monotonic() + secs + 300
while not n[0] and t.is_alive() and time.monotonic() < deadline:
    time.sleep(0.01)
if not n[0]:
    sys.exit(1)
t0, b0 = time.monotonic(), n[0]
time.sleep(secs)
t1, b1 = time.monotonic(), n[0]
c.shutdown(socket.SHUT_RDWR); t.join(); c.close()
with open(out, "w") as f:
    f.write(f"{peer[0]} {b1 - b0} {t1 - t0:.3f}\n")
EOF

# measure NAME CMD...: one transfer into the sink; prints and records Mbit/s.
declare -A MBIT
measure() {
	local name=$1; shift
	: > "$W/sink.out"
	rm -f "$W/sink.out.ready"
	echo "$name: sending for ${SECS} s"
	ip netns exec srv python3 "$W/sink.py" "$SRV_IP" "$SECS" "$W/sink.out" & local sink=$!
	for _ in $(seq 600); do [ -e "$W/sink.out.ready" ] && break; sleep 0.1; done
	"$@" > "$W/$name.send" 2>&1
	echo "$name: sender exited ($(head -c 300 "$W/$name.send"))"
	# The sink ends its window itself; one whose sender never came is stopped.
	for _ in $(seq 300); do kill -0 "$sink" 2>/dev/null || break; sleep 0.1; done
	kill "$sink" 2>/dev/null
	wait "$sink"
	read -r peer bytes secs < "$W/sink.out" || die "$name: the sink saw nothing ($(cat "$W/$name.send"))"
	MBIT[$name]=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.3f", b * 8 / s / 1e6 }')
	echo "$name: $bytes bytes in ${secs} s from $peer = ${MBIT[$name]} Mbit/s"
}

measure host1 ip netns exec cli timeout $((SECS + 60)) busybox nc "$SRV_IP" 5201 < /dev/zero

# The guest's VF: MAC through the PF, vfio-pci, into the guest.
ip link set eth0 vf 1 mac "$GMAC" || die "setting vf 1 MAC"
echo vfio-pci > "/sys/bus/pci/devices/$VFG/driver_override"
echo "$VFG" > /sys/bus/pci/drivers_probe
$G start b1 || die "guest did not start"
"$VM" --pool "$W/pool.json" attach --qmp "$QMP" --vm b1 --vf "$VFG" --mac "$GMAC" --timeout-ms 120000 || die "attach"
GIF=
for _ in $(seq 150); do
	GIF=$($G exec b1 -- sh -c "for i in /sys/class/net/*; do
		[ \"\$(cat \$i/address)\" = $GMAC ] && { basename \$i; exit 0; }; done; true" 2>/dev/null | tr -d '\r')
	[ -n "$GIF" ] && break
	sleep 2
done
[ -n "$GIF" ] || die "the guest shows no interface with $GMAC"
$G exec b1 -- sh -c "ip addr add $GUEST_IP/24 dev $GIF && ip link set $GIF up" || die "configuring $GIF"
pinged=
for _ in 1 2 3 4 5; do
	$G exec --timeout 120 b1 -- ping -c 2 -W 10 "$SRV_IP" >/dev/null 2>&1 && { pinged=1; break; }
done
[ -n "$pinged" ] || die "the guest cannot ping the sink"
# Fixed neighbour entries both ways: with round trips of seconds an entry
# gone stale may not be re-resolved in time (busybox ip has no "neigh
# replace"; its arp -s makes a permanent entry).
SRV_MAC=$(ip netns exec srv cat "/sys/class/net/$SRV_DEV/address")
$G exec --timeout 120 b1 -- arp -i "$GIF" -s "$SRV_IP" "$SRV_MAC" || die "pinning the sink's neighbour entry"
ip -n srv neigh replace "$GUEST_IP" lladdr "$GMAC" dev "$SRV_DEV" nud permanent
measure guest $G exec --timeout $((SECS + 300)) b1 -- sh -c "timeout $((SECS + 240)) nc $SRV_IP 5201 < /dev/zero; true"
"$VM" --pool "$W/pool.json" detach --qmp "$QMP" --vm b1 --vf "$VFG" --timeout-ms 120000 >/dev/null ||
	echo "detach failed" >&2
# The second baseline without the nested guest running, like the first.
$G stop b1 >/dev/null 2>&1

measure host2 ip netns exec cli timeout $((SECS + 60)) busybox nc "$SRV_IP" 5201 < /dev/zero
awk -v h1="${MBIT[host1]}" -v h2="${MBIT[host2]}" -v g="${MBIT[guest]}" -v s="$SECS" 'BEGIN {
	h = (h1 + h2) / 2
	printf "host VF (igbvf in the emulated host), mean of two: %.3f Mbit/s\n", h
	printf "guest VF (passthrough into a nested guest):       %.3f Mbit/s\n", g
	printf "ratio guest/host = %.4f (%d s windows)\n", (h > 0 ? g / h : 0), s }'
