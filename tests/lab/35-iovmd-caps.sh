#!/bin/bash
# lab-seconds: 250 (typical on a CI machine; scripts/run-tests starts the longest first)
# Lab: iovmd confined as its unit confines it (contrib/systemd/iovmd.service.in)
# still does its work, and every capability of the unit's
# CapabilityBoundingSet= is needed.
#
# The emulated host has no systemd (PID 1 is the lab's init), so the
# scenario applies, from the unit file itself, what can be applied without
# it: uid 0 with the unit's bounding set, no inheritable or ambient
# capabilities and no_new_privs (setpriv, as systemd does for a root
# service); in a private mount and UTS namespace (unshare), /sys and every
# mount below it read-only but for the unit's ReadWritePaths=
# (ProtectKernelTunables=, ProtectControlGroups=), a new /proc with
# hidepid=invisible,subset=pid (ProtectProc=, ProcSubset=), private /tmp
# and /var/tmp (PrivateTmp=); / is read-only in the lab anyway
# (ProtectSystem=). Not applied: the system call filter,
# RestrictAddressFamilies=, DeviceAllow= (they need systemd).
#
#  1. confined with the unit's set: the capabilities in /proc are that set;
#     with vfio-pci not loaded, set-vfs to vfio-pci fails naming the module
#     (iovmd cannot load it, ProtectKernelModules=); with the modules the
#     unit's ExecStartPre= loads: set-vfs to vfio-pci, VF MAC and VLAN, vm add, attach,
#     the guest sees the VF, detach, set-vfs to the host driver, a shared
#     attach (macvtap) and its detach; the socket
#     is root:nogroup 0660, a member of nogroup connects, a non-member
#     cannot;
#  2. for each capability of the set, iovmd started without just that one:
#     the operation that needs it fails with its error; for each of the
#     unit's ReadWritePaths=, iovmd started with it read-only: set-vfs fails
#     with EROFS;
#  3. the flow again under strace: every system call iovmd and its workers
#     make is one the unit's SystemCallFilter= allows.
set -uo pipefail
LAB_TOOLS="setpriv unshare findmnt capsh strace systemd-analyze"
# shellcheck source=lib/iovmd.sh
. tests/lab/lib/iovmd.sh
UNIT=contrib/systemd/iovmd.service.in
# Where the unit's RuntimeDirectory= and StateDirectory= would be; /var/lib
# is read-only in the lab.
W=/run/iovm-caps
SOCK=$W/run/iovm.sock
DB=$W/state/iovm.db
LOG=             # one per start: $W/iovmd-N.log
GROUP=nogroup          # gid 65534, the primary group of nobody (uid 65534)
DPID=
mkdir -p "$W/run" "$W/state"
chmod 0750 "$W/state"
ctl() { "$CTL" --socket "$SOCK" --timeout 180 "$@"; }
# as UID GID CMD...: CMD as that uid/gid with no supplementary groups
as() { local u=$1 g=$2; shift 2; setpriv --reuid "$u" --regid "$g" --clear-groups -- "$@"; }

read -r -a CAPS <<<"$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")"
read -r -a RW <<<"$(sed -n 's/^ReadWritePaths=//p' "$UNIT")"
[ ${#CAPS[@]} -gt 0 ] || die "$UNIT has no CapabilityBoundingSet="
ok "the unit's bounding set: ${CAPS[*]}; its writable paths: ${RW[*]}"

# confine CAP... -- CMD...: replaces the calling (background) shell with CMD,
# confined as described above, with the given capabilities as its bounding
# set; CMD keeps the shell's PID.
confine() {
	local bset=-all c
	while [ "$1" != -- ]; do c=${1#CAP_}; bset+=",+${c,,}"; shift; done
	shift
	BSET=$bset exec unshare --mount --uts --propagation private -- /bin/bash -c '
		set -e
		rw=($RW_PATHS)
		for p in "${rw[@]}"; do mount --bind "$p" "$p"; done
		# Every mount at or below /sys read-only, deepest first, but the
		# writable paths (and what is below them).
		findmnt -rn -o TARGET -R /sys | sort -r | while read -r m; do
			keep=
			for p in "${rw[@]}"; do [[ "$m" == "$p" || "$m" == "$p"/* ]] && keep=1; done
			[ -n "$keep" ] || mount -o remount,bind,ro "$m"
		done
		mount -t proc -o hidepid=invisible,subset=pid proc /proc
		mount -t tmpfs tmpfs /tmp
		mount -t tmpfs tmpfs /var/tmp
		exec setpriv --bounding-set "$BSET" --inh-caps -all --ambient-caps -all \
			--no-new-privs -- "$@"' confine "$@"
}
export RW_PATHS="${RW[*]}"

# start_d CAP... [-- WRAPPER...]: starts iovmd confined with these
# capabilities (under WRAPPER, if any), waits until it answers (as root, who
# may always connect). DPID is iovmd's PID (the wrapper's with one).
runs=0
start_d() {
	local caps=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do caps+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	runs=$((runs + 1))
	LOG=$W/iovmd-$runs.log
	confine "${caps[@]}" -- "$@" "$D" --socket "$SOCK" --state "$DB" --group "$GROUP" --socket-mode 0660 \
		--refresh-interval 500 --attach-timeout 60000 --detach-timeout 120000 \
		--log-level debug >> "$LOG" 2>&1 &
	DPID=$!
	iovmd_wait "$DPID" "$LOG"
}
stop_d() {
	[ -n "$DPID" ] || return 0
	local pid=$DPID
	# Under strace, iovmd is its child: stop iovmd and strace ends with
	# its summary written.
	[ "$(cat "/proc/$DPID/comm" 2>/dev/null)" = strace ] && pid=$(pgrep -P "$DPID" -x iovmd)
	kill "${pid:-$DPID}" 2>/dev/null
	wait "$DPID" 2>/dev/null; DPID=
}
cleanup() {
	stop_d
	cp "$W"/iovmd-*.log /run/iovm-lab/share/ 2>/dev/null
	$G stop g1 >/dev/null 2>&1
}
trap cleanup EXIT

# caps_of FIELD: a capability set of the daemon as /proc/PID/status shows it
# (CapEff, CapBnd, ...), by name, sorted, comma-separated.
caps_of() {
	capsh --decode="$(sed -n "s/^$1:\t//p" "/proc/$DPID/status")" | sed 's/.*=//' | tr ',' '\n' | sort | paste -sd,
}
# names CAP...: the same form for the unit's names
names() { printf '%s\n' "$@" | tr 'A-Z' 'a-z' | sort | paste -sd,; }

ip link set eth0 up
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
$G start g1 || die "guest g1 did not start"

# ---- 1. the unit's set -----------------------------------------------------------
# vfio-pci not loaded: iovmd, which cannot load modules, says which one.
modprobe -r vfio_pci macvtap 2>/dev/null
[ -d /sys/bus/pci/drivers/vfio-pci ] && fail "vfio-pci still loaded; the module check below proves nothing"
start_d "${CAPS[@]}" || die "iovmd did not start with ${CAPS[*]}"
eff=$(caps_of CapEff) bnd=$(caps_of CapBnd) want=$(names "${CAPS[@]}")
[ "$eff" = "$want" ] && [ "$bnd" = "$want" ] && ok "iovmd's effective and bounding sets: $eff" \
	|| fail "iovmd's capabilities: effective $eff, bounding $bnd, want $want"
grep -q '^NoNewPrivs:.*1' "/proc/$DPID/status" && ok "no_new_privs set" || fail "no_new_privs not set"
# The mounts iovmd sees: /sys read-only, the unit's paths below it writable.
mnt_opts() { awk -v m="$1" '$5 == m { split($6, o, ","); print o[1] }' "/proc/$DPID/mountinfo" | tail -n 1; }
seen="/sys:$(mnt_opts /sys)"
for p in "${RW[@]}"; do seen+=" $p:$(mnt_opts "$p")"; done
want="/sys:ro"
for p in "${RW[@]}"; do want+=" $p:rw"; done
[ "$seen" = "$want" ] && ok "iovmd's mounts: $seen" || fail "iovmd's mounts: $seen, want $want"
out=$(ctl pf set-vfs eth0 2 --driver vfio-pci 2>&1); rc=$?
[ $rc != 0 ] && [[ "$out" == *"modprobe vfio-pci"* ]] && ok "vfio-pci not loaded: refused ($rc): $out" \
	|| fail "set-vfs to vfio-pci without the module: rc=$rc $out"
# What the unit's ExecStartPre= loads, outside the sandbox.
read -r -a PRE <<<"$(sed -n 's|^ExecStartPre=-+/sbin/modprobe -a ||p' "$UNIT")"
[ ${#PRE[@]} -gt 0 ] || fail "$UNIT loads no modules before iovmd"
modprobe -a "${PRE[@]}" && ok "the unit's modules loaded: ${PRE[*]}" || die "modprobe -a ${PRE[*]}"
ctl pf set-vfs eth0 0 >/dev/null 2>&1
out=$(ctl pf set-vfs eth0 2 --driver vfio-pci 2>&1) && ok "pf set-vfs eth0 2 --driver vfio-pci: $out" \
	|| fail "set-vfs: $out $(tail -5 "$LOG")"
VF0=$(ctl --json vf show eth0/0 | jq -r .vf)
[ "$(drv "$VF0")" = vfio-pci ] && ok "$VF0 on vfio-pci" || fail "$VF0 on $(drv "$VF0")"
out=$(ctl vf set eth0/1 --mac 02:00:00:00:35:01 --vlan 35 2>&1) || fail "vf set: $out"
grep -q "vf 1 .*02:00:00:00:35:01.*vlan 35" < <(ip link show eth0) && ok "vf set: iproute2 agrees" \
	|| fail "iproute2: $(ip link show eth0 | grep 'vf 1')"
ctl vm add g1 --qmp "$(guest_qmp g1)" || fail "vm add g1"
out=$(ctl --json attach g1 --vf eth0/0 2>"$W/err") && ok "attach g1 eth0/0: $(jq -c . <<<"$out")" \
	|| fail "attach g1: $out $(cat "$W/err") $(tail -5 "$LOG")"
guest_wait_vfs g1 1 300 && ok "g1 sees its VF" || fail "g1 does not see its VF"
out=$(ctl detach g1 --vf eth0/0 2>&1) && ok "detach g1" || fail "detach g1: $out"
[ "$(drv "$VF0")" = vfio-pci ] || fail "$VF0 after detach on $(drv "$VF0"), want vfio-pci"
# A new count: the same one would change nothing (the driver applies to
# new VFs).
out=$(ctl pf set-vfs eth0 3 --driver host 2>&1) && ok "pf set-vfs eth0 3 --driver host: $out" \
	|| fail "set-vfs --driver host: $out"
[ "$(drv "$VF0")" = igbvf ] && ok "$VF0 back on igbvf" || fail "$VF0 on $(drv "$VF0"), want igbvf"
# A shared VF: a macvtap on the VF's netdev (rtnetlink), its /dev/tapN
# opened and handed to QEMU.
out=$(ctl --json attach g1 --vf eth0/1 --mode shared 2>"$W/err") && [ "$(jq -r .mode <<<"$out")" = shared ] \
	&& ok "shared attach g1 eth0/1: $(jq -c . <<<"$out")" || fail "shared attach: $out $(cat "$W/err") $(tail -5 "$LOG")"
n=$(ip -o link show type macvtap | wc -l)
[ "$n" = 1 ] && ok "one macvtap on the host" || fail "macvtaps: $(ip -o link show type macvtap)"
out=$(ctl detach g1 2>&1) && ok "detach the shared VF: $out" || fail "detach of the shared VF: $out"
n=$(ip -o link show type macvtap | wc -l)
[ "$n" = 0 ] && ok "no macvtap left" || fail "macvtaps after the detach: $(ip -o link show type macvtap)"
# The share left the VF's netdev up, which iovmd counts as a user of the VF
# (a resize would be refused): down again for the resizes below.
vfs_down() {
	local n
	for n in /sys/class/net/eth0/device/virtfn*/net/*; do [ -e "$n" ] && ip link set "${n##*/}" down; done
}
vfs_down
st=$(stat -c '%U:%G %a' "$SOCK")
[ "$st" = "root:$GROUP 660" ] && ok "socket $st" || fail "socket $st, want root:$GROUP 660"
out=$(as 65534 65534 "$CTL" --socket "$SOCK" --timeout 30 status 2>&1) && ok "a member of $GROUP (uid 65534) is served" \
	|| fail "member of $GROUP: $out"
out=$(as 4242 4242 "$CTL" --socket "$SOCK" --timeout 30 status 2>&1); rc=$?
[ $rc != 0 ] && [[ "$out" == *"ermission denied"* ]] && ok "a non-member (uid 4242) is refused: $out" \
	|| fail "non-member: rc=$rc $out"
grep -E "warning|error" "$LOG" | grep -v "refusing pid" | sed 's/^/  log: /'
stop_d

# ---- 2. each capability dropped ----------------------------------------------------
# needs_CAP: the operation that needs CAP fails, with its error, in an iovmd
# started without it.
needs_CAP_NET_ADMIN() { # VF settings go to the PF over rtnetlink
	local out rc
	out=$(ctl vf set eth0/0 --mac 02:00:00:00:35:02 2>&1); rc=$?
	[ $rc != 0 ] && [[ "$out" == *"Operation not permitted"* || "$out" == *EPERM* ]] \
		&& ok "without CAP_NET_ADMIN, vf set fails ($rc): $out" \
		|| fail "without CAP_NET_ADMIN, vf set: rc=$rc $out"
	grep -q "vf 0 .*02:00:00:00:35:02" < <(ip link show eth0) && fail "the MAC was set anyway"
}
needs_CAP_CHOWN() { # the socket goes to its group
	local st out rc
	st=$(stat -c '%U:%G %a' "$SOCK")
	grep -q "cannot give $SOCK to group $GROUP" "$LOG" && [ "$st" = "root:root 660" ] \
		&& ok "without CAP_CHOWN, the socket stays $st: $(grep -m1 'cannot give' "$LOG")" \
		|| fail "without CAP_CHOWN: socket $st; log: $(grep -m1 'cannot give' "$LOG")"
	out=$(as 65534 65534 "$CTL" --socket "$SOCK" --timeout 30 status 2>&1); rc=$?
	[ $rc != 0 ] && [[ "$out" == *"ermission denied"* ]] \
		&& ok "without CAP_CHOWN, a member of $GROUP is shut out ($rc): $out" \
		|| fail "without CAP_CHOWN, member of $GROUP: rc=$rc $out"
}
for cap in "${CAPS[@]}"; do
	rest=()
	for c in "${CAPS[@]}"; do [ "$c" = "$cap" ] || rest+=("$c"); done
	if ! declare -F "needs_$cap" >/dev/null; then
		fail "$cap is in the unit's set but nothing here shows what needs it"
		continue
	fi
	start_d "${rest[@]}" || continue
	ok "iovmd without $cap: effective set $(caps_of CapEff)"
	"needs_$cap"
	stop_d
done
# ---- each writable path dropped ---------------------------------------------------
# VF count: a write to sriov_numvfs (/sys/devices); a VF's driver:
# driver_override (/sys/devices) and drivers_probe (/sys/bus/pci).
n=2      # a count different from the last, each time
for p in "${RW[@]}"; do
	RW_PATHS=$(for q in "${RW[@]}"; do [ "$q" = "$p" ] || printf '%s ' "$q"; done)
	export RW_PATHS
	start_d "${CAPS[@]}" || continue
	out=$(ctl pf set-vfs eth0 $n --driver vfio-pci 2>&1); rc=$?
	[ $rc != 0 ] && [[ "$out" == *"Read-only file system"* ]] \
		&& ok "without $p writable, set-vfs eth0 $n fails ($rc): $out" \
		|| fail "without $p writable, set-vfs eth0 $n: rc=$rc $out"
	stop_d
	n=$((n - 1))
done
RW_PATHS="${RW[*]}"
export RW_PATHS

# ---- 3. the system calls of the flow, against the unit's filter ---------------------
# Not applied here (that needs systemd), but checked: every system call
# iovmd and its deadline workers make in the flow must be one the unit's
# SystemCallFilter= lets through (tests/lab/lib/syscall_filter.py).
TRACE=$W/strace.txt
start_d "${CAPS[@]}" -- strace -f -c -o "$TRACE" || die "iovmd under strace did not start"
out=$(ctl pf set-vfs eth0 3 --driver vfio-pci 2>&1) || fail "traced: set-vfs to vfio-pci: $out"
out=$(ctl vf set eth0/0 --mac 02:00:00:00:35:03 2>&1) || fail "traced: vf set: $out"
out=$(ctl attach g1 --vf eth0/0 2>&1) || fail "traced: attach: $out"
out=$(ctl detach g1 2>&1) || fail "traced: detach: $out"
out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || fail "traced: set-vfs to the host driver: $out"
out=$(ctl attach g1 --vf eth0/1 --mode shared 2>&1) || fail "traced: shared attach: $out"
out=$(ctl detach g1 2>&1) || fail "traced: shared detach: $out"
vfs_down
stop_d
if out=$(python3 tests/lab/lib/syscall_filter.py "$UNIT" "$TRACE"); then
	ok "the unit's system call filter: $out"
else
	fail "the unit's system call filter: $out"
fi
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
[ "$fails" = 0 ]
