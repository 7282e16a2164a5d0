#!/bin/bash
# lab-seconds: 150 (typical on a CI machine; scripts/run-tests starts the longest first)
# Lab: attach with a MAC and a VLAN set through the PF, detach restores them.
# The VF starts unbound-to-vfio (igbvf); iovm saves its settings, sets MAC and
# VLAN on the PF's VF entry, binds vfio-pci and hot-plugs it into a guest;
# the guest's igbvf gets that MAC; after the detach the old settings and the
# igbvf binding are back.
set -uo pipefail
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
B=${IOVM_BUILD:?}
VM=$B/src/tools/iovm-vm/iovm-vm
SR=$B/src/tools/iovm-sriov/iovm-sriov
G=lab/guest
[ -x "$VM" ] && [ -x "$SR" ] || skip "iovm-vm/iovm-sriov not built"
[ -d /sys/bus/pci/devices/0000:01:00.0 ] || skip "no emulated igb (not in the lab?)"
[ -x "$G" ] || skip "no lab/guest"
modprobe vfio-pci && modprobe igbvf || skip "vfio-pci/igbvf modules missing"

POOL=$TMPDIR/pool.json
QMP=/run/iovm-lab/guests/m1/qmp.sock
MAC=02:00:00:00:23:01
trap '$G stop m1 >/dev/null 2>&1' EXIT

# igb applies a VF MAC only with the PF up (lab notes).
ip link set eth0 up
"$SR" set-vfs eth0 2 host >/dev/null || die "set-vfs eth0 2 host"
PF0=$(basename "$(readlink /sys/class/net/eth0/device)")
VF=$(basename "$(readlink /sys/bus/pci/devices/$PF0/virtfn1)")
before=$(ip link show eth0 | grep "vf 1 ")
echo "before: $before"

$G start m1 || die "guest did not start"
out=$("$VM" --pool "$POOL" attach --qmp "$QMP" --vm m1 --vf "$VF" --mac "$MAC" --vlan 23 \
	--timeout-ms 30000 2>&1) && ok "attach: $out" || fail "attach with MAC/VLAN: $out"
during=$(ip link show eth0 | grep "vf 1 ")
echo "during: $during"
[[ "$during" == *"link/ether $MAC"* ]] && ok "VF MAC set through the PF" || fail "VF MAC not set: $during"
[[ "$during" == *"vlan 23"* ]] && ok "VF VLAN set through the PF" || fail "VF VLAN not set: $during"
grep -q "vf=$VF use=in-use" < <("$VM" --pool "$POOL" pool) || fail "pool: $("$VM" --pool "$POOL" pool)"
# The guest's igbvf reads the MAC from the PF when it probes the VF.
seen= m=
deadline=$(( $(date +%s) + 180 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
	m=$($G exec --timeout 20 m1 -- sh -c 'grep -H . /sys/class/net/*/address' 2>&1)
	[[ "$m" == *"$MAC"* ]] && { seen=1; break; }
	sleep 2
done
[ -n "$seen" ] && ok "the guest's VF netdev has $MAC" || fail "guest did not show $MAC within 180 s: $m"

out=$("$VM" --pool "$POOL" detach --qmp "$QMP" --vm m1 --vf "$VF" --timeout-ms 120000 2>&1) \
	&& ok "detach: $out" || fail "detach: $out"
after=$(ip link show eth0 | grep "vf 1 ")
echo "after: $after"
[[ "$after" != *"vlan 23"* ]] && ok "VLAN restored" || fail "VLAN not restored: $after"
[[ "$after" != *"$MAC"* ]] && ok "MAC restored" || fail "MAC not restored: $after"
[ "$(drv "$VF")" = igbvf ] && ok "VF back on igbvf" || fail "VF driver after detach: $(drv "$VF")"
[ -z "$("$VM" --pool "$POOL" pool)" ] || fail "pool not empty: $("$VM" --pool "$POOL" pool)"

[ $fails = 0 ] && echo "all ok" || echo "$fails failures" >&2
exit $((fails > 0))
