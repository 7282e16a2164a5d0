#!/bin/bash
# The baseline: the same sysfs writes as libiovm, as a plain script does
# them, and nothing else (no checks, no verification, no deadlines). Bash
# builtins only, so no fork/exec cost is counted against it.
# Usage: PF_ADDR N. Prints the create+bind time in ns, then removes the VFs.
set -e
D=/sys/bus/pci/devices/$1
t0=$EPOCHREALTIME
echo 0 > "$D/sriov_drivers_autoprobe"
echo "$2" > "$D/sriov_numvfs"
for l in "$D"/virtfn*; do
	while IFS== read -r k v; do
		[ "$k" = PCI_SLOT_NAME ] && vf=$v
	done < "$l/uevent"
	echo vfio-pci > "/sys/bus/pci/devices/$vf/driver_override"
	echo "$vf" > /sys/bus/pci/drivers_probe
done
t1=$EPOCHREALTIME
echo $(( (${t1/./} - ${t0/./}) * 1000 ))
echo 0 > "$D/sriov_numvfs"
