#!/bin/bash
# lab-seconds: 240
# Lab: VFs are ready when handed out (docs/sriov.md, "PF-ready"). A NIC VF's
# driver starts with a reset handshake over the VF<->PF mailbox, which igb
# serves only while the PF netdev is open. Shown here:
#  1. the condition: VFs created by hand on a PF whose netdev is down fail the
#     handshake (igbvf: "PF still in reset state", a random MAC, not the one
#     set through the PF);
#  2. iovm-sriov set-vfs on a PF that is down brings it up first: in 5
#     create/bind cycles every VF adopts its PF-set MAC and gets carrier
#     (a probe whose handshake failed all the same, which an emulated host
#     under load shows, is probed again by iovm; the count is printed);
#  2b. set-vfs ... host creates the VFs with autoprobe off and binds igbvf
#     after the store: in 3 cycles both VFs get carrier;
#  3. in 3 cycles of set-vfs 0 -> 2 vfio and an immediate hot-plug into a
#     running guest, the guest's igbvf adopts the PF-set MAC and gets carrier.
set -uo pipefail
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
# shellcheck source=lib/guest.sh
. tests/lab/lib/guest.sh
B=${IOVM_BUILD:?}
T=$B/src/tools/iovm-sriov/iovm-sriov
G=lab/guest
[ -x "$T" ] || skip "iovm-sriov not built"
[ -d /sys/class/net/eth0 ] || skip "no emulated igb (not in the lab?)"
[ -x "$G" ] || skip "no lab/guest"
modprobe vfio-pci && modprobe igbvf || skip "vfio-pci/igbvf modules missing"
PFN=eth0
PF=/sys/class/net/$PFN/device
trap '$G stop g1 >/dev/null 2>&1' EXIT

vf() { basename "$(readlink $PF/virtfn$1)"; }
pf_up() { [ $(( $(cat /sys/class/net/$PFN/flags) & 1 )) = 1 ]; }
# until SECS CMD...: polls CMD every 0.2 s until it succeeds or SECS pass.
until_ok() {
	local end=$(( $(date +%s) + $1 )); shift
	until "$@"; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.2; done
}
carrier() { [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]; }
# pf_still VF: how many failed reset handshakes igbvf logged for VF.
pf_still() { dmesg | grep -c "igbvf $1: PF still"; }
# up_carrier ND VF: brings ND (VF's netdev) up and waits for carrier, at most
# 180 s. igbvf has carrier after a reset handshake with the PF (done by the
# down before the up, or by igbvf's reset task every 10 s) whose 1-s budgets
# an emulated host under load overruns; igbvf then stays without carrier
# until its next reset. So ND is bounced after 15 s without carrier, or at
# once when igbvf logged a failed handshake for VF since the last bounce
# (tests/lab/lib/vf-traffic.sh, _vft_link).
up_carrier() {
	local nd=$1 v=$2 end=$(( $(date +%s) + 180 )) try=0 seen next now
	seen=$(pf_still "$v")
	while :; do
		try=$((try + 1))
		ip link set "$nd" up
		next=$(( $(date +%s) + 15 ))
		until carrier "$nd"; do
			now=$(date +%s)
			[ "$now" -lt "$end" ] || { echo "  $nd: no carrier after $try attempts in 180 s"; return 1; }
			if [ "$now" -ge "$next" ]; then
				echo "  $nd: no carrier after 15 s (attempt $try); bouncing it"; break
			fi
			if [ "$(pf_still "$v")" -gt "$seen" ]; then
				echo "  $nd: igbvf's handshake failed (attempt $try); bouncing it"; break
			fi
			sleep 0.2
		done
		carrier "$nd" && return 0
		seen=$(pf_still "$v")
		ip link set "$nd" down
	done
}
has_netdev() { compgen -G "/sys/bus/pci/devices/$1/net/*" >/dev/null; }
# bind_igbvf IDX: binds VF IDX to igbvf by hand; prints "NETDEV MAC".
bind_igbvf() {
	local v nd
	v=$(vf "$1")
	echo igbvf > "/sys/bus/pci/devices/$v/driver_override"
	echo "$v" > /sys/bus/pci/drivers/igbvf/bind 2>/dev/null
	until_ok 60 has_netdev "$v" || { echo "- -"; return; }
	nd=$(basename "$(ls -d "/sys/bus/pci/devices/$v/net/"* | head -n 1)")
	echo "$nd $(cat "/sys/class/net/$nd/address")"
}

# ---- 1. the condition ---------------------------------------------------------------
ip link set $PFN down
echo 0 > $PF/sriov_drivers_autoprobe
echo 0 > $PF/sriov_numvfs; echo 2 > $PF/sriov_numvfs || die "cannot create VFs"
dmesg -C
read -r nd mac <<<"$(bind_igbvf 0)"
[ "$nd" != - ] && grep -q "PF still in reset state" < <(dmesg) \
	&& ok "PF down: igbvf on $(vf 0) failed its handshake ($nd got $mac; dmesg: $(dmesg | grep -o 'PF still[^.]*' | sort -u | paste -sd,))" \
	|| fail "PF down: expected igbvf's handshake to fail; netdev $nd $mac; dmesg: $(dmesg | grep -E "igb(vf)? " | tail -6)"
echo "$(vf 0)" > /sys/bus/pci/drivers/igbvf/unbind
echo 0 > $PF/sriov_numvfs

# ---- 2. set-vfs brings the PF up; create/bind cycles in the emulated host -----------
for c in 1 2 3 4 5; do
	ip link set $PFN down
	out=$("$T" set-vfs $PFN 2 vfio 2>&1) || { fail "cycle $c: set-vfs: $out"; continue; }
	pf_up && ok "cycle $c: set-vfs brought $PFN up" || fail "cycle $c: $PFN still down after set-vfs"
	dmesg -C
	for i in 0 1; do
		want=02:14:00:00:0$c:0$i
		ip link set $PFN vf $i mac $want || fail "cycle $c: vf $i mac"
		expect 0 "$T" bind "$(vf $i)" host >/dev/null
		nd=$(basename "$(ls -d "/sys/bus/pci/devices/$(vf $i)/net/"* 2>/dev/null | head -n 1)")
		got=$(cat "/sys/class/net/$nd/address" 2>/dev/null)
		[ "$got" = "$want" ] && ok "cycle $c: vf $i ($nd) adopted its PF-set MAC $want" \
			|| fail "cycle $c: vf $i ($nd) has MAC '$got', want $want; dmesg: $(dmesg | grep -E "igb(vf)? " | tail -6)"
		up_carrier "$nd" "$(vf $i)" && ok "cycle $c: vf $i ($nd) has carrier" \
			|| fail "cycle $c: vf $i ($nd) no carrier within 180 s; dmesg: $(dmesg | grep -E "igb(vf)? " | tail -6)"
		ip link set "$nd" down
	done
	# A probe whose handshake failed is re-probed by iovm (the VF's MAC
	# was not the PF-set one): what counts is the MAC and carrier above.
	n=$(dmesg | grep -c "PF still in reset state")
	[ "$n" = 0 ] || echo "  cycle $c: $n igbvf probe(s) failed their handshake and were probed again"
	expect 0 "$T" set-vfs $PFN 0 >/dev/null
done

# ---- 2b. the host driver: bound after the store, not probed inside it ---------------
# With autoprobe on, igbvf would probe inside the store, before igb reopens the
# PF with the VFs' mailbox served; set-vfs ... host binds after the store.
for c in 1 2 3; do
	ip link set $PFN up
	dmesg -C
	out=$("$T" set-vfs $PFN 2 host 2>&1) || { fail "host cycle $c: set-vfs: $out"; continue; }
	[ "$(cat $PF/sriov_drivers_autoprobe)" = 1 ] || fail "host cycle $c: autoprobe not left on"
	n=$(dmesg | grep -c "PF still")
	[ "$n" = 0 ] || echo "  host cycle $c: igbvf logged 'PF still' $n times: $(dmesg | grep 'PF still' | head -2)"
	for i in 0 1; do
		nd=$(basename "$(ls -d "/sys/bus/pci/devices/$(vf $i)/net/"* 2>/dev/null | head -n 1)")
		[ "$(drv "$(vf $i)")" = igbvf ] || fail "host cycle $c: vf $i on $(drv "$(vf $i)")"
		up_carrier "$nd" "$(vf $i)" && ok "host cycle $c: vf $i ($nd) has carrier" \
			|| fail "host cycle $c: vf $i ($nd) no carrier within 180 s; dmesg: $(dmesg | grep -E "igb(vf)? " | tail -6)"
		ip link set "$nd" down
	done
	expect 0 "$T" set-vfs $PFN 0 >/dev/null
done

# ---- 3. a running guest gets a VF at once after its creation ------------------------
ip link set $PFN down
$G start g1 >/dev/null || die "guest g1 did not start"
for c in 1 2 3; do
	out=$("$T" set-vfs $PFN 0 2>&1) || fail "guest cycle $c: set-vfs 0: $out"
	ip link set $PFN down
	out=$("$T" set-vfs $PFN 2 vfio 2>&1) || { fail "guest cycle $c: set-vfs 2 vfio: $out"; continue; }
	want=02:14:00:00:1$c:00
	ip link set $PFN vf 0 mac $want || fail "guest cycle $c: vf 0 mac"
	s=$(date +%s)
	$G qmp g1 device_add "{\"driver\":\"vfio-pci\",\"host\":\"$(vf 0)\",\"id\":\"vf0\",\"bus\":\"hp1\"}" >/dev/null \
		|| { fail "guest cycle $c: device_add"; continue; }
	gi=
	guest_wait 300 eval 'gi=$(guest_if_by_mac g1 '"$want"'); [ -n "$gi" ]' \
		&& ok "guest cycle $c: the guest's igbvf adopted $want ($gi, $(( $(date +%s) - s )) s after device_add)" \
		|| fail "guest cycle $c: no guest netdev with $want: $($G exec g1 -- sh -c 'grep -H . /sys/class/net/*/address; dmesg | grep -i igbvf | tail -4' 2>&1 | tr '\n' ' ')"
	if [ -n "$gi" ]; then
		r=$($G exec g1 -- sh -c "ip link set $gi up; for i in \$(seq 60); do read c < /sys/class/net/$gi/carrier; [ \"\$c\" = 1 ] && break; sleep 1; done; echo \$c; dmesg | grep -c 'PF still'" 2>&1 | tr '\n' ' ')
		[[ "$r" == "1 0 "* ]] && ok "guest cycle $c: $gi has carrier, no 'PF still' in the guest's log" \
			|| fail "guest cycle $c: carrier and 'PF still' count in the guest: $r"
	fi
	$G qmp g1 device_del '{"id":"vf0"}' --wait-event DEVICE_DELETED --match device=vf0 --timeout 300 >/dev/null \
		|| fail "guest cycle $c: no DEVICE_DELETED"
done

[ "$fails" = 0 ] || exit 1
echo "pf-ready: all checks passed"
