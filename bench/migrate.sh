#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Benchmark: a live migration of the same guest with and without a VF
# (docs/migration.md), on one emulated host (two QEMU processes), variants
# interleaved in each round:
#
#   novf       the guest has its virtio-net device alone (failover=on, no
#              primary): the baseline
#   automatic  a VF of eth0 is its failover primary; QEMU unplugs it when the
#              migration starts (wait-unplug); iovmd plugs a VF into the
#              destination after RESUME
#   explicit   the same, but `iovmctl vm migrate-prepare` takes the VF out
#              (and clears its MAC) before the migration is started
#
# The guest's address 10.90.0.11 sits on its failover master; the standby's
# netdev is a tap bridged with eth0 (the destination's standby another tap
# in the same bridge), and a VF of eth1 in netns srv pings the guest every
# 50 ms (`ping -D`). Per variant and round it prints:
#   downtime    QEMU's own (query-migrate on the source once completed)
#   total       QEMU's total migration time
#   pause       the destination's RESUME minus the source's STOP (iovmd's log)
#   blackout    the longest gap between two replies, from the first step
#               (the prepare, or the migrate) to the end of the stream (10 s
#               after the guest's new VF is under its failover master)
#   vf_usable   from RESUME to the guest's last frame through the
#               destination's standby tap (afterwards it sends through its
#               new VF); "-" without a VF
#   plugged     from RESUME to iovmd's device_add of the new VF
# The summary gives the medians and, against novf, the ratios of downtime
# and blackout (goals: <= 1.10), and vf_usable (goal: <= 5 s).
#   IOVM_BUILD=$PWD/build lab/iovm-lab run --timeout 3600 -- bench/migrate.sh
# IOVM_BENCH_ROUNDS (default 1), IOVM_BENCH_VARIANTS (default "novf
# automatic explicit"), IOVM_BENCH_OUT (a directory: results.csv and the
# replies' times).
set -uo pipefail
# shellcheck source=../tests/lab/lib/iovmd.sh
. tests/lab/lib/iovmd.sh
# shellcheck source=../tests/lab/lib/vf-traffic.sh
. tests/lab/lib/vf-traffic.sh
[ -d /sys/class/net/eth1/device ] || skip "needs the lab's second igb"

ROUNDS=${IOVM_BENCH_ROUNDS:-1}
VARIANTS=${IOVM_BENCH_VARIANTS:-novf automatic explicit}
OUT=${IOVM_BENCH_OUT:-/run/iovm-lab/share/migrate}
mkdir -p "$OUT"
W=$TMPDIR/migrate-bench
mkdir -p "$W"
SOCK=$W/iovm.sock
DB=$W/iovm.db
LOG=$W/iovmd.log
DPID=
MAC=02:90:00:00:00:21
M=$MAC
GIP=10.90.0.11
SRV_IP=10.90.0.1
IN_QMP=/run/iovm-lab/guests/g1/incoming/qmp.sock
PINGPID=
TAPPID=
ctl() { "$CTL" --socket "$SOCK" --timeout 900 "$@"; }
say() { echo "[$(date +%T)] $*"; }
cleanup() {
	[ -n "$PINGPID" ] && kill "$PINGPID" 2>/dev/null
	[ -n "$TAPPID" ] && kill "$TAPPID" 2>/dev/null
	stop_d
	cp "$LOG" "$OUT/iovmd.log" 2>/dev/null
	$G stop g1 >/dev/null 2>&1
	ip link del sbtap 2>/dev/null
	ip link del sbtap2 2>/dev/null
	ip link del br90 2>/dev/null
}
trap cleanup EXIT
# shellcheck source=../tests/lab/lib/failover.sh
. tests/lab/lib/failover.sh

# --- the wire: eth0 (the guest's PF) bridged with the two standby taps,
# eth1's VF 0 in netns srv
for pf in eth0 eth1; do
	echo 0 > "/sys/class/net/$pf/device/sriov_numvfs"
	ip link set "$pf" up
done
modprobe -a bridge tun || die "modules bridge, tun"
ip link add br90 type bridge && ip link set br90 up || die "bridge"
for t in sbtap sbtap2; do
	ip tuntap add "$t" mode tap && ip link set "$t" master br90 && ip link set "$t" up || die "tap $t"
done
ip link set eth0 master br90 || die "eth0 into the bridge"
echo 0 > /sys/class/net/eth1/device/sriov_drivers_autoprobe
echo 1 > /sys/class/net/eth1/device/sriov_numvfs || die "eth1: cannot create a VF"
for pf in eth0 eth1; do
	_vft_wait 60 "carrier on $pf" _vft_carrier "$pf" || die "no carrier on $pf"
done
# QEMU's igb hands a unicast frame no pool's address matches to no pool:
# the guest's MAC in eth0's own filter, as a macvtap standby would put it
# (docs/resize.md, "What the failover standby needs").
bridge fdb replace "$M" dev eth0 self permanent || die "bridge fdb add $M dev eth0 self"
PF1=$(basename "$(readlink /sys/class/net/eth1/device)")
SRVDEV=$(_vft_up "$PF1" 0 srv "$SRV_IP/24") || die "server VF setup"
ip -n srv neigh replace "$GIP" lladdr "$M" dev "$SRVDEV" nud permanent
SRVMAC=$(ip netns exec srv cat "/sys/class/net/$SRVDEV/address")
say "server $SRV_IP ($SRVMAC) on $SRVDEV in netns srv"

start_d || exit 1
out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || die "set-vfs 2: $out"

# The guest's address on its failover master (the virtio-net interface
# with lower devices), as a network manager would keep it.
cat > "$W/keeper.sh" <<EOF
while :; do
	for i in /sys/class/net/*; do
		n=\${i##*/}
		[ -e \$i/device/device ] || continue
		[ -e \$i/master ] && continue
		ls -d \$i/lower_* >/dev/null 2>&1 || continue
		case "\$(ip addr show dev \$n)" in *"$GIP/"*) continue ;; esac
		ip link set \$n up; ip addr add $GIP/24 dev \$n; arp -i \$n -s $SRV_IP $SRVMAC
	done
	sleep 0.2
done
EOF

# standby_tap QEMU-FLAG TAP: sb0 on a tap in the bridge.
standby_tap() {
	$G qmp g1 $1 netdev_add "{\"type\":\"tap\",\"id\":\"sbn0\",\"ifname\":\"$2\",\"script\":\"no\",\"downscript\":\"no\"}" >/dev/null &&
	$G qmp g1 $1 device_add "{\"driver\":\"virtio-net-pci\",\"netdev\":\"sbn0\",\"id\":\"sb0\",\"mac\":\"$M\",\"failover\":true,\"bus\":\"hp4\",\"romfile\":\"\"}" "${@:3}"
}
# vf_view: the guest's 82576 VF netdev, its carrier and frames sent.
vf_view() {
	$G exec g1 -- sh -c 'for i in /sys/class/net/*; do [ -e $i/device/device ] || continue
		read d < $i/device/device; [ "$d" = 0x10ca ] || continue
		echo "${i##*/} carrier=$(cat $i/carrier 2>/dev/null) tx_packets=$(cat $i/statistics/tx_packets) master=$([ -e $i/master ] && echo yes || echo no)"; done' 2>/dev/null | tr -d '\r'
}
# log_at PATTERN: iovmd's clock at the first log line after line $n0
# matching PATTERN.
log_at() { tail -n +"$((n0 + 1))" "$LOG" | awk -v p="$1" '$0 ~ p { print $2 + 0; exit }'; }

echo "variant,round,downtime_ms,total_ms,pause_s,blackout_s,vf_usable_s,plugged_s" > "$OUT/results.csv"

# one VARIANT ROUND
one() {
	local v=$1 round=$2 t0 t1 n0 stop resume plug usable=- plugged=- dt tt
	say "== $v, round $round"
	$G start g1 --timeout 900 || { fail "$v: g1 did not start"; return 1; }
	ctl vm add g1 --qmp "$(guest_qmp g1)" >/dev/null || { fail "vm add g1"; return 1; }
	standby_tap "" sbtap --wait-event FAILOVER_NEGOTIATED --match device-id=sb0 --timeout 600 >/dev/null ||
		{ fail "$v: no FAILOVER_NEGOTIATED"; return 1; }
	if [ "$v" != novf ]; then
		out=$(ctl attach g1 --vf eth0/0 --mac "$M" --failover-pair-id sb0 2>&1) || { fail "attach g1: $out"; return 1; }
		_vft_wait 300 "g1's VF under its failover master" enslaved >/dev/null || { fail "$v: VF not enslaved"; return 1; }
	fi
	$G push g1 "$W/keeper.sh" /keeper.sh >/dev/null || { fail "push keeper"; return 1; }
	$G exec g1 -- sh -c 'setsid sh /keeper.sh </dev/null >/dev/null 2>&1 &' >/dev/null
	$G start g1 --incoming -v || { fail "$v: the incoming QEMU did not start"; return 1; }
	standby_tap --incoming sbtap2 >/dev/null || { fail "$v: standby on the incoming QEMU"; return 1; }
	out=$(ctl --json vm add g1-in --qmp "$IN_QMP" --incoming g1 2>&1) || { fail "vm add g1-in: $out"; return 1; }
	ip netns exec srv ping -D -i 0.05 -W 1 "$GIP" > "$W/ping" 2>&1 &
	PINGPID=$!
	# frames the guest sends through the destination's standby (a tap's
	# rx: what QEMU writes into it), every 20 ms
	sh -c 'p=; while :; do read c < /sys/class/net/sbtap2/statistics/rx_packets; [ "$c" != "$p" ] && echo "$(date +%s.%N) $c"; p=$c; sleep 0.02; done' \
		> "$W/tap" 2>/dev/null &
	TAPPID=$!
	_vft_wait 300 "a first reply from g1" grep -q "bytes from" "$W/ping" || { fail "$v: g1 never answers"; return 1; }
	sleep 3
	n0=$(wc -l < "$LOG")
	t0=$(date +%s.%N)
	if [ "$v" = explicit ]; then
		out=$(ctl vm migrate-prepare g1 --timeout-ms 120000 2>&1) || { fail "migrate-prepare g1: $out"; return 1; }
	fi
	out=$($G migrate g1 2>&1) || { fail "$v: migration: $out"; return 1; }
	t1=$(date +%s.%N)
	dt=$(sed -n 's/.*downtime \([0-9]*\) ms.*/\1/p' <<<"$out")
	tt=$(sed -n 's/.*total-time \([0-9]*\) ms.*/\1/p' <<<"$out")
	if [ "$v" != novf ]; then
		dst_vf() { ctl --json vm list | jq -re '.[] | select(.name == "g1-in") | .vfs[0] // empty'; }
		_vft_wait 300 "g1-in's VF" dst_vf >/dev/null || fail "$v: g1-in holds no VF"
		_vft_wait 300 "the new VF under the failover master" enslaved >/dev/null || fail "$v: the new VF is not enslaved"
	fi
	sleep 10
	kill "$PINGPID" "$TAPPID"; wait "$PINGPID" "$TAPPID" 2>/dev/null; PINGPID= TAPPID=
	cp "$W/tap" "$OUT/tap-$v-$round.txt"
	# The guest's own view of its new VF: carrier and frames sent.
	[ "$v" = novf ] || say "$v round $round: in the guest: $(vf_view)"
	stop=$(log_at "vm g1: STOP")
	resume=$(log_at "vm g1-in: RESUME")
	plug=$(log_at "vm g1-in: vf .* plugged as")
	local pause=NaN
	[ -n "$stop" ] && [ -n "$resume" ] && pause=$(awk -v a="$stop" -v b="$resume" 'BEGIN { printf "%.2f", b - a }')
	[ -n "$plug" ] && [ -n "$resume" ] && plugged=$(awk -v a="$resume" -v b="$plug" 'BEGIN { printf "%.2f", b - a }')
	# The wall clock of RESUME: iovmd's clock is monotonic; the offset to
	# the wall clock is taken at the command's start (t0 and n0's line).
	if [ "$v" != novf ] && [ -n "$resume" ]; then
		local mono_now wall_now
		mono_now=$(awk '{ print $1 }' /proc/uptime)
		wall_now=$(date +%s.%N)
		# /proc/uptime is CLOCK_BOOTTIME, iovmd logs CLOCK_MONOTONIC: the
		# same with no suspend, as in the lab
		usable=$(awk -v r="$resume" -v m="$mono_now" -v w="$wall_now" '{ t = $1 + 0 }
			t > w - m + r { last = t } END { if (last) printf "%.2f", last - (w - m + r); else print "0.00" }' "$W/tap")
	fi
	awk -F'[][]' '/bytes from/ { print $2 }' "$W/ping" > "$OUT/replies-$v-$round.txt"
	local bo
	bo=$(awk -v t0="$t0" '{ t = $1 + 0; if (t >= t0 - 1) { if (n && t - p > g) g = t - p; n++ }; p = t }
		END { if (n) printf "%.2f\n", g; else print "NaN" }' "$OUT/replies-$v-$round.txt")
	echo "$v,$round,${dt:-NaN},${tt:-NaN},$pause,$bo,$usable,$plugged" >> "$OUT/results.csv"
	say "$v round $round: downtime ${dt:-?} ms, total ${tt:-?} ms, pause $pause s, blackout $bo s, VF usable $usable s and plugged $plugged s after RESUME"
	ctl vm remove g1 >/dev/null 2>&1
	$G stop g1 >/dev/null 2>&1
	# the destination's VF back to the host, then the VM record
	ctl detach g1-in --timeout-ms 10000 >/dev/null 2>&1
	ctl vm remove g1-in >/dev/null 2>&1
	_vft_wait 60 "no VF held" sh -c "[ -z \"\$($CTL --socket $SOCK --json vf list | jq -r '.[] | select(.vm != null and .vm != \"\") | .vf')\" ]" ||
		fail "VFs still held after the round: $(ctl vf list)"
}

for round in $(seq 1 "$ROUNDS"); do
	for v in $VARIANTS; do one "$v" "$round"; done
done

echo
echo "live migration on one emulated host, ping every 50 ms ($ROUNDS round(s))"
awk -F, 'NR > 1 { n[$1]++; d[$1, n[$1]] = $3; t[$1, n[$1]] = $4; p[$1, n[$1]] = $5; b[$1, n[$1]] = $6
		u[$1, n[$1]] = $7; g[$1, n[$1]] = $8 }
	function med(a, m, c,   i, j, v, x) { for (i = 1; i <= c; i++) v[i] = a[m, i]
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
		return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2 }
	END {
		printf "%-10s %12s %10s %8s %11s %12s %10s\n", "variant", "downtime ms", "total ms", "pause s", "blackout s", "VF usable s", "plugged s"
		for (m in n) { D[m] = med(d, m, n[m]); B[m] = med(b, m, n[m])
			printf "%-10s %12.0f %10.0f %8.2f %11.2f %12s %10s\n", m, D[m], med(t, m, n[m]), med(p, m, n[m]), B[m],
				m == "novf" ? "-" : sprintf("%.2f", med(u, m, n[m])), m == "novf" ? "-" : sprintf("%.2f", med(g, m, n[m])) }
		if ("novf" in D && D["novf"] > 0)
			for (m in n) if (m != "novf")
				printf "%s/novf: downtime %.2f, blackout %.2f (goals <= 1.10); VF usable %.2f s after RESUME (goal <= 5)\n",
					m, D[m] / D["novf"], (B["novf"] > 0 ? B[m] / B["novf"] : 0), med(u, m, n[m])
	}' "$OUT/results.csv"
echo "results: $OUT/results.csv"
[ "${fails:-0}" = 0 ]
