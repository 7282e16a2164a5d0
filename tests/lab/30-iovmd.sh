#!/bin/bash
# lab-seconds: 800 (typical on a CI machine; scripts/run-tests starts the longest first)
# Lab: iovmd + iovmctl on the emulated host with real guests.
#  1. the CLI flow: set VFs, list, set MAC/VLAN, register two guests, attach
#     (by VF and automatically by PF), refusals (VF in use, resize while
#     assigned), detach, bad requests on the socket leave the daemon up;
#  2. crash injection: iovmd killed with SIGKILL right after each step of
#     set-vfs, attach and detach (IOVM_CRASH_AT), restarted, and then the
#     kernel, the guests and the daemon's records must agree: every VF the
#     daemon calls attached is in its guest, every other VF is free on its
#     desired driver (none leaked on vfio-pci), no VF is in two guests, no
#     intent is left open;
#  3. a guest's QEMU killed while it holds a VF: VM_GONE, VF reclaimed;
#  4. a simulated host reboot (VFs destroyed, igb reloaded): the restarted
#     daemon re-applies the desired VF count and VF settings.
set -uo pipefail
# shellcheck source=lib/iovmd.sh
. tests/lab/lib/iovmd.sh
W=$TMPDIR/iovmd
mkdir -p "$W"
SOCK=$W/iovm.sock
DB=$W/iovm.db
LOG=$W/iovmd.log
DPID=
ctl() { "$CTL" --socket "$SOCK" --timeout 180 "$@"; }

# The library's start_d/stop_d/wait_dead, with this scenario's intervals.
IOVMD_REFRESH_MS=500 IOVMD_ATTACH_MS=60000 IOVMD_DETACH_MS=120000 IOVMD_CRASH_WAIT_S=180
cleanup() {
	stop_d
	for g in g1 g2; do
		cp "/run/iovm-lab/guests/$g/console.log" "/run/iovm-lab/share/30-$g-console.log" 2>/dev/null
	done
	cp "$LOG" /run/iovm-lab/share/30-iovmd.log 2>/dev/null
	$G stop g1 >/dev/null 2>&1; $G stop g2 >/dev/null 2>&1
}
trap cleanup EXIT

# consistent LABEL [GUESTS]: the daemon's records, the kernel and the guests
# (default g1 g2; each asked through its agent, which is slow under TCG, so
# the crash cycles, which only involve g1, ask g1) agree.
consistent() {
	local label=$1 guests=${2:-g1 g2} vfs n1 n2 bad
	vfs=$(ctl --json vf list --pf eth0) || { fail "$label: vf list failed"; return; }
	bad=$(jq -r '.[] | select(.state != "free" and .state != "attached") | "\(.vf) \(.state)"' <<<"$vfs")
	[ -z "$bad" ] || fail "$label: VFs in a transient state: $bad"
	# Free VFs sit on the desired driver (host: igbvf), never leaked on vfio-pci.
	bad=$(jq -r '.[] | select(.state == "free" and .driver != "igbvf") | "\(.vf) \(.driver)"' <<<"$vfs")
	[ -z "$bad" ] || fail "$label: free VFs not back on igbvf (leaked): $bad"
	bad=$(jq -r '.[] | select(.state == "attached" and .driver != "vfio-pci") | "\(.vf) \(.driver)"' <<<"$vfs")
	[ -z "$bad" ] || fail "$label: attached VFs not on vfio-pci: $bad"
	n1=$(jq '[.[] | select(.vm == "g1")] | length' <<<"$vfs")
	n2=$(jq '[.[] | select(.vm == "g2")] | length' <<<"$vfs")
	[[ " $guests " != *" g1 "* ]] || guest_wait_vfs g1 "$n1" 300 ||
		fail "$label: g1 holds a different number of VFs than the daemon records ($n1)"
	[[ " $guests " != *" g2 "* ]] || guest_wait_vfs g2 "$n2" 300 ||
		fail "$label: g2 holds a different number of VFs than the daemon records ($n2)"
	[ "$(ctl --json status | jq .open_intents)" = 0 ] || fail "$label: open intents left"
	echo "ok: $label: consistent (g1 $n1 VF, g2 $n2 VF)"
}

ip link set eth0 up
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
$G start g1 && $G start g2 || die "guests did not start"

# ---- 1. the CLI flow ---------------------------------------------------------
start_d || exit 1
out=$(ctl pf set-vfs eth0 4 --driver host 2>&1) && ok "pf set-vfs eth0 4: $out" || fail "set-vfs: $out"
[ "$(cat /sys/class/net/eth0/device/sriov_numvfs)" = 4 ] || fail "kernel has $(cat /sys/class/net/eth0/device/sriov_numvfs) VFs"
ctl pf list; ctl vf list --pf eth0
[ "$(ctl --json pf show eth0 | jq '.num_vfs, .desired_vfs' | tr '\n' ' ')" = "4 4 " ] || fail "pf show: $(ctl --json pf show eth0)"
[ "$(ctl --json vf list --pf eth0 | jq length)" = 4 ] || fail "vf list does not show 4 VFs"
out=$(ctl vf set eth0/1 --mac 02:00:00:00:01:01 --vlan 100 --trust on 2>&1) || fail "vf set: $out"
v=$(ctl --json vf show eth0/1)
[ "$(jq -r '.config.mac, .config.vlan, .config.trust' <<<"$v" | tr '\n' ' ')" = "02:00:00:00:01:01 100 true " ] \
	&& ok "vf set read back: $(jq -c .config <<<"$v")" || fail "vf show after set: $v"
grep -q "vf 1 .*02:00:00:00:01:01.*vlan 100" < <(ip link show eth0) && ok "iproute2 agrees" || fail "iproute2: $(ip link show eth0 | grep 'vf 1')"
out=$(ctl vf set eth0/1 --vlan 5000 2>&1); rc=$?
[ $rc != 0 ] && [[ "$out" == *vlan* ]] && ok "bad VLAN refused ($rc): $out" || fail "vlan 5000: rc=$rc $out"
ctl vm add g1 --qmp "$(guest_qmp g1)" || fail "vm add g1"
ctl vm add g2 --qmp "$(guest_qmp g2)" --priority high || fail "vm add g2"
ctl vm list
[ "$(ctl --json vm list | jq '[.[] | select(.connected)] | length')" = 2 ] || fail "not both VMs connected: $(ctl --json vm list)"
VF0=$(ctl --json vf show eth0/0 | jq -r .vf)
# --json: the reply on stdout; progress lines go to stderr.
out=$(ctl --json attach g1 --vf eth0/0 2>"$W/err") && ok "attach g1 eth0/0: $(jq -c . <<<"$out")" || fail "attach g1: $out $(cat "$W/err")"
out=$(ctl --json attach g2 --pf eth0 2>"$W/err") && ok "attach g2 (auto pick): $(jq -c . <<<"$out")" || fail "attach g2: $out $(cat "$W/err")"
guest_wait_vfs g1 1 300 && ok "g1 sees its VF" || fail "g1 does not see its VF"
guest_wait_vfs g2 1 300 && ok "g2 sees its VF" || fail "g2 does not see its VF"
[ "$(drv "$VF0")" = vfio-pci ] || fail "VF0 not on vfio-pci: $(drv "$VF0")"
out=$(ctl attach g2 --vf eth0/0 2>&1); rc=$?
[ $rc = 16 ] && [[ "$out" == *"assigned to vm g1"* ]] && ok "VF in g1 refused to g2: $out" || fail "double attach: rc=$rc $out"
# A resize with VFs in VMs is a live one (docs/resize.md, lab 37): on
# stock QEMU without a failover standby, auto is refused (95), or the new
# count drops g2's VF (16); either way nothing changes.
out=$(ctl pf set-vfs eth0 2 2>&1); rc=$?
{ [ $rc = 16 ] || [ $rc = 95 ]; } && [ "$(cat /sys/class/net/eth0/device/sriov_numvfs)" = 4 ] &&
	ok "resize with VFs in VMs refused: $out" || fail "resize while assigned: rc=$rc $out"
ctl vf list --pf eth0
# Bad input on the socket: errors, the daemon stays up.
for bad in '{"execute":' '[1,2]' '{"execute":"attach","arguments":{"vm":5}}' \
	   '{"execute":"detach","arguments":{"vm":"g1","vf":"0000:99:99.9"}}'; do
	r=$(printf '%s\n' "$bad" | socat -t 5 - "UNIX-CONNECT:$SOCK" | sed -n 2p)
	[[ "$r" == *'"error"'* ]] || fail "bad request '$bad' got: $r"
done
head -c 100000 /dev/urandom | socat -t 2 - "UNIX-CONNECT:$SOCK" >/dev/null 2>&1
ctl status >/dev/null && kill -0 "$DPID" && ok "daemon up after bad input" || fail "daemon down after bad input"
out=$(ctl detach g2 2>&1) && ok "detach g2" || fail "detach g2: $out"
out=$(ctl detach g1 --vf eth0/0 2>&1) && ok "detach g1" || fail "detach g1: $out"
consistent "after the CLI flow"

# ---- 2. crash injection -----------------------------------------------------------
stop_d
for step in intent numvfs done; do
	want=$([ "$step" = numvfs ] && echo 3 || echo 5)
	start_d "set-vfs:$step" || break
	ctl pf set-vfs eth0 "$want" --driver host >/dev/null 2>&1
	wait_dead "set-vfs:$step" || continue
	start_d || break
	n=$(cat /sys/class/net/eth0/device/sriov_numvfs)
	[ "$n" = "$want" ] && ok "crash at set-vfs:$step: $n VFs after recovery" \
		|| fail "crash at set-vfs:$step: kernel has $n VFs, desired $want"
	consistent "crash at set-vfs:$step" "g1"
	stop_d
done
start_d && { ctl pf set-vfs eth0 4 --driver host >/dev/null || fail "set-vfs 4"; stop_d; }
for step in reserved prepared device-added verified done; do
	start_d "attach:$step" || break
	ctl attach g1 --vf eth0/0 >/dev/null 2>&1
	wait_dead "attach:$step" || continue
	start_d || break
	echo "after crash at attach:$step: $(ctl --json vf show eth0/0 | jq -c '{state, vm, driver}')"
	consistent "crash at attach:$step" "g1"
	if [ "$(ctl --json vf show eth0/0 | jq -r .state)" = attached ]; then
		out=$(ctl detach g1 2>&1) || fail "detach after attach:$step: $out"
		consistent "detach after attach:$step" "none"
	fi
	stop_d
done
for step in intent device-del deleted released done; do
	start_d || break
	# (iovmd verified the attach in query-pci; the guest is asked after the crash)
	out=$(ctl attach g1 --vf eth0/0 2>&1) || { fail "attach before detach:$step: $out"; stop_d; continue; }
	stop_d
	start_d "detach:$step" || break
	ctl detach g1 >/dev/null 2>&1
	wait_dead "detach:$step" || continue
	start_d || break
	echo "after crash at detach:$step: $(ctl --json vf show eth0/0 | jq -c '{state, vm, driver}')"
	consistent "crash at detach:$step" "g1"
	if [ "$(ctl --json vf show eth0/0 | jq -r .state)" = attached ]; then
		out=$(ctl detach g1 2>&1) || fail "detach after detach:$step: $out"
	fi
	stop_d
done

# ---- 3. QEMU killed while it holds a VF --------------------------------------------
start_d || exit 1
consistent "after the crash cycles"
ctl attach g2 --vf eth0/2 >/dev/null || fail "attach g2 eth0/2"
guest_wait_vfs g2 1 300 || fail "g2 does not see eth0/2"
kill -9 "$($G pid g2)"
for _ in $(seq 1 150); do
	[ "$(ctl --json vf show eth0/2 | jq -r .state)" = free ] && break; sleep 0.2
done
v=$(ctl --json vf show eth0/2)
[ "$(jq -r '.state, .driver' <<<"$v" | tr '\n' ' ')" = "free igbvf " ] && ok "VF of the killed VM reclaimed" \
	|| fail "after QEMU kill: $(jq -c . <<<"$v")"
grep -q "vm g2: .*reclaiming" "$LOG" || fail "no reclaim logged"
[ "$(ctl --json vm list | jq -r '.[] | select(.name == "g2") | .connected')" = false ] || fail "g2 still connected"

# ---- 4. simulated host reboot ---------------------------------------------------------
ctl pf set-vfs eth0 3 --driver host >/dev/null || fail "set-vfs 3"
ctl vf set eth0/2 --mac 02:00:00:00:02:02 >/dev/null || fail "vf set eth0/2 mac"
stop_d
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
modprobe -r igbvf; modprobe -r igb && modprobe igb || fail "reloading igb"
for _ in $(seq 50); do [ -d /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link set eth0 up
[ "$(cat /sys/class/net/eth0/device/sriov_numvfs)" = 0 ] || fail "VFs survived the reload"
start_d || exit 1
n=$(cat /sys/class/net/eth0/device/sriov_numvfs)
[ "$n" = 3 ] && ok "desired 3 VFs re-applied after the reload" || fail "after reload: $n VFs"
mac=$(ctl --json vf show eth0/2 | jq -r .config.mac)
[ "$mac" = 02:00:00:00:02:02 ] && ok "desired VF MAC re-applied" || fail "eth0/2 MAC after reload: $mac"
grep "recovery:" "$LOG" | tail -5
stop_d
ctl status >/dev/null 2>&1 && fail "daemon still answering after SIGTERM"
[ -e "$SOCK" ] && fail "socket left behind after SIGTERM"
[ $fails = 0 ] && echo "all ok" || echo "$fails failures" >&2
exit $((fails > 0))
