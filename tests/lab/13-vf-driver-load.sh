#!/bin/bash
# lab-seconds: 60
# Lab: the VF driver is loaded when a bind needs it. With vfio-pci (and the
# modules only it used) unloaded, `iovm-sriov set-vfs eth0 2 vfio` and
# iovmd's `pf set-vfs eth0 2 --driver vfio-pci` load it with modprobe and
# bind both VFs; a process without CAP_SYS_MODULE, and a modprobe that
# fails, are refused with the cause before any VF is created.
set -uo pipefail
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
B=${IOVM_BUILD:?}
T=$B/src/tools/iovm-sriov/iovm-sriov
D=$B/src/iovmd/iovmd
CTL=$B/src/iovmctl/iovmctl
[ -x "$T" ] && [ -x "$D" ] && [ -x "$CTL" ] || skip "iovm-sriov/iovmd/iovmctl not built"
[ -d /sys/class/net/eth0 ] || skip "no emulated igb (not in the lab?)"
command -v setpriv >/dev/null || skip "no setpriv"
W=$TMPDIR/vf-driver-load
mkdir -p "$W"
PF=/sys/class/net/eth0/device
DPID=
cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	mountpoint -q /etc/modprobe.d && umount /etc/modprobe.d
}
trap cleanup EXIT

ip link set eth0 up
echo 0 > $PF/sriov_numvfs || die "cannot remove eth0's VFs"

# unload_vfio: vfio-pci and the modules only it used (vfio_pci_core, vfio, ...).
unload_vfio() {
	modprobe -r vfio_pci 2>/dev/null
	[ -d /sys/bus/pci/drivers/vfio-pci ] && die "vfio-pci still loaded: $(lsmod | grep vfio)"
	ok "vfio-pci not loaded ($(lsmod | grep -c '^vfio') vfio modules left)"
}
# both_on_vfio: eth0's 2 VFs exist and are on vfio-pci with a group device.
both_on_vfio() {
	local i vf g
	[ "$(cat $PF/sriov_numvfs)" = 2 ] || { fail "sriov_numvfs $(cat $PF/sriov_numvfs), want 2"; return; }
	for i in 0 1; do
		vf=$(basename "$(readlink $PF/virtfn$i)")
		g=$(basename "$(readlink "/sys/bus/pci/devices/$vf/iommu_group")")
		[ "$(drv "$vf")" = vfio-pci ] && [ -c "/dev/vfio/$g" ] && ok "$1: $vf on vfio-pci, /dev/vfio/$g" \
			|| fail "$1: $vf on $(drv "$vf"), /dev/vfio/$g $(ls -l "/dev/vfio/$g" 2>&1)"
	done
}
# refused WHAT WANT-TEXT CMD...: CMD fails, says WANT-TEXT, created no VF and loaded nothing.
refused() {
	local what=$1 want=$2 out rc
	shift 2
	out=$("$@" 2>&1); rc=$?
	[ $rc != 0 ] && [[ "$out" == *"$want"* ]] && ok "$what: refused ($rc): $out" \
		|| fail "$what: rc=$rc, want a refusal saying '$want': $out"
	[ "$(cat $PF/sriov_numvfs)" = 0 ] && ok "$what: no VF created" \
		|| fail "$what: $(cat $PF/sriov_numvfs) VFs created"
	[ -d /sys/bus/pci/drivers/vfio-pci ] && fail "$what: vfio-pci got loaded"
}

# ---- 1. refusals ----------------------------------------------------------------
unload_vfio
refused "without CAP_SYS_MODULE" "may not load modules (no CAP_SYS_MODULE" \
	setpriv --inh-caps -all --bounding-set -sys_module -- "$T" set-vfs eth0 2 vfio
# A modprobe that fails: an install command in a private modprobe.d.
mount -t tmpfs -o size=1m none /etc/modprobe.d || die "tmpfs on /etc/modprobe.d"
echo "install vfio_pci /bin/false" > /etc/modprobe.d/iovm-lab.conf
refused "a failing modprobe" "vfio-pci could not be loaded: modprobe: " "$T" set-vfs eth0 2 vfio
# modprobe -b (as udev and libvirt) honours the blacklist: exit 0, nothing loaded.
echo "blacklist vfio_pci" > /etc/modprobe.d/iovm-lab.conf
refused "a blacklisted vfio-pci" "modprobe succeeded but no PCI driver vfio-pci is registered" \
	"$T" set-vfs eth0 2 vfio
umount /etc/modprobe.d || die "umount /etc/modprobe.d"

# ---- 2. the library's tool loads vfio-pci ------------------------------------------
out=$("$T" set-vfs eth0 2 vfio 2>&1) && ok "iovm-sriov set-vfs eth0 2 vfio: ${out:-done}" \
	|| fail "iovm-sriov set-vfs eth0 2 vfio: $out"
both_on_vfio iovm-sriov
# A single bind loads it too.
expect 0 "$T" set-vfs eth0 0
unload_vfio
echo 0 > $PF/sriov_drivers_autoprobe; echo 1 > $PF/sriov_numvfs || die "cannot create 1 VF"
vf=$(basename "$(readlink $PF/virtfn0)")
expect 0 "$T" bind "$vf" vfio-pci && [ "$(drv "$vf")" = vfio-pci ] && ok "bind $vf: on vfio-pci" \
	|| fail "bind $vf: on $(drv "$vf")"
expect 0 "$T" set-vfs eth0 0

# ---- 3. iovmd (unconfined, as root) loads it ---------------------------------------
unload_vfio
ctl() { "$CTL" --socket "$W/iovm.sock" --timeout 120 "$@"; }
"$D" --socket "$W/iovm.sock" --state "$W/iovm.db" > "$W/iovmd.log" 2>&1 &
DPID=$!
for _ in $(seq 1 600); do
	ctl status >/dev/null 2>&1 && break
	kill -0 "$DPID" 2>/dev/null || die "iovmd exited at start: $(tail -5 "$W/iovmd.log")"
	sleep 0.2
done
out=$(ctl pf set-vfs eth0 2 --driver vfio-pci 2>&1) && ok "iovmctl pf set-vfs eth0 2 --driver vfio-pci: $out" \
	|| fail "iovmctl pf set-vfs eth0 2 --driver vfio-pci: $out $(tail -5 "$W/iovmd.log")"
both_on_vfio iovmd
ctl pf set-vfs eth0 0 >/dev/null 2>&1

[ "$fails" = 0 ] || exit 1
echo "vf driver load: all checks passed"
