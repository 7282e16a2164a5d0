#!/bin/bash
# lab-seconds: 330 (one run per nudge and one with the interface down; scripts/run-tests makes the patched guest state before)
# Lab: the VFIO pause of the patched QEMU (qemu/patches/, docs/resize.md):
# a guest keeps its passthrough VF's PCI function while the host destroys and
# re-creates the VFs under it.
#  1. VF 0 of NIC 0 on vfio-pci, hot-plugged into guest p1 (device_add);
#     the guest's igbvf gets the PF-set MAC;
#  2. the guest's VF gets an address and answers pings from a VF of NIC 1
#     (netns "peer") over the cable;
#  3. per nudge (aer, msix, none), IOVM_PAUSE_RUNS times (default 1; 3 for docs/resize.md's figures):
#     x-vfio-pause, sriov_numvfs 0 (must not block on the paused device) then
#     4, VF 0 back on vfio-pci with the same MAC, x-vfio-resume; the guest
#     keeps the same PCI address, interface and ifindex, logs no hot-unplug,
#     and answers pings again: the time from the resume's return to the
#     first answer is printed per run. The guest sends its own pings (1/s)
#     throughout, as a guest with traffic would; then IOVM_PAUSE_IDLE_RUNS
#     times (default 1) per nudge with the guest idle (aer must recover;
#     msix and none are reported);
#  3b. once with the guest's interface down: pause, re-create the VFs, resume
#     (default nudge), then the guest brings the interface up and the peer's
#     ping must be answered (igbvf requests its MSI-X vectors only then);
#  4. x-vfio-pause: x-paused is true, a second pause is refused; resuming
#     onto NIC 1's PF (another device) and onto an unbound VF is refused and
#     the device stays paused; resuming with no host (the previous VF) works;
#  5. x-vfio-nudge is refused for a paused device and for no device, and on
#     the running one its msix kind raises igbvf's "other" vector in the guest.
# Runs the guest on the patched QEMU (`lab/guest start --qemu patched`;
# scripts/run-tests builds it first); skipped when it is not built.
set -uo pipefail
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
# shellcheck source=lib/vf-traffic.sh
. tests/lab/lib/vf-traffic.sh
PATCHED=${IOVM_LAB_QEMU_PATCHED:-}
G=lab/guest
# shellcheck source=lib/guest.sh
. tests/lab/lib/guest.sh
[ -n "$PATCHED" ] && [ -x "$PATCHED" ] || skip "no patched QEMU built (lab/iovm-lab build-qemu)"
[ -d /sys/bus/pci/devices/0000:01:00.0 ] || skip "no emulated igb (not in the lab?)"
modprobe vfio-pci && modprobe igbvf || skip "vfio-pci/igbvf modules missing"

RUNS=${IOVM_PAUSE_RUNS:-1}
IDLE_RUNS=${IOVM_PAUSE_IDLE_RUNS:-1}
NUDGES=${IOVM_PAUSE_NUDGES:-aer msix none}
GMAC=02:00:00:00:41:01
GIP=192.0.2.1 PIP=192.0.2.2
ID=vf0
t() { date +%s.%N; }
el() { awk -v a="$1" -v b="$(t)" 'BEGIN { printf "%.2f", b - a }'; }
PINGER=
cleanup() {
	[ -n "$PINGER" ] && kill "$PINGER" 2>/dev/null
	cp /run/iovm-lab/guests/p1/console.log /run/iovm-lab/share/41-p1-console.log 2>/dev/null
	$G stop p1 >/dev/null 2>&1
}
trap cleanup EXIT

qmp() { $G qmp p1 "$@" 2>&1; }
paused() { qmp qom-get "{\"path\":\"/machine/peripheral/$ID\",\"property\":\"x-paused\"}"; }
bind_vfio() { # PCI-ADDRESS
	echo vfio-pci > "/sys/bus/pci/devices/$1/driver_override" &&
		echo "$1" > /sys/bus/pci/drivers_probe && [ "$(drv "$1")" = vfio-pci ]
}

PF0=0000:01:00.0 PF1=0000:02:00.0
PFDEV0=$(ls /sys/bus/pci/devices/$PF0/net)
ip link set "$PFDEV0" up
_vft_wait 60 "carrier on $PFDEV0" _vft_carrier "$PFDEV0" || die "no carrier on $PFDEV0"
make_vfs() { # COUNT: VFs of NIC 0, VF 0 on vfio-pci with the guest's MAC
	echo 0 > /sys/bus/pci/devices/$PF0/sriov_drivers_autoprobe
	echo "$1" > /sys/bus/pci/devices/$PF0/sriov_numvfs || return 1
	VF0=$(basename "$(readlink /sys/bus/pci/devices/$PF0/virtfn0)")
	VF1=$(basename "$(readlink /sys/bus/pci/devices/$PF0/virtfn1)")
	ip link set "$PFDEV0" vf 0 mac "$GMAC" && bind_vfio "$VF0"
}
make_vfs 2 || die "VFs of $PF0 with VF 0 on vfio-pci"
echo "VF0=$VF0 ($(drv "$VF0")) VF1=$VF1 ($(drv "$VF1"))"

# --- 1. the guest and its VF
s=$(t); $G start p1 --qemu patched || die "guest did not start on $PATCHED"
echo "guest up in $(el "$s") s ($($PATCHED --version | head -n 1))"
grep -q '"x-vfio-pause"' < <(qmp query-commands) && ok "query-commands lists x-vfio-pause" ||
	die "this QEMU has no x-vfio-pause"
out=$(qmp device_add "{\"driver\":\"vfio-pci\",\"host\":\"$VF0\",\"id\":\"$ID\",\"bus\":\"hp1\"}") ||
	die "device_add: $out"
s=$(t)
IF=
guest_wait 300 eval 'IF=$(guest_if_by_mac p1 $GMAC); [ -n "$IF" ]' &&
	ok "the guest's igbvf has $GMAC on $IF ($(el "$s") s after device_add)" || die "no interface with $GMAC in the guest"
guest_state() { # -> "IFINDEX PCI-ADDRESS", then the guest's new kernel messages
	$G exec --timeout 60 p1 -- sh -c "read i < /sys/class/net/$IF/ifindex; d=\$(readlink /sys/class/net/$IF/device)
		echo \$i \${d##*/}; dmesg -c" 2>&1 | tr -d '\r'
}
diagnose() {
	echo "--- diagnosis: PF $PFDEV0 vf 0, peer, guest"
	ip link show "$PFDEV0" | grep -E '^ +vf 0 '
	ip -n peer -s link 2>&1 | tail -n 8
	$G exec --timeout 90 p1 -- sh -c "cd /sys/class/net/$IF/statistics && for f in rx_packets tx_packets rx_errors tx_errors; do read v < \$f; echo $IF \$f \$v; done; grep -E 'CPU|eth|igbvf' /proc/interrupts; dmesg | tail -n 30" 2>&1
}
first=$(guest_state) || die "guest state: $first"
BASE=$(echo "$first" | head -n 1)
echo "guest: $IF ifindex and PCI address: $BASE"

# --- 2. traffic: the guest's VF <-> a VF of NIC 1 in netns "peer"
echo 0 > /sys/bus/pci/devices/$PF1/sriov_drivers_autoprobe
echo 1 > /sys/bus/pci/devices/$PF1/sriov_numvfs || die "a VF on $PF1"
vf_endpoint_setup "$PF1" 0 peer "$PIP/24" || die "the peer's VF"
$G exec --timeout 60 p1 -- sh -c "ip addr add $GIP/24 dev $IF; ip link set $IF up" || die "guest address"
s=$(t)
guest_wait 180 ip netns exec peer ping -c 1 -W 2 "$GIP" >/dev/null &&
	ok "peer pings the guest ($(el "$s") s after its address)" || { diagnose; die "peer cannot ping the guest"; }
$G exec --timeout 60 p1 -- sh -c "setsid ping -i 1 $PIP </dev/null >/dev/null 2>&1 &" ||
	fail "the guest's own pinger did not start"
guest_state > /dev/null

# --- 3. pause, re-create the VFs, resume: per nudge, with the guest sending
# (its pinger running) and idle (only answering the peer)
declare -A TIMES OKS
cycle() { # MODE NUDGE RUN
	local mode=$1 nudge=$2 run=$3 tag="$1 $2 #$3" out s r q got secs log st now
	out=$(qmp x-vfio-pause "{\"id\":\"$ID\"}") || { fail "$tag: pause: $out"; return; }
	s=$(t)
	timeout 60 sh -c "echo 0 > /sys/bus/pci/devices/$PF0/sriov_numvfs" &&
		ok "$tag: sriov_numvfs 0 with the device paused took $(el "$s") s" ||
		die "$tag: sriov_numvfs 0 blocked or failed with the device paused"
	make_vfs 4 || die "$tag: re-creating 4 VFs with VF 0 on vfio-pci"
	log=$TMPDIR/ping-$mode-$nudge-$run
	ip netns exec peer ping -D -i 0.2 -W 1 "$GIP" > "$log" 2>&1 &
	PINGER=$!
	# From the moment the resume is sent: an upper figure, it includes
	# starting the QMP client.
	r=$(t)
	out=$(qmp x-vfio-resume "{\"id\":\"$ID\",\"host\":\"$VF0\",\"nudge\":\"$nudge\"}") ||
		{ fail "$tag: resume: $out"; kill $PINGER; PINGER=; return; }
	q=$(el "$r")
	got=
	deadline=$(( $(date +%s) + 60 ))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		got=$(awk -v r="$r" '/bytes from/ { ts = substr($1, 2, length($1) - 2); if (ts + 0 > r + 0) { print ts; exit } }' "$log")
		[ -n "$got" ] && break
		sleep 0.5
	done
	kill $PINGER; PINGER=
	if [ -n "$got" ]; then
		secs=$(awk -v a="$r" -v b="$got" 'BEGIN { printf "%.2f", b - a }')
		ok "$tag: traffic again $secs s after the resume was sent (the resume call took $q s)"
		TIMES[$mode $nudge]="${TIMES[$mode $nudge]:-}$secs "
		OKS[$mode $nudge]=$(( ${OKS[$mode $nudge]:-0} + 1 ))
	else
		echo "$tag: no answer within 60 s of the resume (the resume call took $q s)"
		TIMES[$mode $nudge]="${TIMES[$mode $nudge]:-}- "
		[ "$mode" = active ] && fail "$tag: no traffic within 60 s with the guest sending"
		diagnose
		# Bring the guest's VF back for the next run: a down/up
		# re-initialises igbvf.
		$G exec --timeout 60 p1 -- sh -c "ip link set $IF down; ip link set $IF up" >/dev/null 2>&1
		guest_wait 120 ip netns exec peer ping -c 1 -W 2 "$GIP" >/dev/null ||
			die "$tag: the guest's VF did not come back after a down/up either"
	fi
	st=$(guest_state) || { fail "$tag: guest state: $st"; return; }
	now=$(echo "$st" | head -n 1)
	[ "$now" = "$BASE" ] && ok "$tag: same interface $IF, ifindex and PCI address ($now)" ||
		fail "$tag: guest interface changed: $now, was $BASE"
	echo "$st" | tail -n +2 | sed "s/^/  $tag guest dmesg: /"
	grep -Eiq 'pciehp|card not present|removed|slot\(' < <(echo "$st" | tail -n +2) &&
		fail "$tag: the guest logged a hot-plug event" || ok "$tag: no hot-plug message in the guest"
}
for nudge in $NUDGES; do
	for run in $(seq "$RUNS"); do cycle active "$nudge" "$run"; done
done
# Idle: the guest stops its pinger. The aer nudge must still bring the VF
# back; for msix and none the outcome is reported, not asserted.
$G exec --timeout 60 p1 -- sh -c 'killall ping; sleep 1; ! pidof ping' >/dev/null 2>&1 ||
	fail "the guest's pinger did not stop"
for nudge in $NUDGES; do
	for run in $(seq "$IDLE_RUNS"); do cycle idle "$nudge" "$run"; done
done
[ "${OKS[idle aer]:-0}" = "$IDLE_RUNS" ] && ok "aer brought an idle guest's VF back in every run" ||
	{ [[ " $NUDGES " == *" aer "* ]] && fail "aer: an idle guest's VF did not come back in every run"; }

# --- 3b. a pause and resume while the guest's interface is down: igbvf has
# freed its MSI-X vectors (masked them) and requests them again only when the
# interface comes up after the resume, so QEMU must see those table writes
down_cycle() {
	local out s
	$G exec --timeout 60 p1 -- sh -c "ip link set $IF down" || { fail "down: ip link set $IF down"; return; }
	out=$(qmp x-vfio-pause "{\"id\":\"$ID\"}") || { fail "down: pause: $out"; return; }
	timeout 60 sh -c "echo 0 > /sys/bus/pci/devices/$PF0/sriov_numvfs" && make_vfs 4 ||
		die "down: re-creating 4 VFs with VF 0 on vfio-pci"
	out=$(qmp x-vfio-resume "{\"id\":\"$ID\",\"host\":\"$VF0\"}") || { fail "down: resume: $out"; return; }
	# QEMU's MSI-X table must be on top of the BAR's VFIO region again (as
	# at realize), or the guest's unmasking of its vectors never reaches
	# QEMU: in the flat view, the table's range belongs to msix-table
	out=$(MTREE=$(qmp human-monitor-command '{"command-line":"info mtree"}') \
		FLAT=$(qmp human-monitor-command '{"command-line":"info mtree -f"}') python3 -c '
import json, os, re, sys
line = re.compile(r"\s*([0-9a-f]+)-[0-9a-f]+ \(.*\): (.*?)( @[0-9a-f]+)?$")
tree = json.loads(os.environ["MTREE"]).splitlines()
flat = json.loads(os.environ["FLAT"]).splitlines()
tab = None
for i, l in enumerate(tree):  # the msix-table inside the VF`s BAR 3
    if "base BAR 3" in l:
        ind = len(l) - len(l.lstrip())
        for c in tree[i + 1:]:
            if len(c) - len(c.lstrip()) <= ind:
                break
            m = line.match(c)
            if m and m.group(2) == "msix-table":
                tab = m.group(1)
        break
owners = sorted({m.group(2) for m in map(line.match, flat) if m and m.group(1) == tab})
print(tab, "->", ", ".join(owners) or "nothing")
sys.exit(0 if tab and owners == ["msix-table"] else 1)') &&
		ok "down: after the resume the MSI-X table's range is QEMU's msix-table ($out)" ||
		fail "down: after the resume the MSI-X table's range is not QEMU's msix-table: $out"
	# The address stays on a link that is down: add it only if it went
	$G exec --timeout 60 p1 -- sh -c "ip link set $IF up && { ip addr show dev $IF | grep -q '$GIP/' || ip addr add $GIP/24 dev $IF; }" ||
		{ fail "down: ip link set $IF up after the resume"; return; }
	s=$(t)
	if guest_wait 120 ip netns exec peer ping -c 1 -W 2 "$GIP" >/dev/null; then
		ok "down: the guest's VF, brought up after a resume while down, answers pings ($(el "$s") s after ip link set up)"
		$G exec --timeout 60 p1 -- sh -c "grep -E '$IF' /proc/interrupts" 2>&1 | sed 's/^/  down: /'
	else
		fail "down: no answer within 120 s after bringing $IF up after the resume"
		diagnose
	fi
}
down_cycle

# --- 4. refusals: NIC 1's PF (another device) and an unbound VF; then the
# same VF again
ip netns del peer
echo 0 > /sys/bus/pci/devices/$PF1/sriov_numvfs
echo "$PF1" > /sys/bus/pci/drivers/igb/unbind && bind_vfio "$PF1" || die "$PF1 on vfio-pci"
out=$(qmp x-vfio-pause "{\"id\":\"$ID\"}") && ok "x-vfio-pause: $out" || die "x-vfio-pause: $out"
[ "$(paused)" = true ] && ok "x-paused is true while paused" || fail "x-paused while paused: $(paused)"
out=$(qmp x-vfio-pause "{\"id\":\"$ID\"}") && fail "a second pause succeeded: $out" ||
	{ [[ "$out" == *"already paused"* ]] && ok "second pause refused: $out" || fail "second pause: $out"; }
out=$(qmp x-vfio-pause '{"id":"nosuch"}') && fail "pause of no device succeeded" || ok "pause of no device: $out"
out=$(qmp x-vfio-resume "{\"id\":\"$ID\",\"host\":\"$PF1\"}") && fail "resume onto $PF1 succeeded: $out" ||
	{ [[ "$out" == *"$PF1"* ]] && ok "resume onto NIC 1's PF refused: $out" || fail "resume onto $PF1: $out"; }
[ "$(paused)" = true ] && ok "still paused after the refusal" || fail "x-paused after refusal: $(paused)"
out=$(qmp x-vfio-resume "{\"id\":\"$ID\",\"host\":\"$VF1\"}") && fail "resume onto unbound $VF1 succeeded: $out" ||
	ok "resume onto $VF1 (no vfio-pci) refused: $out"
[ "$(paused)" = true ] || fail "x-paused after the second refusal: $(paused)"
out=$(qmp x-vfio-resume "{\"id\":\"$ID\"}") && ok "resume onto $VF0 (no host given: the previous one): $out" ||
	die "resume onto $VF0: $out"
[ "$(paused)" = false ] && ok "x-paused is false after the resume" || fail "x-paused after resume: $(paused)"

# --- 5. x-vfio-nudge: refused for a paused device and for no device; on the
# running one (kind msix) the guest takes an interrupt on igbvf's "other"
# vector, the one named like the interface (its rx/tx vectors are IF-rx-0,
# IF-tx-0), on which igbvf looks at its link at once.
other_irqs() { # -> the guest's count of interrupts on IF's "other" vector
	$G exec --timeout 60 p1 -- cat /proc/interrupts 2>/dev/null | tr -d '\r' |
		awk -v n="$IF" '$NF == n { s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s; exit }'
}
out=$(qmp x-vfio-nudge '{"id":"nosuch"}') && fail "nudge of no device succeeded: $out" || ok "nudge of no device: $out"
out=$(qmp x-vfio-pause "{\"id\":\"$ID\"}") || die "x-vfio-pause before the nudge: $out"
out=$(qmp x-vfio-nudge "{\"id\":\"$ID\"}") && fail "nudge of a paused device succeeded: $out" ||
	{ [[ "$out" == *"is paused"* ]] && ok "nudge of a paused device refused: $out" || fail "nudge while paused: $out"; }
out=$(qmp x-vfio-resume "{\"id\":\"$ID\",\"nudge\":\"none\"}") || die "resume before the nudge: $out"
before=$(other_irqs)
out=$(qmp x-vfio-nudge "{\"id\":\"$ID\",\"kind\":\"msix\"}") && ok "x-vfio-nudge msix: $out" ||
	fail "x-vfio-nudge msix: $out"
after=$(other_irqs)
[ -n "$before" ] && [ -n "$after" ] && [ "$after" -gt "$before" ] &&
	ok "the guest took the nudge on $IF's other vector ($before -> $after interrupts)" ||
	fail "no interrupt on $IF's other vector from the nudge ('$before' -> '$after')"


for mode in active idle; do
	for nudge in $NUDGES; do
		echo "$mode guest, nudge $nudge: traffic after ${TIMES[$mode $nudge]:-none} (s from sending the resume; '-' = none within 60 s), ${OKS[$mode $nudge]:-0} runs with traffic"
	done
done
[ $fails = 0 ] && echo "all ok" || echo "$fails failures" >&2
exit $((fails > 0))
