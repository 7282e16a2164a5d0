#!/bin/bash
# Lab: a VF held open by a QEMU process. libiovm must name the holder and
# refuse to resize the PF or rebind the VF; forced, the kernel write blocks
# (vfio waits for QEMU to release the device) and libiovm must time out
# cleanly instead of hanging, keep answering inventory queries, and the
# abandoned write must complete once QEMU lets go.
set -uo pipefail
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
T=${IOVM_BUILD:?}/src/tools/iovm-sriov/iovm-sriov
[ -x "$T" ] || skip "$T not built"
[ -d /sys/class/net/eth0 ] || skip "no emulated igb (not in the lab?)"
QEMU=$(command -v qemu-system-x86_64) || skip "no qemu-system-x86_64"

# wait_for SECONDS CMD...: poll a condition with a deadline
wait_for() {
	local end=$((SECONDS + $1)); shift
	until "$@"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}

modprobe vfio-pci && modprobe igbvf || skip "modules missing"
PF=$(basename "$(readlink /sys/class/net/eth0/device)")
expect 0 "$T" set-vfs eth0 2 vfio || exit 1
VF=$(basename "$(readlink /sys/bus/pci/devices/$PF/virtfn1)")
GROUP=$("$T" group-path "$VF")

"$QEMU" -machine q35 -accel tcg -m 64 -nodefaults -display none -S \
	-device "vfio-pci,host=$VF,id=hostdev0" > "$TMPDIR/qemu.log" 2>&1 &
QPID=$!
holds() { grep -q " $GROUP\$" < <(ls -l /proc/$QPID/fd 2>/dev/null); }
if ! wait_for 120 holds; then
	cat "$TMPDIR/qemu.log" >&2
	kill $QPID 2>/dev/null
	echo "QEMU did not open $GROUP" >&2
	exit 1
fi
echo "qemu pid $QPID holds $GROUP"

# --- the holder is named, nothing is changed
expect 0 "$T" users "$VF"
[ "$LAST" = "users=1 vfio group ${GROUP#/dev/vfio/} open by pid $QPID (qemu-system-x86)" ] \
	|| fail "users: $LAST"
expect 16 "$T" set-vfs eth0 0
[[ "$LAST" == *"vf 1 $VF: vfio group ${GROUP#/dev/vfio/} open by pid $QPID (qemu-system-x86)"* ]] \
	|| fail "refusal does not name the QEMU process: $LAST"
expect 16 "$T" set-vfs eth0 5 vfio
expect 16 "$T" bind "$VF" host
[ "$(cat /sys/bus/pci/devices/$PF/sriov_numvfs)" = 2 ] || fail "VF count changed"
# The other VF is free and can move.
VF0=$(basename "$(readlink /sys/bus/pci/devices/$PF/virtfn0)")
expect 0 "$T" users "$VF0"
[ "$LAST" = "users=0 " ] || fail "users of a free VF: $LAST"
expect 0 "$T" bind "$VF0" host
expect 0 "$T" bind "$VF0" vfio-pci

# --- forced: the kernel blocks; libiovm times out and returns
start=$SECONDS
expect 110 timeout 120 "$T" --timeout-ms 3000 set-vfs eth0 0 --force
[[ "$LAST" == *"timed out after 3s"* ]] || fail "timeout message: $LAST"
echo "forced resize returned after $((SECONDS - start))s"
# The abandoned worker is still in the kernel, holding the PF's device lock:
# a plain read of sriov_numvfs would now block. Inventory still answers.
expect 0 timeout 120 "$T" --timeout-ms 1000 pf-show eth0
# The count comes from the virtfn links, which the kernel removes before it
# waits for the VF's driver: the held VF is already unlinked.
[[ "$LAST" == *" num_vfs=0(links) "* ]] || fail "inventory under lock: $LAST"
expect 0 timeout 120 "$T" --timeout-ms 1000 vf-list eth0
# The held VF still exists; its driver link is already gone (the kernel drops
# it before calling remove()), but the open group still names the holder.
expect 0 timeout 120 "$T" --timeout-ms 1000 users "$VF"
[[ "$LAST" == "users=1 vfio group ${GROUP#/dev/vfio/} open by pid $QPID "* ]] || fail "users during removal: $LAST"
expect 110 timeout 120 "$T" --timeout-ms 1000 set-vfs eth0 3 vfio
[[ "$LAST" == *"reading sriov_numvfs timed out"* ]] || fail "message: $LAST"
stuck=$(ps -eo pid,stat,args | awk -v t="$T" '$2 ~ /^D/ && index($0, t) { print $1 }')
echo "workers in uninterruptible sleep: ${stuck:-none}"

# --- QEMU lets go: the abandoned write completes, the VFs are gone
kill -TERM $QPID; wait $QPID 2>/dev/null
# (Polled through libiovm: a plain cat would sleep uninterruptibly on the lock.)
numvfs0() { [[ "$("$T" --timeout-ms 1000 pf-show eth0 2>/dev/null)" == *" num_vfs=0 "* ]]; }
wait_for 120 numvfs0 || fail "VFs not removed after QEMU exit"
expect 0 "$T" set-vfs eth0 3 vfio
[ "$(cat /sys/bus/pci/devices/$PF/sriov_numvfs)" = 3 ] || fail "not 3 VFs at the end"
expect 0 "$T" set-vfs eth0 0

if [ "$fails" -gt 0 ]; then echo "$fails failure(s)" >&2; exit 1; fi
echo "all passed"
