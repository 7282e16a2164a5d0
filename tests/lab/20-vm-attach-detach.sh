#!/bin/bash
# lab-seconds: 480 (typical on a CI machine; scripts/run-tests starts the longest first)
# Lab: VFs into running guests and back, with real QEMU, VFIO and guests.
#  1. attach a VF (on igbvf: iovm binds it to vfio-pci) to guest g1; the
#     guest sees an 82576 VF (8086:10ca) appear;
#  2. attach a second VF to guest g2; g1 keeps its VF;
#  3. detach from g2 (cooperative guest): DEVICE_DELETED, VF back on igbvf;
#  4. pause g1, detach: timeout, "did not release", VF stays reserved and a
#     second attach of it is refused; resume g1 and retry the detach: the
#     late DEVICE_DELETED frees the VF;
#  5. attach again to g1, SIGKILL its QEMU under `iovm-vm watch` (the
#     event-loop path): VF reclaimed.
set -uo pipefail
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
B=${IOVM_BUILD:?}
VM=$B/src/tools/iovm-vm/iovm-vm
SR=$B/src/tools/iovm-sriov/iovm-sriov
G=lab/guest
# shellcheck source=lib/guest.sh
. tests/lab/lib/guest.sh
[ -x "$VM" ] && [ -x "$SR" ] || skip "iovm-vm/iovm-sriov not built"
[ -d /sys/bus/pci/devices/0000:01:00.0 ] || skip "no emulated igb (not in the lab?)"
[ -x "$G" ] || skip "no lab/guest"
modprobe vfio-pci && modprobe igbvf || skip "vfio-pci/igbvf modules missing"

t() { date +%s.%N; }
el() { awk -v a="$1" -v b="$(t)" 'BEGIN { printf "%.2f", b - a }'; }
POOL=$TMPDIR/pool.json
iv() { "$VM" --pool "$POOL" "$@"; }
WATCH_PIDS=()
cleanup() {
	# Guest consoles for the post-mortem, in the run's log directory.
	for g in g1 g2; do
		cp "/run/iovm-lab/guests/$g/console.log" "/run/iovm-lab/share/20-$g-console.log" 2>/dev/null
	done
	for p in "${WATCH_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	$G stop g1 >/dev/null 2>&1; $G stop g2 >/dev/null 2>&1
}
trap cleanup EXIT

ip link set eth0 up
"$SR" set-vfs eth0 7 host >/dev/null || die "set-vfs eth0 7 host"
PF0=$(basename "$(readlink /sys/class/net/eth0/device)")
VF0=$(basename "$(readlink /sys/bus/pci/devices/$PF0/virtfn0)")
VF1=$(basename "$(readlink /sys/bus/pci/devices/$PF0/virtfn1)")
echo "VF0=$VF0 ($(drv "$VF0")) VF1=$VF1 ($(drv "$VF1"))"

s=$(t); $G start g1 && $G start g2 || die "guests did not start"
echo "guests up in $(el "$s") s"
# Right after a restore the guest agent may not answer yet: poll.
guest_wait_vfs g1 0 300 || fail "g1 sees a VF before any attach (or its agent does not answer)"

# --- 1. attach VF0 to g1
s=$(t)
out=$(iv attach --qmp "$(guest_qmp g1)" --vm g1 --vf "$VF0" --timeout-ms 20000 2>&1) || fail "attach VF0 to g1: $out"
echo "$out (in $(el "$s") s)"
[[ "$out" == *"devid=iovm-${VF0//:/-}"* ]] || fail "attach: unexpected device id: $out"
[ "$(drv "$VF0")" = vfio-pci ] || fail "VF0 not on vfio-pci after attach: $(drv "$VF0")"
grep -q "vf=$VF0 use=in-use vm=g1 .*orig_driver=igbvf" < <(iv pool) || fail "pool after attach: $(iv pool)"
s=$(t); guest_wait_vfs g1 1 300 && ok "g1 sees the VF ($(el "$s") s after attach)" || fail "g1 does not see VF0"

# --- 2. attach VF1 to g2; g1 undisturbed
out=$(iv attach --qmp "$(guest_qmp g2)" --vm g2 --vf "$VF1" --timeout-ms 20000 2>&1) || fail "attach VF1 to g2: $out"
echo "$out"
guest_wait_vfs g2 1 300 && ok "g2 sees its VF" || fail "g2 does not see VF1"
[ "$(guest_vfs g1)" = 1 ] && ok "g1 still sees its VF" || fail "g1 lost its VF"
out=$(iv attach --qmp "$(guest_qmp g2)" --vm g2 --vf "$VF0" 2>&1); rc=$?
[ $rc = 16 ] && ok "VF0 (in g1) refused to g2: $out" || fail "attach of a VF in use: rc=$rc $out"

# --- 3. cooperative detach from g2
s=$(t)
out=$(iv detach --qmp "$(guest_qmp g2)" --vm g2 --vf "$VF1" --timeout-ms 120000 2>&1) && \
	ok "detach VF1 from g2 in $(el "$s") s" || fail "detach VF1 from g2: $out"
[ "$(drv "$VF1")" = igbvf ] && ok "VF1 back on igbvf" || fail "VF1 driver after detach: $(drv "$VF1")"
grep -q "vf=$VF1" < <(iv pool) && fail "VF1 still in the pool: $(iv pool)"
guest_wait_vfs g2 0 300 && ok "g2 no longer sees a VF" || fail "g2 still sees VF1"
[ "$(guest_vfs g1)" = 1 ] || fail "g1 lost its VF during g2's detach"

# --- 4. detach from a paused guest: timeout, VF stays reserved
$G qmp g1 stop >/dev/null || fail "pause g1"
out=$(iv detach --qmp "$(guest_qmp g1)" --vm g1 --vf "$VF0" --timeout-ms 5000 2>&1); rc=$?
[ $rc = 110 ] && [[ "$out" == *"did not release"* ]] && ok "paused g1: $out" || fail "detach from paused g1: rc=$rc $out"
grep -q "vf=$VF0 use=release-pending vm=g1" < <(iv pool) && ok "VF0 release-pending" || fail "pool: $(iv pool)"
[ "$(drv "$VF0")" = vfio-pci ] || fail "VF0 left vfio-pci while g1 may hold it"
out=$(iv attach --qmp "$(guest_qmp g2)" --vm g2 --vf "$VF0" 2>&1); rc=$?
[ $rc = 16 ] && ok "release-pending VF0 refused to g2: $out" || fail "attach of a release-pending VF: rc=$rc $out"
# Resume the guest: it completes the unplug. A QMP socket serves one client
# at a time, so the event is caught by retrying the detach: QEMU either says
# the device is gone or that its unplug is still in progress, and the retry
# then waits for the first request's DEVICE_DELETED.
$G qmp g1 cont >/dev/null || fail "resume g1"
s=$(t)
out=$(iv detach --qmp "$(guest_qmp g1)" --vm g1 --vf "$VF0" --timeout-ms 120000 2>&1) && \
	ok "retried detach after resume freed VF0 in $(el "$s") s" || fail "retried detach: $out"
grep -q "vf=$VF0" < <(iv pool) && fail "VF0 not freed after g1 resumed: $(iv pool)"
[ "$(drv "$VF0")" = igbvf ] && ok "VF0 back on igbvf" || fail "VF0 driver after late release: $(drv "$VF0")"
guest_wait_vfs g1 0 300 && ok "g1 no longer sees a VF" || fail "g1 still sees VF0"

# --- 5. QEMU killed while a VF is attached: reclaimed
out=$(iv attach --qmp "$(guest_qmp g1)" --vm g1 --vf "$VF0" --timeout-ms 20000 2>&1) || fail "re-attach VF0 to g1: $out"
iv watch --qmp "$(guest_qmp g1)" --vm g1 --timeout-ms 20000 > "$TMPDIR/watch2" 2>&1 &
wpid=$!; WATCH_PIDS+=($wpid)
for _ in $(seq 50); do grep -q watching "$TMPDIR/watch2" && break; sleep 0.1; done
kill -9 "$($G pid g1)"
deadline=$(( $(date +%s) + 60 ))
while kill -0 "$wpid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
wait "$wpid"; rc=$?
cat "$TMPDIR/watch2"
[ $rc = 0 ] && grep -q "reclaimed=1" "$TMPDIR/watch2" && ok "watch reclaimed VF0 after QEMU died" \
	|| fail "watch after kill: rc=$rc"
grep -q "vf=$VF0" < <(iv pool) && fail "VF0 still in the pool after reclaim: $(iv pool)"
[ "$(drv "$VF0")" = igbvf ] && ok "VF0 back on igbvf after reclaim" || fail "VF0 driver after reclaim: $(drv "$VF0")"

[ $fails = 0 ] && echo "all ok" || echo "$fails failures" >&2
exit $((fails > 0))
