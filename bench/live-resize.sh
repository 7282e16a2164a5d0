#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Benchmark: the outage a guest sees when iovmd resizes the PF that holds its
# VF (docs/resize.md), per live mode, side by side in one run:
#
#   replug    stock QEMU, no standby: the VF is unplugged and plugged back;
#             the guest's own "network manager" (a loop that gives any new
#             82576 VF interface the address) brings it back
#   failover  stock QEMU, the VF is the primary of a virtio-net failover pair
#             whose standby reaches the same wire (a tap bridged with the PF)
#   pause     the lab's patched QEMU (qemu/patches): x-vfio-pause/-resume;
#             the guest's device and interface stay
#
# Each guest holds VF 0 of eth0 (2 VFs, vfio-pci, MAC M) with address
# 10.90.0.11; a VF of eth1 in netns srv pings it every 50 ms (`ping -D`).
# iovmctl pf set-vfs eth0 3 --live MODE; then the VFs are put back to 2
# with no VM on them. Per mode and round it prints:
#   gap     the longest time between two consecutive replies around the
#           resize (the outage of the stream)
#   usable  from the command's start to the first reply after that gap
#   op      the command's wall time
# and, for pause, whether the guest kept its interface (same ifindex and
# PCI address, no hot-plug event in its kernel log). The summary gives the
# medians and the ratios pause/replug and failover/replug of the gaps.
#   IOVM_BUILD=$PWD/build lab/iovm-lab run --timeout 3600 -- bench/live-resize.sh
# IOVM_BENCH_ROUNDS (default 1), IOVM_BENCH_MODES (default "replug failover
# pause"), IOVM_BENCH_OUT (a directory: results.csv and the replies' times,
# for bench/live-resize-plot.sh). Needs the patched QEMU for pause
# (lab/iovm-lab build-qemu; a guest state for it is made if missing).
set -uo pipefail
# shellcheck source=../tests/lab/lib/iovmd.sh
. tests/lab/lib/iovmd.sh
# shellcheck source=../tests/lab/lib/vf-traffic.sh
. tests/lab/lib/vf-traffic.sh
[ -d /sys/class/net/eth1/device ] || skip "needs the lab's second igb"

ROUNDS=${IOVM_BENCH_ROUNDS:-1}
MODES=${IOVM_BENCH_MODES:-replug failover pause}
OUT=${IOVM_BENCH_OUT:-/run/iovm-lab/share/live-resize}
mkdir -p "$OUT"
W=$TMPDIR/live-bench
mkdir -p "$W"
SOCK=$W/iovm.sock
LOG=$W/iovmd.log
DPID=
M=02:90:00:00:00:11
GIP=10.90.0.11
SRV_IP=10.90.0.1
PINGPID=
CARPID=
ctl() { "$CTL" --socket "$SOCK" --timeout 900 "$@"; }
say() { echo "[$(date +%T)] $*"; }
cleanup() {
	[ -n "$PINGPID" ] && kill "$PINGPID" 2>/dev/null
	[ -n "$CARPID" ] && kill "$CARPID" 2>/dev/null
	[ -n "$DPID" ] && { kill "$DPID"; wait "$DPID"; } 2>/dev/null
	cp "$LOG" "$OUT/iovmd.log" 2>/dev/null
	for g in br bf bp; do
		cp "/run/iovm-lab/guests/$g/console.log" "$OUT/$g-console.log" 2>/dev/null
		$G stop "$g" >/dev/null 2>&1
	done
	ip link del sbtap 2>/dev/null
	ip link del br90 2>/dev/null
}
trap cleanup EXIT

# --- the wire: eth0 (the guests' PF) bridged with a tap for the failover
# standby, eth1's VF 0 in netns srv
for pf in eth0 eth1; do
	echo 0 > "/sys/class/net/$pf/device/sriov_numvfs"
	ip link set "$pf" up
done
modprobe -a bridge tun || die "modules bridge, tun"
ip link add br90 type bridge && ip link set br90 up || die "bridge"
ip tuntap add sbtap mode tap && ip link set sbtap master br90 && ip link set sbtap up || die "tap"
ip link set eth0 master br90 || die "eth0 into the bridge"
echo 0 > /sys/class/net/eth1/device/sriov_drivers_autoprobe
echo 1 > /sys/class/net/eth1/device/sriov_numvfs || die "eth1: cannot create a VF"
for pf in eth0 eth1; do
	_vft_wait 60 "carrier on $pf" _vft_carrier "$pf" || die "no carrier on $pf"
done
PF1=$(basename "$(readlink /sys/class/net/eth1/device)")
SRVDEV=$(_vft_up "$PF1" 0 srv "$SRV_IP/24") || die "server VF setup"
ip -n srv neigh replace "$GIP" lladdr "$M" dev "$SRVDEV" nud permanent
SRVMAC=$(ip netns exec srv cat "/sys/class/net/$SRVDEV/address")
say "server $SRV_IP ($SRVMAC) on $SRVDEV in netns srv"

"$D" --socket "$SOCK" --state "$W/iovm.db" --refresh-interval 1000 --attach-timeout 180000 --log-level debug \
	--detach-timeout 300000 > "$LOG" 2>&1 &
DPID=$!
iovmd_wait "$DPID" "$LOG" || exit 1
out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || die "set-vfs 2: $out"

# The guest's address keeper, as a network manager would: every 0.2 s any
# interface that should carry the address and does not is given it (the
# failover master when there is one, else an 82576 VF's interface).
cat > "$W/keeper.sh" <<EOF
while :; do
	for i in /sys/class/net/*; do
		n=\${i##*/}
		[ -e \$i/device/device ] || continue
		read d < \$i/device/device
		if [ -e \$i/master ]; then continue; fi
		case \$d in 0x10ca) ;; 0x0001) ls -d \$i/lower_* >/dev/null 2>&1 || continue ;; *) continue ;; esac
		case "\$(ip addr show dev \$n)" in *"$GIP/"*) continue ;; esac
		ip link set \$n up; ip addr add $GIP/24 dev \$n; arp -i \$n -s $SRV_IP $SRVMAC
	done
	sleep 0.2
done
EOF

declare -A GUEST=([replug]=br [failover]=bf [pause]=bp)
declare -A QEMU=([replug]=stock [failover]=stock [pause]=patched)
echo "mode,round,gap_s,usable_s,op_s,kept,pf_down_s,released_s,removed_s,recreated_s,back_s,switch_s" > "$OUT/results.csv"

# if_state G: "IFINDEX PCI-ADDRESS" of G's 82576 VF interface.
if_state() {
	$G exec "$1" -- sh -c 'for i in /sys/class/net/*; do [ -e $i/device/device ] || continue
		read d < $i/device/device; [ "$d" = 0x10ca ] || continue
		read x < $i/ifindex; p=$(readlink $i/device); echo "$x ${p##*/}"; done' 2>/dev/null | tr -d '\r'
}
# enslaved G: G's 82576 VF interface has a master (the failover's).
enslaved() {
	$G exec "$1" -- sh -c 'for i in /sys/class/net/*; do [ -e $i/device/device ] || continue
		read d < $i/device/device; [ "$d" = 0x10ca ] && [ -e $i/master ] && exit 0; done; exit 1' >/dev/null 2>&1
}
hotplug_events() {
	$G exec "$1" -- sh -c 'dmesg | grep -ciE "pciehp.*(link down|card not present|slot.*removed)"' 2>/dev/null | tr -d '\r\n'
}

# one MODE ROUND
one() {
	local mode=$1 round=$2 g=${GUEST[$1]} extra=() before after ev0 ev1 t0 t1 kept=- pings
	say "== $mode, round $round (guest $g, $( [ "${QEMU[$mode]}" = patched ] && echo patched || echo stock) QEMU)"
	$G start "$g" --qemu "${QEMU[$mode]}" --timeout 900 || { fail "$mode: guest $g did not start"; return 1; }
	ctl vm add "$g" --qmp "$(guest_qmp "$g")" >/dev/null || { fail "vm add $g"; return 1; }
	if [ "$mode" = failover ]; then
		# The guest's MAC in eth0's own filter, as a macvtap standby on
		# the PF would put it: QEMU's igb model hands a unicast frame that
		# no pool's address matches to no pool (the 82576 gives it to a
		# promiscuous PF's pool, VMOLR.ROPE), so without it the bridged
		# standby would get nothing once the VF is gone (docs/resize.md).
		bridge fdb replace "$M" dev eth0 self permanent || { fail "failover: bridge fdb add $M dev eth0 self"; return 1; }
		$G qmp "$g" netdev_add '{"type":"tap","id":"sbn","ifname":"sbtap","script":"no","downscript":"no"}' >/dev/null ||
			{ fail "failover: netdev_add tap"; return 1; }
		$G qmp "$g" device_add "{\"driver\":\"virtio-net-pci\",\"netdev\":\"sbn\",\"id\":\"sb0\",\"mac\":\"$M\",\"failover\":true,\"bus\":\"hp4\",\"romfile\":\"\"}" \
			--wait-event FAILOVER_NEGOTIATED --match device-id=sb0 --timeout 600 >/dev/null ||
			{ fail "failover: no FAILOVER_NEGOTIATED"; return 1; }
		extra=(--failover-pair-id sb0)
	fi
	out=$(ctl attach "$g" --vf eth0/0 --mac "$M" "${extra[@]}" 2>&1) || { fail "attach $g: $out"; return 1; }
	guest_wait_vfs "$g" 1 300 || { fail "$g does not see its VF"; return 1; }
	$G push "$g" "$W/keeper.sh" /keeper.sh >/dev/null || { fail "push keeper"; return 1; }
	$G exec "$g" -- sh -c 'setsid sh /keeper.sh </dev/null >/dev/null 2>&1 &' >/dev/null
	ip netns exec srv ping -D -i 0.05 -W 1 "$GIP" > "$W/ping" 2>&1 &
	PINGPID=$!
	# eth0's carrier every 20 ms: the PF's own outage while igb re-creates
	# its VFs, which the failover standby (bridged with eth0) rides through
	sh -c 'p=; while :; do read c < /sys/class/net/eth0/carrier; [ "$c" != "$p" ] && echo "$(date +%s.%N) $c"; p=$c; sleep 0.02; done' \
		> "$W/carrier" 2>/dev/null &
	CARPID=$!
	_vft_wait 300 "a first reply from $g" grep -q "bytes from" "$W/ping" || { fail "$mode: $g never answers"; return 1; }
	local sw=-
	if [ "$mode" = failover ]; then
		# The standby's switch time, in the same stream: the primary
		# unplugged alone (a plain detach), then attached again and back
		# under the guest's failover master before the resize.
		sleep 3
		local s0 s1
		s0=$(date +%s.%N)
		out=$(ctl detach "$g" --timeout-ms 300000 2>&1) || fail "failover: detach $g: $out"
		s1=$(date +%s.%N)
		# until a reply after the detach, then the longest gap from the
		# start of the detach to that reply
		_vft_wait 120 "a reply over the standby" awk -F'[][]' -v t="$s1" \
			'/bytes from/ && $2 + 0 > t { f = 1 } END { exit !f }' "$W/ping"
		sw=$(awk -F'[][]' -v a="$s0" -v b="$s1" '/bytes from/ { t = $2 + 0; if (t >= a - 1 && !done) {
				if (n && t - p > g) g = t - p; n++; p = t; if (t > b) done = 1 } }
			END { if (done) printf "%.2f\n", g; else print "NaN" }' "$W/ping")
		say "failover round $round: the primary unplugged alone: longest gap $sw s"
		out=$(ctl attach "$g" --vf eth0/0 --mac "$M" "${extra[@]}" 2>&1) || { fail "re-attach $g: $out"; return 1; }
		_vft_wait 300 "$g's VF under its failover master" enslaved "$g" || { fail "$g: VF not enslaved again"; return 1; }
	fi
	before=$(if_state "$g"); ev0=$(hotplug_events "$g")
	sleep 5
	local n0
	n0=$(wc -l < "$LOG")
	t0=$(date +%s.%N)
	out=$(ctl pf set-vfs eth0 3 --live "$mode" --timeout-ms 300000 2>&1) || fail "$mode: set-vfs 3: $out"
	t1=$(date +%s.%N)
	# iovmd's steps (its debug log, monotonic seconds), from its start of
	# the command: the guest let go, the VFs removed and re-created (the
	# kernel's part, no mode can shorten it), the VF given back, the
	# other VFs on their driver
	tail -n +"$((n0 + 1))" "$LOG" | awk '
		function at(l) { split(l, f, " "); return f[2] + 0 }
		/debug: running pf-set-vfs/ && !s { s = at($0) }
		s && /live resize: vm .* released/ { rel = at($0) }
		s && /live resize: pf .* VFs removed/ { rm = at($0) }
		s && /live resize: pf .* VFs re-created/ { cr = at($0) }
		s && /live resize: pf .* VFs given back/ { gb = at($0) }
		s && /live resize: pf .* other VFs bound/ { ob = at($0) }
		END { if (s && rel && cr) printf "%.2f %.2f %.2f %.2f %.2f\n", rel - s, rm - s, cr - s, gb - s, ob - s }' \
		> "$W/steps"
	local steps
	read -r -a steps < "$W/steps" || steps=()
	[ "${#steps[@]}" = 5 ] || { fail "$mode: no step times in iovmd's debug log"; steps=(NaN NaN NaN NaN NaN); }
	say "$mode round $round: after the command's start: released ${steps[0]} s, VFs removed ${steps[1]} s, re-created ${steps[2]} s, given back ${steps[3]} s, the other VFs bound ${steps[4]} s"
	# pause: the PF's carrier back and the guest nudged to look at its link
	tail -n +"$((n0 + 1))" "$LOG" | awk '
		function at(l) { split(l, f, " "); return f[2] + 0 }
		/debug: running pf-set-vfs/ && !s { s = at($0) }
		s && /live resize: pf .* carrier back/ { cb = at($0) }
		s && /live resize: vm .* nudged/ { nd = at($0) }
		END { if (s && cb) printf "carrier back %.2f s, guest nudged %s s\n", cb - s, nd ? sprintf("%.2f", nd - s) : "-" }' \
		> "$W/nudge"
	[ -s "$W/nudge" ] && say "$mode round $round: $(cat "$W/nudge")"
	# until a reply after the command, then 5 s more
	local end=$(( ${t1%.*} + 300 ))
	while [ "$(date +%s)" -lt "$end" ]; do
		awk -v t="$t1" -F'[][]' '/bytes from/ && $2 + 0 > t { f = 1 } END { exit !f }' "$W/ping" && break
		sleep 0.5
	done
	sleep 5
	kill "$PINGPID" "$CARPID"; wait "$PINGPID" "$CARPID" 2>/dev/null; PINGPID= CARPID=
	if [ "$mode" = pause ]; then
		after=$(if_state "$g"); ev1=$(hotplug_events "$g")
		if [ -n "$before" ] && [ "$before" = "$after" ] && [ "$ev0" = "$ev1" ]; then kept=yes
		else kept="no(before=$before after=$after hotplug-events=$ev0->$ev1)"; fi
	fi
	awk -F'[][]' '/bytes from/ { print $2 }' "$W/ping" > "$OUT/replies-$mode-$round.txt"
	local r
	r=$(awk -v t0="$t0" -v t1="$t1" '
		{ t = $1 + 0; if (t >= t0 - 2) { if (n && t - p > g) { g = t - p; ge = t } ; n++ }; p = t }
		END { if (!ge) { print "NaN NaN"; exit } printf "%.2f %.2f\n", g, ge - t0 }' "$OUT/replies-$mode-$round.txt")
	pings=$(wc -l < "$OUT/replies-$mode-$round.txt")
	cp "$W/carrier" "$OUT/carrier-$mode-$round.txt"
	local pfdown
	pfdown=$(awk -v t0="$t0" '$1 >= t0 - 2 { if ($2 == 0 && !d) d = $1; if ($2 == 1 && d) { s += $1 - d; d = 0 } }
		END { printf "%.2f\n", s }' "$W/carrier")
	printf '%s,%s,%s,%s,%.2f,%s,%s,%s,%s,%s,%s,%s\n' "$mode" "$round" "${r% *}" "${r#* }" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$kept" "$pfdown" "${steps[0]}" "${steps[1]}" "${steps[2]}" "${steps[3]}" "$sw" >> "$OUT/results.csv"
	say "$mode round $round: gap ${r% *} s, usable ${r#* } s after the start, op $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s, eth0 without carrier $pfdown s, $pings replies, kept=$kept"
	echo "$t0 $t1" > "$OUT/op-$mode-$round.txt"
	out=$(ctl detach "$g" --timeout-ms 300000 2>&1) || fail "detach $g: $out"
	ctl vm remove "$g" >/dev/null 2>&1
	$G stop "$g" >/dev/null 2>&1
	[ "$mode" = failover ] && bridge fdb del "$M" dev eth0 self
	out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || fail "back to 2 VFs: $out"
}

for round in $(seq 1 "$ROUNDS"); do
	for mode in $MODES; do one "$mode" "$round"; done
done

echo
echo "live resize of eth0 2 -> 3 VFs, guest holding VF 0, ping every 50 ms ($ROUNDS round(s))"
awk -F, 'NR > 1 { n[$1]++; g[$1, n[$1]] = $3; u[$1, n[$1]] = $4; o[$1, n[$1]] = $5; k[$1] = k[$1] " " $6; f[$1, n[$1]] = $7
		x[$1, n[$1]] = $10 - $8; w[$1, n[$1]] = $12 }
	function med(a, m, c,   i, j, v, t) { for (i = 1; i <= c; i++) v[i] = a[m, i]
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2 }
	END {
		printf "%-9s %8s %9s %7s %10s %10s  %s\n", "mode", "gap s", "usable s", "op s", "PF down s", "re-create s", "kept device"
		for (m in n) { G[m] = med(g, m, n[m]); X[m] = med(x, m, n[m])
			printf "%-9s %8.2f %9.2f %7.2f %10.2f %10.2f %s\n", m, G[m], med(u, m, n[m]), med(o, m, n[m]), med(f, m, n[m]), X[m], k[m] }
		# The kernel re-creating the VFs (from the last guest letting go
		# to the VFs back) is the floor of every mode; the gap beyond it is
		# what the mode itself costs.
		if (G["replug"] > 0) {
			if ("pause" in G) printf "ratio pause/replug gap: %.3f (goal <= 0.333); beyond the re-create: %.3f\n", G["pause"] / G["replug"], (G["pause"] - X["pause"]) / (G["replug"] - X["replug"])
			if ("failover" in G) printf "ratio failover/replug gap: %.3f; beyond the re-create: %.3f\n", G["failover"] / G["replug"], (G["failover"] - X["failover"]) / (G["replug"] - X["replug"])
		}
		if ("failover" in G) {
			W = med(w, "failover", n["failover"])
			printf "failover: gap %.2f s against the standby'"'"'s switch time (the primary unplugged alone) %.2f s and eth0'"'"'s own outage %.2f s (goal: gap <= switch time)\n", G["failover"], W, med(f, "failover", n["failover"])
		}
	}' "$OUT/results.csv"
echo "results: $OUT/results.csv"
[ "${fails:-0}" = 0 ]
