#!/bin/bash
# Lab: SR-IOV inventory and VF lifecycle with libiovm on the real kernel.
# 7 VFs on each emulated 82576 (vfio-pci on one, igbvf on the other), the
# inventory checked against sysfs, bind vfio-pci -> igbvf -> vfio-pci
# verified by the driver links, resize 7 -> 0 -> 3, and the refusals.
set -uo pipefail
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
T=${IOVM_BUILD:?}/src/tools/iovm-sriov/iovm-sriov
[ -x "$T" ] || skip "$T not built"
[ -d /sys/bus/pci/devices/0000:01:00.0 ] || skip "no emulated igb (not in the lab?)"

modprobe vfio-pci && modprobe igbvf || skip "vfio-pci/igbvf modules missing"
# VF MACs set through the PF stick only with the PF up (lab notes).
ip link set eth0 up; ip link set eth1 up

PF0=$(basename "$(readlink /sys/class/net/eth0/device)")
PF1=$(basename "$(readlink /sys/class/net/eth1/device)")

# --- inventory before any VF
out=$("$T" pf-show eth0) || fail "pf-show eth0"
echo "$out"
for kv in "pf=$PF0" "driver=igb" "id=8086:10c9" "vf_device=10ca" "total_vfs=7" "num_vfs=0" \
	  "offset=128" "stride=2"; do
	[[ " $out " == *" $kv "* ]] || fail "pf-show eth0 lacks $kv"
done
[ "$("$T" pf-show "$PF1" | sed 's/ .*//')" = "pf=$PF1" ] || fail "pf-show by address"
[ "$("$T" pf-list | wc -l)" = 2 ] || fail "pf-list should show the 2 igb PFs"

# --- errors, each with its errno
expect 34 "$T" set-vfs eth0 8 vfio          # ERANGE: above sriov_totalvfs
expect 95 "$T" set-vfs 0000:00:1f.0 2        # EOPNOTSUPP: not SR-IOV capable
expect 22 "$T" set-vfs 0000:01:00.9x 2       # EINVAL: malformed address
expect 19 "$T" set-vfs eth9 2                # ENODEV: no such netdev
expect 19 "$T" bind 0000:01:1f.0 vfio-pci    # ENODEV: no such device

# --- 7 VFs on each NIC
expect 0 "$T" set-vfs eth0 7 vfio
expect 0 "$T" set-vfs eth1 7 host
[ "$(cat /sys/bus/pci/devices/$PF0/sriov_numvfs)" = 7 ] || fail "eth0 sriov_numvfs != 7"
[ "$(cat /sys/bus/pci/devices/$PF1/sriov_numvfs)" = 7 ] || fail "eth1 sriov_numvfs != 7"
[ "$(cat /sys/bus/pci/devices/$PF0/sriov_drivers_autoprobe)" = 0 ] || fail "autoprobe not off for vfio"
"$T" vf-list eth0 > "$TMPDIR/vfs0" || fail "vf-list eth0"
"$T" vf-list eth1 > "$TMPDIR/vfs1" || fail "vf-list eth1"
cat "$TMPDIR/vfs0" "$TMPDIR/vfs1"
[ "$(wc -l < "$TMPDIR/vfs0")" = 7 ] || fail "vf-list eth0 should list 7"
[ "$(wc -l < "$TMPDIR/vfs1")" = 7 ] || fail "vf-list eth1 should list 7"
for i in 0 1 2 3 4 5 6; do
	vf=$(basename "$(readlink /sys/bus/pci/devices/$PF0/virtfn$i)")
	grep -q "^vf=$vf pf=$PF0 index=$i driver=vfio-pci netdev=- group=$(basename "$(readlink /sys/bus/pci/devices/$vf/iommu_group)") peers=0" "$TMPDIR/vfs0" \
		|| fail "vf-list eth0 line for $vf does not match sysfs"
	[ "$(drv "$vf")" = vfio-pci ] || fail "$vf not on vfio-pci in sysfs"
	g=$("$T" group-path "$vf") && [ -c "$g" ] || fail "$vf: group path $g is not a char device"
	expect 0 "$T" group-check "$vf" >/dev/null

	vf1=$(basename "$(readlink /sys/bus/pci/devices/$PF1/virtfn$i)")
	nd=$(ls "/sys/bus/pci/devices/$vf1/net" 2>/dev/null)
	[ -n "$nd" ] || fail "$vf1 has no netdev on igbvf"
	grep -q "^vf=$vf1 pf=$PF1 index=$i driver=igbvf netdev=$nd " "$TMPDIR/vfs1" \
		|| fail "vf-list eth1 line for $vf1 does not show igbvf/$nd"
done
# VF offset/stride as the kernel computes them: first VF = PF + 0x80 routing IDs.
[ "$(sed -n 1p "$TMPDIR/vfs0" | sed 's/ .*//')" = "vf=0000:01:10.0" ] || fail "first VF of eth0 not at 01:10.0"

# --- bind vfio-pci -> host driver -> vfio-pci, verified in sysfs
VF=$(basename "$(readlink /sys/bus/pci/devices/$PF0/virtfn0)")
expect 0 "$T" bind "$VF" host
[ "$(drv "$VF")" = igbvf ] || fail "$VF: driver is $(drv "$VF") after bind host"
[ -z "$(cat /sys/bus/pci/devices/$VF/driver_override | sed 's/(null)//')" ] || fail "driver_override left set"
[ "$(cat /sys/bus/pci/devices/$PF0/sriov_drivers_autoprobe)" = 0 ] || fail "autoprobe not restored to 0"
expect 16 "$T" group-check "$VF"             # its own group now has igbvf in it
expect 0 "$T" bind "$VF" host                # no-op, verified
expect 0 "$T" bind "$VF" vfio-pci
[ "$(drv "$VF")" = vfio-pci ] || fail "$VF: driver is $(drv "$VF") after bind vfio-pci"
# A host VF whose netdev is up is in use: binding it away is refused.
VF1=$(basename "$(readlink /sys/bus/pci/devices/$PF1/virtfn0)")
ND1=$(ls /sys/bus/pci/devices/$VF1/net)
ip link set "$ND1" up
expect 16 "$T" bind "$VF1" vfio-pci
expect 16 "$T" set-vfs eth1 3 host
ip link set "$ND1" down
expect 0 "$T" bind "$VF1" vfio-pci
[ "$(drv "$VF1")" = vfio-pci ] || fail "$VF1 not on vfio-pci"
expect 0 "$T" bind "$VF1" host

# --- resize 7 -> 0 -> 3 (the kernel refuses 7 -> 3 directly: -EBUSY)
if echo 3 > /sys/bus/pci/devices/$PF0/sriov_numvfs 2>/dev/null; then
	fail "kernel accepted 7 -> 3 directly (expected EBUSY)"
fi
expect 0 "$T" set-vfs eth0 0
[ "$(cat /sys/bus/pci/devices/$PF0/sriov_numvfs)" = 0 ] || fail "eth0 not at 0 VFs"
[ -z "$(ls -d /sys/bus/pci/devices/$PF0/virtfn* 2>/dev/null)" ] || fail "virtfn links left"
expect 0 "$T" set-vfs eth0 3 vfio
[ "$(cat /sys/bus/pci/devices/$PF0/sriov_numvfs)" = 3 ] || fail "eth0 not at 3 VFs"
[ "$("$T" vf-list eth0 | grep -c 'driver=vfio-pci')" = 3 ] || fail "3 VFs not on vfio-pci"
# 3 -> 5 through 0 in one call, host drivers this time.
expect 0 "$T" set-vfs eth0 5 host
[ "$("$T" vf-list eth0 | grep -c 'driver=igbvf')" = 5 ] || fail "5 VFs not on igbvf"
expect 0 "$T" set-vfs eth0 0
expect 0 "$T" set-vfs eth1 0

if [ "$fails" -gt 0 ]; then echo "$fails failure(s)" >&2; exit 1; fi
echo "all passed"
