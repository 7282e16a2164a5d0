# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Lab helper: cheap questions to a nested guest (lab/guest exec), for the
# scenarios that poll until a hot-plugged device shows up or goes away.
#
# A nested guest runs TCG inside TCG: every process it starts costs it
# around a second of CPU, and a poll that starts `cat` per sysfs file
# (tens of processes) every two seconds keeps the guest busy with the poll
# instead of with the hot-plug it waits for. So each question here is one
# `sh -c` that reads sysfs with the shell's own `read` and ${x##*/}, and
# the waits poll every GUEST_POLL_SECS (default 3).
#
# Needs G (the lab/guest command). The guest's error output goes to
# GUEST_EXEC_ERR if set.

# guest_qmp GUEST: the QMP socket lab/guest gives the guest (the one iovm's
# tools and iovmd talk to; `lab/guest qmp` uses a second monitor).
guest_qmp() { echo "/run/iovm-lab/guests/$1/qmp.sock"; }

# guest_pci_count GUEST PATTERN: how many PCI functions whose
# "vendor:device" matches the case PATTERN (e.g. '0x8086:0x10ca',
# '0x1af4:0x1000|0x1af4:0x1041'). Empty output if the guest did not answer.
guest_pci_count() {
	$G exec "$1" -- sh -c "n=0; for d in /sys/bus/pci/devices/*; do
		read v < \$d/vendor; read i < \$d/device
		case \$v:\$i in $2) n=\$((n + 1)) ;; esac; done; echo \$n" 2>>"${GUEST_EXEC_ERR:-/dev/null}" | tr -d '\r\n '
}

# guest_if_by_mac GUEST MAC: the guest's interface with that address, or "".
guest_if_by_mac() {
	$G exec "$1" -- sh -c "for i in /sys/class/net/*; do
		read a < \$i/address; [ \"\$a\" = $2 ] && echo \${i##*/}; done; true" 2>>"${GUEST_EXEC_ERR:-/dev/null}" | tr -d '\r'
}

# guest_if_state GUEST IF: "IFINDEX PCI-ADDRESS HOTPLUG-EVENTS" of GUEST's
# interface IF: what a guest that kept its device keeps (the count of
# PCIe hot-plug messages in its kernel log must not grow either).
guest_if_state() {
	$G exec --timeout 120 "$1" -- sh -c "read i < /sys/class/net/$2/ifindex
		d=\$(readlink /sys/class/net/$2/device)
		echo \$i \${d##*/} \$(dmesg | grep -ciE 'pciehp.*(link down|card not present|removed)')" 2>/dev/null | tr -d '\r'
}

# guest_if_by_dev GUEST PATTERN: the first interface whose PCI
# "vendor:device" matches the case PATTERN, or "".
guest_if_by_dev() {
	$G exec "$1" -- sh -c "for i in /sys/class/net/*; do
		[ -e \$i/device/vendor ] || continue
		read v < \$i/device/vendor; read d < \$i/device/device
		case \$v:\$d in $2) echo \${i##*/}; exit 0 ;; esac; done; true" 2>>"${GUEST_EXEC_ERR:-/dev/null}" | tr -d '\r'
}

# guest_wait SECONDS CMD...: run CMD every GUEST_POLL_SECS until it succeeds
# or SECONDS pass; returns its last status.
guest_wait() {
	local deadline=$(( $(date +%s) + $1 )); shift
	while :; do
		"$@" && return 0
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep "${GUEST_POLL_SECS:-3}"
	done
}

# guest_vfs GUEST: how many 82576 VFs (8086:10ca) the guest sees. The
# guest's error output goes to $TMPDIR/guest-exec.err, which guest_wait_vfs
# quotes when it gives up.
guest_vfs() {
	GUEST_EXEC_ERR=${TMPDIR:-/tmp}/guest-exec.err guest_pci_count "$1" 0x8086:0x10ca
}

# guest_wait_vfs GUEST N SECONDS: poll until the guest sees N VFs.
guest_wait_vfs() {
	local deadline=$(( $(date +%s) + $3 )) n
	while :; do
		n=$(guest_vfs "$1")
		[ "$n" = "$2" ] && return 0
		[ "$(date +%s)" -ge "$deadline" ] && { echo "guest $1 sees '$n' VFs, want $2;" \
			"last exec errors: $(tail -3 "${TMPDIR:-/tmp}/guest-exec.err" 2>/dev/null)" >&2; return 1; }
		sleep "${GUEST_POLL_SECS:-3}"
	done
}

# Several guests on one emulated host. A nested guest costs the emulated
# host's single TCG CPU about a third of it even when idle, so four running
# guests leave nothing for the work a scenario waits for: started together,
# their agents did not answer within 600 s (docs/lab.md). Scenarios with
# several guests therefore start them one at a time, pause each, and let
# run only the guests a step needs.

_guest_say() { echo "[$(date +%T)] $*"; }

# guests_start_paused G...: start each guest alone (lab/guest start, which
# restores it and waits for a first command; deadline GUEST_START_SECS,
# default 900), then pause it (QMP stop through lab/guest's own monitor).
guests_start_paused() {
	local g
	for g in "$@"; do
		$G start "$g" --timeout "${GUEST_START_SECS:-900}" || { echo "guest $g did not start" >&2; return 1; }
		$G qmp "$g" stop >/dev/null || { echo "guest $g: QMP stop failed" >&2; return 1; }
		_guest_say "$g started and paused"
	done
}

# guests_only "ALL" [G...]: of the guests in ALL (space-separated), exactly
# G... run; the others are paused. A paused guest's vCPUs halt (its clock
# too); its devices and any other QMP connection to it (iovmd's) stay.
guests_only() {
	local all=$1 g k verb; shift
	for g in $all; do
		verb=stop
		for k in "$@"; do [ "$g" = "$k" ] && verb=cont; done
		$G qmp "$g" "$verb" >/dev/null || { echo "guest $g: QMP $verb failed" >&2; return 1; }
	done
	_guest_say "running: ${*:-none}"
}

# host_vf_bounce VF: down/up the emulated host's igbvf netdev of a (shared)
# VF that has no carrier: that redoes igbvf's mailbox handshake with the PF,
# which a loaded emulator can make overrun its budgets. Its macvtaps stay.
host_vf_bounce() {
	local nd
	nd=$(basename "$(ls -d "/sys/bus/pci/devices/$1/net/"* 2>/dev/null | head -n 1)")
	[ -n "$nd" ] && [ "$(cat "/sys/class/net/$nd/carrier" 2>/dev/null)" != 1 ] || return 0
	_guest_say "host netdev $nd of $1 has no carrier: bouncing it"
	ip link set "$nd" down; ip link set "$nd" up
}

# guest_vf_net G MODE VF IP MAC SRV_IP SRV_NS SRV_DEV: give the running
# guest G's interface for VF (MODE exclusive: the igbvf of a passthrough
# 82576 VF; shared: virtio-net over a macvtap) the address IP/24 and make
# it reach SRV_IP, the address of SRV_DEV in netns SRV_NS. MAC, if not
# empty, is set on an exclusive VF's interface (a probe under load can miss
# the MAC the PF set). Neighbour entries are pinned both ways: with round
# trips of seconds an entry gone stale may not be re-resolved in time
# (busybox ip has no "neigh replace"; its arp -s is permanent). Each step
# is bounded and named when it fails. Sets GUEST_NET_IF and GUEST_NET_MAC;
# returns 1 with a message on stderr.
guest_vf_net() {
	local g=$1 mode=$2 vf=$3 ip=$4 mac=$5 srv_ip=$6 srv_ns=$7 srv_dev=$8
	local want=0x8086:0x10ca ifc="" deadline srv_mac try err=${TMPDIR:-/tmp}/guest-vf-net.$$.err
	[ "$mode" = shared ] && want='0x1af4:*'
	GUEST_NET_IF='' GUEST_NET_MAC=''
	srv_mac=$(ip netns exec "$srv_ns" cat "/sys/class/net/$srv_dev/address") ||
		{ echo "$g: no $srv_dev in netns $srv_ns" >&2; return 1; }
	deadline=$(( $(date +%s) + ${GUEST_NET_SECS:-600} ))
	_guest_say "$g: looking for its $mode interface for $vf"
	while [ -z "$ifc" ] && [ "$(date +%s)" -lt "$deadline" ]; do
		ifc=$(GUEST_EXEC_ERR=$err guest_if_by_dev "$g" "$want")
		[ -n "$ifc" ] || { _guest_say "$g: not yet ($(tail -n 1 "$err" 2>/dev/null))"; sleep "${GUEST_POLL_SECS:-3}"; }
	done
	rm -f "$err"
	[ -n "$ifc" ] || { echo "$g shows no interface for $vf" >&2; return 1; }
	_guest_say "$g: configuring $ifc"
	# One guest process for all the steps: each process costs a nested
	# guest seconds. The step that fails is named; a MAC that does not
	# take is only reported.
	local setmac=: out
	[ "$mode" = exclusive ] && [ -n "$mac" ] &&
		setmac="ip link set $ifc address $mac || echo 'setting $mac on $ifc failed; keeping the address it has' >&2"
	out=$($G exec --timeout 300 "$g" -- sh -c "$setmac
		for step in 'ip addr flush dev $ifc' 'ip addr add $ip/24 dev $ifc' 'ip link set $ifc up' \
			'arp -i $ifc -s $srv_ip $srv_mac'; do
			\$step || { echo \"'\$step' failed\" >&2; exit 1; }
		done
		cat /sys/class/net/$ifc/address") || { echo "$g: configuring $ifc failed" >&2; return 1; }
	GUEST_NET_MAC=$(printf '%s\n' "$out" | tr -d '\r' | tail -n 1)
	[ -n "$GUEST_NET_MAC" ] || { echo "$g: cannot read the address of $ifc" >&2; return 1; }
	ip -n "$srv_ns" neigh replace "$ip" lladdr "$GUEST_NET_MAC" dev "$srv_dev" nud permanent
	_guest_say "$g: $ifc has $GUEST_NET_MAC; pinging $srv_ip"
	for try in 1 2 3; do
		# igbvf may miss its link-up mailbox answer under load: bounce it
		# (in the guest when exclusive, in the host when shared).
		$G exec --timeout 300 "$g" -- sh -c "for i in 1 2 3; do ping -c 2 -W 10 $srv_ip >/dev/null && exit 0
			[ $mode = exclusive ] && { ip link set $ifc down; ip link set $ifc up; }; done; exit 1" && break
		[ $try = 3 ] && { echo "$g cannot ping $srv_ip through $ifc" >&2; return 1; }
		[ "$mode" = shared ] && host_vf_bounce "$vf"
	done
	GUEST_NET_IF=$ifc
	_guest_say "$g: $ifc $GUEST_NET_MAC $ip reaches $srv_ip"
}
