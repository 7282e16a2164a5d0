#!/bin/bash
# lab-seconds: 130 (typical on a CI machine; scripts/run-tests starts the longest first)
# Lab smoke test: the emulated host has working SR-IOV, VFIO, QMP hot-plug
# and a cable between its NICs. Uses only the kernel's and QEMU's own
# interfaces (sysfs, QMP, iproute2), so it checks the lab, not iovm.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB_TAG=01-smoke
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
step() { echo "01-smoke: $*" >&2; }

mapfile -t PFS < <(for d in /sys/bus/pci/devices/*; do [ -e "$d/sriov_totalvfs" ] && basename "$d"; done)
[ "${#PFS[@]}" -ge 2 ] || die "expected 2 SR-IOV PFs, found ${#PFS[@]}"
modprobe vfio-pci
modprobe igbvf

vf_of() { basename "$(readlink "/sys/bus/pci/devices/$1/virtfn$2")"; }
bind() { # VF DRIVER
	echo "$2" > "/sys/bus/pci/devices/$1/driver_override"
	echo "$1" > /sys/bus/pci/drivers_probe
	[ "$(basename "$(readlink "/sys/bus/pci/devices/$1/driver")")" = "$2" ] || die "$1 did not bind to $2"
}
netdev_of() { ls "/sys/bus/pci/devices/$1/net/"; }

for pf in "${PFS[@]:0:2}"; do
	dev=/sys/bus/pci/devices/$pf
	[ "$(cat "$dev/sriov_totalvfs")" = 7 ] || die "$pf: sriov_totalvfs is $(cat "$dev/sriov_totalvfs"), want 7"
	ip link set "$(netdev_of "$pf")" up
	echo 0 > "$dev/sriov_drivers_autoprobe"
	echo 0 > "$dev/sriov_numvfs"
	echo 2 > "$dev/sriov_numvfs"
	[ "$(cat "$dev/sriov_numvfs")" = 2 ] || die "$pf: sriov_numvfs did not become 2"
	[ -e "$dev/virtfn1" ] || die "$pf: no virtfn1"
done
step "2 VFs on each of ${PFS[0]} and ${PFS[1]}"

# Hot-plug a VF into a guest and take it back.
VF=$(vf_of "${PFS[0]}" 0)
bind "$VF" vfio-pci
grp=$(basename "$(readlink "/sys/bus/pci/devices/$VF/iommu_group")")
[ -c "/dev/vfio/$grp" ] || die "no /dev/vfio/$grp for $VF"
step "$VF bound to vfio-pci (IOMMU group $grp)"

lab/guest start smoke
trap 'lab/guest stop smoke || true' EXIT
before=$(lab/guest exec smoke -- sh -c 'grep -l 0x10ca /sys/bus/pci/devices/*/device | wc -l')
[ "$before" = 0 ] || die "guest already sees a VF before hot-plug"
lab/guest qmp smoke device_add "{\"driver\":\"vfio-pci\",\"host\":\"$VF\",\"id\":\"vf0\",\"bus\":\"hp1\"}" \
	--timeout 60 || die "device_add of $VF failed"
seen=
for _ in $(seq 1 60); do
	n=$(lab/guest exec smoke -- sh -c 'grep -l 0x10ca /sys/bus/pci/devices/*/device 2>/dev/null | wc -l')
	[ "$n" = 1 ] && { seen=1; break; }
	sleep 1
done
[ -n "$seen" ] || die "the guest never saw the hot-plugged VF"
step "the guest sees the VF"
lab/guest qmp smoke device_del '{"id":"vf0"}' --wait-event DEVICE_DELETED \
	--match path=/machine/peripheral/vf0 --timeout 120 || die "no DEVICE_DELETED for vf0"
n=$(lab/guest exec smoke -- sh -c 'grep -l 0x10ca /sys/bus/pci/devices/*/device 2>/dev/null | wc -l')
[ "$n" = 0 ] || die "the guest still sees the VF after DEVICE_DELETED"
step "device_del answered with DEVICE_DELETED; the VF is gone from the guest"
lab/guest stop smoke
trap - EXIT

# Traffic between a VF of NIC 1 and a VF of NIC 2, each in its own network
# namespace so the kernel cannot short-cut the path.
. tests/lab/lib/vf-traffic.sh
A=$(vf_of "${PFS[0]}" 1)
B=$(vf_of "${PFS[1]}" 1)
for ns in vfa vfb; do ip netns del $ns 2>/dev/null || true; done
trap 'ip netns del vfa 2>/dev/null; ip netns del vfb 2>/dev/null' EXIT
vf_traffic_setup "${PFS[0]}" 1 "${PFS[1]}" 1 vfa vfb 192.0.2.1 192.0.2.2 || die "no traffic between $A and $B"
step "ping $A -> $B works"
ip netns exec vfb iperf3 -s -1 -D -B 192.0.2.2
sleep_until_listening() {
	for _ in $(seq 1 50); do
		grep -q ':5201' < <(ip netns exec vfb ss -ltn) && return 0
		sleep 0.1
	done
	return 1
}
sleep_until_listening || die "iperf3 server did not start"
out=$(ip netns exec vfa iperf3 -c 192.0.2.2 -t 3 -J) || die "iperf3 failed"
bps=$(python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))' <<< "$out")
[ "$bps" -gt 0 ] || die "iperf3 moved no data"
step "iperf3 $A -> $B: $((bps / 1000000)) Mbit/s"
echo "01-smoke: PASS"
