# shellcheck shell=bash
# Lab helper: traffic between two igb VFs (one per NIC) bound to igbvf, each
# in its own network namespace. Source this file, then:
#
#   vf_traffic_setup PF_A_ADDR VF_IDX_A PF_B_ADDR VF_IDX_B NS_A NS_B IP_A IP_B
#
# e.g. vf_traffic_setup 0000:01:00.0 1 0000:02:00.0 1 a b 192.0.2.1 192.0.2.2
#
# or, for one end only (a sink for senders that are not host VFs, such as
# nested guests):
#
#   vf_endpoint_setup PF_ADDR VF_IDX NS IP     (sets VF_TRAFFIC_DEV)
#
# Preconditions: the VFs exist (sriov_numvfs), sriov_drivers_autoprobe=0 and
# they are unbound. IP_A/IP_B may carry a prefix length (default /24).
# It brings both PFs up and waits for their carrier; then, one VF at a time, it
# sets the VF's MAC through its PF, binds it to igbvf, checks that igbvf
# adopted the PF-set MAC (the proof that the VF<->PF mailbox handshake worked;
# rebinds up to 3 times if not), moves the netdev into its namespace (created
# if missing), disables IPv6 on it, configures the address, brings it up and
# waits for carrier (bouncing the netdev, which redoes the handshake, up to 3
# times); finally it waits for a first ping from A to B. Every wait polls a
# condition up to a deadline (VF_TRAFFIC_TIMEOUT, default 60 s; a quarter of
# it per carrier attempt). Returns 0, or 1 with a message on stderr. On
# success it sets VF_TRAFFIC_DEV_A / VF_TRAFFIC_DEV_B (the netdev names inside
# the namespaces). Nothing is undone on failure (left for inspection).
#
# Why the PF must be up before the bind: igbvf's probe resets the VF and waits
# for the mailbox's RSTI bit to clear, which happens only when the PF driver
# writes CTRL_EXT.PFRSTD (igb does so in __igb_open, i.e. on `ip link set PF
# up`; any PF reset sets RSTI again). It then sends E1000_VF_RESET; igb's
# reply carries the PF-set MAC and enables the VF's Rx/Tx (VFRE/VFTE).
#
# Known emulation bug (QEMU from cab1398a60eb "pcie_sriov: Reuse SR-IOV VF
# device instances" until "pcie_sriov: Fix broken MMIO accesses from SR-IOV
# VFs", 2025; Debian's 10.0.2 has it): the VFs are realized inside
# pcie_sriov_pf_init(), before igb declares the VF BARs 64-bit, so igbvf's
# pcie_sriov_vf_register_bar() registers them as 32-bit and a VF BAR placed
# above 4 GiB is mapped at its address truncated to 32 bits (QEMU `info pci`:
# "BAR0: 32 bit memory at 0x20004000" for a BAR at 0xc020004000). Every VF
# register access is then lost: igbvf logs "PF still in reset state", assigns
# a random MAC and never gets carrier. SeaBIOS moves 64-bit BARs (and so the
# root ports' prefetchable windows that Linux puts the VF BARs in) above 4 GiB
# whenever the guest has RAM above 4 GiB, which q35 does from 2816 MiB on:
# boot the lab with less (IOVM_LAB_MEM=2048). This function detects the case
# and says so.

_vft_err() { echo "vf_traffic_setup: $*" >&2; }

# _vft_wait SECONDS WHAT CMD...: poll CMD until it succeeds or the deadline.
_vft_wait() {
	local secs=$1 what=$2; shift 2
	local end=$(( $(date +%s%N) + secs * 1000000000 ))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		if [ "$(date +%s%N)" -ge "$end" ]; then
			_vft_err "timed out after ${secs}s waiting for $what"
			return 1
		fi
		sleep 0.1
	done
}

_vft_carrier() { [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]; }
_vft_ns_lower_up() { grep -q 'LOWER_UP' < <(ip -n "$1" -o link show dev "$2" 2>/dev/null); }
_vft_has_netdev() { compgen -G "/sys/bus/pci/devices/$1/net/*" >/dev/null; }

# The VF's PCI address: /sys/.../PF/virtfnN
_vft_vf_addr() {
	local l
	l=$(readlink "/sys/bus/pci/devices/$1/virtfn$2" 2>/dev/null) || return 1
	basename "$l"
}

# A deterministic locally administered MAC for VF IDX of PF (bus, dev, fn).
_vft_mac() {
	local pf=$1 idx=$2 bus dev fn
	bus=$(( 16#$(echo "$pf" | cut -d: -f2) ))
	dev=$(( 16#$(echo "$pf" | cut -d: -f3 | cut -d. -f1) ))
	fn=$(( $(echo "$pf" | cut -d. -f2) ))
	printf '02:76:%02x:%02x:%02x:%02x\n' "$bus" "$dev" "$fn" "$idx"
}

# Explain an igbvf probe that did not adopt the PF-set MAC.
_vft_diagnose() {
	local vf=$1 start
	start=$(awk 'NR == 1 { print $1 }' "/sys/bus/pci/devices/$vf/resource" 2>/dev/null)
	dmesg | grep "igbvf $vf" | tail -n 4 | sed 's/^/vf_traffic_setup:   dmesg: /' >&2
	if [ -n "$start" ] && [ $((start)) -gt $((0xffffffff)) ]; then
		_vft_err "$vf: its BAR 0 is at $start, above 4 GiB, and this QEMU maps igbvf BARs" \
			"as 32-bit (VF register accesses are lost; see tests/lab/lib/vf-traffic.sh)." \
			"Boot the lab with less than 2816 MiB of RAM (IOVM_LAB_MEM=2048) so the VF BARs" \
			"land below 4 GiB."
	else
		_vft_err "$vf: the VF<->PF mailbox reset failed (is the PF up, and was it not reset after the bind?)"
	fi
}

# _vft_one PF IDX NS IP -> prints the netdev name
_vft_one() {
	local pf=$1 idx=$2 ns=$3 ip=$4 t=${VF_TRAFFIC_TIMEOUT:-60}
	local vf pfdev mac nd got drv try
	vf=$(_vft_vf_addr "$pf" "$idx") || { _vft_err "$pf has no VF $idx"; return 1; }
	pfdev=$(ls "/sys/bus/pci/devices/$pf/net" 2>/dev/null | head -n 1)
	[ -n "$pfdev" ] || { _vft_err "$pf has no netdev (is igb bound?)"; return 1; }
	if [ -e "/sys/bus/pci/devices/$vf/driver" ]; then
		drv=$(basename "$(readlink "/sys/bus/pci/devices/$vf/driver")")
		_vft_err "$vf is bound to $drv; it must be unbound"; return 1
	fi
	mac=$(_vft_mac "$pf" "$idx")
	# The PF-set MAC sticks only with the PF up; igb hands it to the VF in
	# its reply to the VF's reset message when igbvf probes.
	ip link set dev "$pfdev" vf "$idx" mac "$mac" || { _vft_err "setting $pfdev vf $idx mac $mac failed"; return 1; }
	echo igbvf > "/sys/bus/pci/devices/$vf/driver_override" || return 1
	# igbvf's probe resets the VF and asks the PF for its MAC over the
	# mailbox, with 1 s budgets that a loaded TCG host can overrun: a
	# failed handshake shows as a MAC other than the PF-set one (igbvf
	# then makes up a random one). Rebind until the MAC is adopted.
	for try in 1 2 3; do
		echo "$vf" > /sys/bus/pci/drivers/igbvf/bind 2>/dev/null || true
		_vft_wait "$t" "a netdev on $vf (igbvf bind)" _vft_has_netdev "$vf" || { _vft_diagnose "$vf"; return 1; }
		nd=$(basename "$(ls -d "/sys/bus/pci/devices/$vf/net/"* | head -n 1)")
		got=$(cat "/sys/class/net/$nd/address")
		[ "$got" = "$mac" ] && break
		_vft_err "$vf ($nd) has MAC $got, not the PF-set $mac (attempt $try)"
		if [ $try = 3 ] || [ $((16#$(awk 'NR == 1 { print substr($1, 3) }' "/sys/bus/pci/devices/$vf/resource"))) -gt $((0xffffffff)) ]; then
			_vft_diagnose "$vf"; return 1
		fi
		echo "$vf" > /sys/bus/pci/drivers/igbvf/unbind
		_vft_wait "$t" "$vf to unbind" test ! -e "/sys/bus/pci/devices/$vf/driver" || return 1
	done
	grep -qw "^$ns" < <(ip netns list) || ip netns add "$ns" || return 1
	ip -n "$ns" link set dev lo up
	ip link set dev "$nd" netns "$ns" || { _vft_err "moving $nd into netns $ns failed"; return 1; }
	case $ip in */*) ;; *) ip=$ip/24 ;; esac
	ip -n "$ns" addr add "$ip" dev "$nd" || { _vft_err "ip addr add $ip dev $nd (netns $ns) failed"; return 1; }
	# No IPv6: its multicast joins are mailbox requests to the PF that can
	# only go wrong here, and the test traffic is IPv4.
	ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$nd.disable_ipv6=1" 2>/dev/null || true
	ip -n "$ns" link set dev "$nd" up || return 1
	echo "$nd"
}

# _vft_link NS DEV: wait for carrier. igbvf reports carrier once the PF has
# answered it over the mailbox (a message with CTS); a request the PF did not
# answer within igbvf's 1 s budget (slow TCG host) leaves it down for good
# without an error. A down/up re-runs the VF reset handshake (igbvf_down ->
# igbvf_reset -> e1000_reset_hw_vf), so retry that way.
_vft_link() {
	local ns=$1 nd=$2 t=${VF_TRAFFIC_TIMEOUT:-60} try per
	per=$(( t / 4 )); [ "$per" -ge 10 ] || per=10
	for try in 1 2 3 4; do
		_vft_wait "$per" "carrier on $nd (netns $ns, attempt $try)" _vft_ns_lower_up "$ns" "$nd" 2>/dev/null && return 0
		_vft_err "no carrier on $nd (netns $ns) after ${per}s (attempt $try); bouncing it"
		ip -n "$ns" link set dev "$nd" down
		ip -n "$ns" link set dev "$nd" up || return 1
	done
	_vft_err "no carrier on $nd (netns $ns) after 4 attempts"
	return 1
}

# _vft_up PF IDX NS IP -> prints the netdev name: _vft_one, then carrier.
# A VF that gets no carrier through four bounces is unbound and probed once
# more: its probe's reset handshake is the one that can be redone.
_vft_up() {
	local pf=$1 idx=$2 ns=$3 ip=$4 vf nd try
	for try in 1 2; do
		nd=$(_vft_one "$pf" "$idx" "$ns" "$ip") || return 1
		_vft_link "$ns" "$nd" && { echo "$nd"; return 0; }
		[ $try = 2 ] && return 1
		vf=$(_vft_vf_addr "$pf" "$idx") || return 1
		_vft_err "$vf ($nd): probing it again"
		echo "$vf" > /sys/bus/pci/drivers/igbvf/unbind
		_vft_wait "${VF_TRAFFIC_TIMEOUT:-60}" "$vf to unbind" test ! -e "/sys/bus/pci/devices/$vf/driver" ||
			return 1
	done
}

# _vft_pf_up PF: bring the PF up and wait for its carrier. Bringing a down
# PF up clears RSTI for its VFs (PFRSTD); an up PF is left alone (a bounce
# would reset the VFs' mailboxes).
_vft_pf_up() {
	local pf=$1 pfdev
	pfdev=$(ls "/sys/bus/pci/devices/$pf/net" 2>/dev/null | head -n 1)
	[ -n "$pfdev" ] || { _vft_err "$pf has no netdev (is igb bound?)"; return 1; }
	ip link set dev "$pfdev" up || return 1
	_vft_wait "${VF_TRAFFIC_TIMEOUT:-60}" "carrier on $pfdev ($pf)" _vft_carrier "$pfdev"
}

vf_traffic_setup() {
	if [ $# -ne 8 ]; then
		_vft_err "usage: vf_traffic_setup PF_A_ADDR VF_IDX PF_B_ADDR VF_IDX NS_A NS_B IP_A IP_B"
		return 1
	fi
	local pfa=$1 ia=$2 pfb=$3 ib=$4 nsa=$5 nsb=$6 ipa=$7 ipb=$8 t=${VF_TRAFFIC_TIMEOUT:-60}
	local pf da db
	modprobe igbvf || { _vft_err "modprobe igbvf failed"; return 1; }
	for pf in "$pfa" "$pfb"; do
		_vft_pf_up "$pf" || return 1
	done
	# One VF at a time, each up to carrier before the next is bound: the
	# two VFs' mailbox exchanges (probe, open) then do not compete for the
	# emulator's CPU.
	da=$(_vft_up "$pfa" "$ia" "$nsa" "$ipa") || return 1
	db=$(_vft_up "$pfb" "$ib" "$nsb" "$ipb") || return 1
	# First packet: ARP through both PFs' VF filters and the cable.
	_vft_wait "$t" "a ping from $nsa to ${ipb%/*}" \
		ip netns exec "$nsa" ping -c 1 -W 1 "${ipb%/*}" || return 1
	# shellcheck disable=SC2034 # for the caller
	VF_TRAFFIC_DEV_A=$da
	# shellcheck disable=SC2034
	VF_TRAFFIC_DEV_B=$db
	return 0
}

vf_endpoint_setup() {
	if [ $# -ne 4 ]; then
		_vft_err "usage: vf_endpoint_setup PF_ADDR VF_IDX NS IP"
		return 1
	fi
	local pf=$1 idx=$2 ns=$3 ip=$4 dev
	modprobe igbvf || { _vft_err "modprobe igbvf failed"; return 1; }
	_vft_pf_up "$pf" || return 1
	dev=$(_vft_up "$pf" "$idx" "$ns" "$ip") || return 1
	# shellcheck disable=SC2034 # for the caller
	VF_TRAFFIC_DEV=$dev
	return 0
}
