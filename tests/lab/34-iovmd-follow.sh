#!/bin/bash
# lab-seconds: 200 (typical on a CI machine; scripts/run-tests starts the longest first)
# Lab: iovmd follows the kernel (the host monitor: uevents and rtnetlink).
# With iovmd idle (no command sent), VFs change outside it and
# `iovmctl vf list` must show each change within a deadline:
#  1. sriov_numvfs 2 -> 0 -> 3 (written by hand, not with pf set-vfs);
#  2. a VF unbound from igbvf, then bound again;
#  3. a VF's MAC set with `ip link set eth0 vf 0 mac ...` (rtnetlink only:
#     the kernel sends no uevent for it);
# and an idle iovmd starts no process over two refresh intervals (strace).
set -uo pipefail
LAB_TOOLS=strace
# shellcheck source=lib/iovmd.sh
. tests/lab/lib/iovmd.sh
W=$TMPDIR/iovmd-follow
mkdir -p "$W"
SOCK=$W/iovm.sock
LOG=$W/iovmd.log
DPID=
DEADLINE_S=30
ctl() { "$CTL" --socket "$SOCK" --timeout 60 "$@"; }
vfs_json() { ctl --json vf list --pf eth0 2>/dev/null; }

# until_true WHAT CMD...: polls CMD until it succeeds or DEADLINE_S pass;
# prints how long it took.
until_true() {
	local what=$1 start end
	shift
	start=$(date +%s%N)
	end=$(( $(date +%s) + DEADLINE_S ))
	while ! "$@"; do
		if [ "$(date +%s)" -ge "$end" ]; then
			fail "$what: not seen within ${DEADLINE_S} s; vf list: $(vfs_json | jq -c '[.[] | {vf, driver, mac: .config.mac}]')"
			return 1
		fi
		sleep 0.1
	done
	ok "$what: seen after $(( ($(date +%s%N) - start) / 1000000 )) ms"
}
n_vfs_is() { [ "$(vfs_json | jq length)" = "$1" ]; }
driver_is() { [ "$(vfs_json | jq -r --arg v "$1" '.[] | select(.vf == $v) | .driver')" = "$2" ]; }
mac_is() { [ "$(vfs_json | jq -r --argjson i "$1" '.[] | select(.index == $i) | .config.mac')" = "$2" ]; }

# idle_forks SECONDS: processes (clone/fork) iovmd starts while idle
idle_forks() {
	timeout "$1" strace -f -qq -e trace=clone,clone3,fork,vfork -p "$DPID" -o "$W/strace.txt" 2>/dev/null
	grep -cE '(clone|fork)' "$W/strace.txt"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$DPID/stat"; }

ip link set eth0 up
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
echo 1 > /sys/class/net/eth0/device/sriov_drivers_autoprobe
echo 2 > /sys/class/net/eth0/device/sriov_numvfs || { fail "cannot create 2 VFs"; exit 1; }

"$D" --socket "$SOCK" --state "$W/iovm.db" --log-level debug > "$LOG" 2>&1 &
DPID=$!
trap 'kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null' EXIT
for _ in $(seq 1 600); do
	ctl status >/dev/null 2>&1 && break
	kill -0 "$DPID" 2>/dev/null || { fail "iovmd exited at start: $(tail -5 "$LOG")"; exit 1; }
	sleep 0.2
done
grep -q "following the kernel" "$LOG" && ok "iovmd follows the kernel" || fail "no host monitor: $(grep -i monitor "$LOG")"
until_true "the 2 VFs at start" n_vfs_is 2

# ---- idle: no process per refresh (default interval 2 s) ------------------------
sleep 1   # not a wait for a condition: lets the start-up's last publish pass
t0=$(cpu_ticks)
n=$(idle_forks 5)
t1=$(cpu_ticks)
[ "$n" = 0 ] && ok "idle for 5 s (two refreshes): no process started" ||
	fail "idle iovmd started $n processes in 5 s: $(head -3 "$W/strace.txt")"
echo "idle CPU over 5 s (under strace, emulated): $((t1 - t0)) ticks of $(getconf CLK_TCK)/s"

# ---- 1. VF count changed by hand --------------------------------------------------
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
until_true "sriov_numvfs 2 -> 0" n_vfs_is 0
echo 3 > /sys/class/net/eth0/device/sriov_numvfs || fail "cannot create 3 VFs"
until_true "sriov_numvfs 0 -> 3" n_vfs_is 3

# ---- 2. unbind and bind a VF -----------------------------------------------------
VF0=$(basename "$(readlink /sys/class/net/eth0/device/virtfn0)")
until_true "vf $VF0 on igbvf" driver_is "$VF0" igbvf
echo "$VF0" > "/sys/bus/pci/devices/$VF0/driver/unbind" || fail "unbind $VF0"
until_true "vf $VF0 unbound" driver_is "$VF0" ""
echo "$VF0" > /sys/bus/pci/drivers/igbvf/bind || fail "bind $VF0"
until_true "vf $VF0 bound again" driver_is "$VF0" igbvf

# ---- 3. a VF setting through the PF (rtnetlink only) ----------------------------------
ip link set eth0 vf 0 mac 02:11:22:33:44:55 || fail "ip link set eth0 vf 0 mac"
until_true "vf 0 MAC set with ip link" mac_is 0 02:11:22:33:44:55

n=$(grep -c "kernel: " "$LOG")
[ "$n" -gt 0 ] && ok "$n notifications logged" || fail "no notification in the log"
grep -q "running " "$LOG" && fail "a command ran: $(grep 'running ' "$LOG" | head -3)"

# ---- idle again after the changes --------------------------------------------------
sleep 1
n=$(idle_forks 5)
[ "$n" = 0 ] && ok "idle again: no process started in 5 s" || fail "idle iovmd started $n processes"

[ $fails = 0 ] && echo "all ok" || echo "$fails failures" >&2
exit $((fails > 0))
