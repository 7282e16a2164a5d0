#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds a large fixture sysfs + procfs tree under DEST for bench/api-bench.py:
# PFS igb PFs (default 4), VFS_PER_PF VFs each (default 64, so 256 VFs),
# shaped like tests/unit/fixtures/make-sysfs.sh (same helpers, relative
# symlinks): DEST/sys and DEST/proc. The unit-test fixture stays as it is.
#
#   0000:00:01.0            root port, pcieport, group 1
#   0000:0P:00.0            PF igb ethP-1 (up), total = VFS_PER_PF, group 10+P
#     virtfnI 0000:(0x40+P):(0x10+I/8).(I%8)
#                            vfio-pci for even I, unbound for odd I; own group
#
# usage: make-big-sysfs.sh DEST [PFS [VFS_PER_PF]]
set -euo pipefail
DEST=${1:?usage: make-big-sysfs.sh DEST [PFS [VFS_PER_PF]]}
PFS=${2:-4}
PER=${3:-64}
if [ "$PFS" -gt 9 ] || [ "$PER" -gt 256 ]; then
	echo "make-big-sysfs.sh: at most 9 PFs and 256 VFs per PF" >&2
	exit 2
fi
S=$DEST/sys
mkdir -p "$S/bus/pci/devices" "$S/kernel/iommu_groups" "$S/class/net" "$DEST/proc/self"
: > "$S/bus/pci/drivers_probe"
for d in igb igbvf vfio-pci pcieport; do
	mkdir -p "$S/bus/pci/drivers/$d"
	: > "$S/bus/pci/drivers/$d/bind"
	: > "$S/bus/pci/drivers/$d/unbind"
done

# dev PARENT_DIR ADDR VENDOR DEVICE DRIVER GROUP
dev() {
	local dir=$S/devices/$1/$2
	mkdir -p "$dir"
	echo "$3" > "$dir/vendor"
	echo "$4" > "$dir/device"
	echo -1 > "$dir/numa_node"
	echo "(null)" > "$dir/driver_override"
	ln -sr "$dir" "$S/bus/pci/devices/$2"
	if [ -n "$5" ]; then ln -sr "$S/bus/pci/drivers/$5" "$dir/driver"; fi
	mkdir -p "$S/kernel/iommu_groups/$6/devices"
	ln -sr "$S/kernel/iommu_groups/$6" "$dir/iommu_group"
	ln -sr "$dir" "$S/kernel/iommu_groups/$6/devices/$2"
}

RP=pci0000:00/0000:00:01.0
dev pci0000:00 0000:00:01.0 0x8086 0x29c0 pcieport 1
group=100
for p in $(seq 1 "$PFS"); do
	addr=$(printf '0000:%02x:00.0' "$p")
	dev "$RP" "$addr" 0x8086 0x10c9 igb $((10 + p))
	pf=$S/devices/$RP/$addr
	echo "$PER" > "$pf/sriov_totalvfs"
	echo "$PER" > "$pf/sriov_numvfs"
	echo 128 > "$pf/sriov_offset"
	echo 2 > "$pf/sriov_stride"
	echo 10ca > "$pf/sriov_vf_device"
	echo 0 > "$pf/sriov_drivers_autoprobe"
	ifname=eth$((p - 1))
	mkdir -p "$pf/net/$ifname"
	echo 0x1003 > "$pf/net/$ifname/flags"
	echo up > "$pf/net/$ifname/operstate"
	ln -s "../../../$addr" "$pf/net/$ifname/device"
	ln -sr "$pf/net/$ifname" "$S/class/net/$ifname"
	for i in $(seq 0 $((PER - 1))); do
		vaddr=$(printf '0000:%02x:%02x.%x' $((0x40 + p)) $((0x10 + i / 8)) $((i % 8)))
		drv=""
		if [ $((i % 2)) -eq 0 ]; then drv=vfio-pci; fi
		dev "$RP" "$vaddr" 0x8086 0x10ca "$drv" "$group"
		group=$((group + 1))
		ln -sr "$pf" "$S/devices/$RP/$vaddr/physfn"
		ln -sr "$S/devices/$RP/$vaddr" "$pf/virtfn$i"
	done
done
