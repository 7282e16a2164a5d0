#!/bin/bash
# lab-seconds: 330 (224 s on the 2-core lab machine with other lab boots running, 2026-12-07, before the explicit rounds)
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lab: live migration of a guest that holds a VF, stock failover path, on one
# emulated host (docs/migration.md), QEMU's automatic variant and iovmd's
# explicit one. Guest g1 gets a virtio-net standby
# (failover=on, MAC M) and, through iovmd, VF 0 of eth0 as its failover
# primary. A second QEMU for g1 waits for the migration (`lab/guest start
# g1 --incoming`, the standby added to it too), registered with iovmd as
# g1-in, incoming from g1. First a migration cancelled once under way,
# after the guest let go of the primary: the VF must stay g1's, plugged back
# by QEMU and enslaved to its failover master again, and nothing else held.
# Then the explicit variant: `vm migrate-prepare g1` takes the VF out of the
# guest and clears its MAC, `vm migrate-abort` gives it back, and so does a
# migration that fails after a prepare. Then a completed migration after a
# prepare: the guest answers on the new QEMU, the source's VF
# is free again (host driver, no VM), and g1-in holds another VF with the
# same MAC and failover pair, reserved before the switch-over, plugged after
# RESUME, enslaved to the guest's net_failover master again; no VF is held
# twice.
set -uo pipefail
# shellcheck source=lib/iovmd.sh
. tests/lab/lib/iovmd.sh
# shellcheck source=lib/failover.sh
. tests/lab/lib/failover.sh

W=$TMPDIR/migrate-failover
mkdir -p "$W"
SOCK=$W/iovm.sock
DB=$W/iovm.db
LOG=$W/iovmd.log
DPID=
MAC=02:44:00:00:00:01
IN_QMP=/run/iovm-lab/guests/g1/incoming/qmp.sock
ctl() { "$CTL" --socket "$SOCK" --timeout 900 "$@"; }
cleanup() {
	[ -n "$DPID" ] && { kill "$DPID"; wait "$DPID"; } 2>/dev/null
	cp "$LOG" /run/iovm-lab/share/44-iovmd.log 2>/dev/null
	cp /run/iovm-lab/guests/g1/console.log /run/iovm-lab/share/44-g1-console.log 2>/dev/null
	cp /run/iovm-lab/guests/g1/console-source.log /run/iovm-lab/share/44-g1-console-source.log 2>/dev/null
	$G stop g1 >/dev/null 2>&1
}
trap cleanup EXIT

vf_state() { ctl --json vf show "$1" | jq -r '"\(.vm) \(.state) \(.driver)"'; }
# held: the VFs iovmd records as assigned, one "VM VF" a line.
held() { ctl --json vf list | jq -r '.[] | select(.vm != null and .vm != "") | "\(.vm) \(.vf)"' | sort; }

ip link set eth0 up
echo 0 > /sys/class/net/eth0/device/sriov_numvfs
$G start g1 || die "g1 did not start"
start_d || exit 1
out=$(ctl pf set-vfs eth0 2 --driver host 2>&1) || die "set-vfs 2: $out"
ctl vm add g1 --qmp "$(guest_qmp g1)" >/dev/null || die "vm add g1"

# --- the failover pair: the standby, then the VF as its primary
standby "" --wait-event FAILOVER_NEGOTIATED --match device-id=sb0 --timeout 600 >/dev/null ||
	die "no FAILOVER_NEGOTIATED for the standby sb0"
ok "standby sb0 (virtio-net, failover=on, $MAC): FAILOVER_NEGOTIATED"
out=$(ctl --json attach g1 --vf eth0/0 --mac "$MAC" --failover-pair-id sb0 2>"$W/err") ||
	die "attach g1 as failover primary: $out $(cat "$W/err")"
VF0=$(jq -r .vf <<<"$out")
DEVID=$(jq -r .devid <<<"$out")
[ "$(pair_of "" "$DEVID")" = sb0 ] && ok "g1 holds $VF0 as $DEVID, failover_pair_id sb0" ||
	fail "$DEVID failover_pair_id: $(pair_of "" "$DEVID")"
before=$(guest_wait 300 enslaved) && ok "g1's VF netdev ($before) is enslaved to its failover master" ||
	die "g1's VF netdev has no failover master"

# --- a cancelled migration leaves the VF on the source
$G start g1 --incoming -v || die "g1's incoming QEMU did not start"
standby --incoming >/dev/null || die "standby on the incoming QEMU"
out=$(ctl --json vm add g1-in --qmp "$IN_QMP" --incoming g1 2>&1) || die "vm add g1-in --incoming g1: $out"
[ "$(jq -r .migration <<<"$out")" = waiting ] && ok "g1-in registered as incoming from g1" ||
	fail "g1-in: $out"
out=$($G migrate g1 --cancel 2>&1) && ok "$out" || fail "cancelled migration: $out"
grep -q "vm g1: UNPLUG_PRIMARY" "$LOG" && ok "g1's QEMU unplugged its failover primary (UNPLUG_PRIMARY)" ||
	fail "no UNPLUG_PRIMARY from g1's QEMU"
[ "$(vf_state "$VF0")" = "g1 attached vfio-pci" ] && ok "$VF0 still g1's after the cancel" ||
	fail "$VF0 after the cancel: $(vf_state "$VF0")"
[ "$(pair_of "" "$DEVID")" = sb0 ] && ok "$DEVID still in g1's QEMU, failover_pair_id sb0" ||
	fail "$DEVID after the cancel: failover_pair_id '$(pair_of "" "$DEVID")'"
after=$(guest_wait 300 enslaved) && ok "g1's VF netdev ($after) is enslaved to its failover master after the cancel" ||
	fail "g1's VF netdev has no failover master after the cancel"
# A VF the guest let go of and got back is a new netdev (a new ifindex).
[ -n "$after" ] && [ "${after#* }" != "${before#* }" ] &&
	ok "the guest let go of its VF during the migration and got it back after the cancel (ifindex ${before#* } -> ${after#* })" ||
	fail "g1's VF netdev before the cancelled migration: '$before', after: '$after' (not re-plugged)"
[ "$(held)" = "g1 $VF0" ] && ok "after the cancel only g1 holds a VF ($VF0)" || fail "held after the cancel: $(held)"
st=$(ctl --json vm list | jq -r '.[] | select(.name == "g1-in") | .migration')
[ "$st" = failed ] && ok "iovmd saw g1-in's migration fail" || fail "g1-in's migration state: '$st'"
ctl vm remove g1-in >/dev/null || fail "vm remove g1-in"

# --- the explicit variant: iovmd takes the primary out before the
# migration and clears its MAC; migrate-abort, or a migration that fails,
# gives it back.
vf_mac() { ctl --json vf show "$1" | jq -r '[.. | .mac? // empty][0] // "none"'; }
gone() { ! enslaved >/dev/null; }
back() { [ "$(vf_state "$VF0")" = "g1 attached vfio-pci" ] && enslaved; }
prepare() {
	out=$(ctl --json vm migrate-prepare g1 --timeout-ms 120000 2>&1) || { fail "migrate-prepare g1: $out"; return 1; }
	[ "$(jq -r '"\(.state) \(.vfs | length) \(.vfs[0].vf) \(.vfs[0].failover_pair_id)"' <<<"$out")" = "prepared 1 $VF0 sb0" ] &&
		ok "migrate-prepare g1: $VF0 out, standby sb0" || fail "migrate-prepare g1: $out"
	guest_wait 120 gone && ok "g1's guest no longer has its VF netdev" || fail "g1's VF netdev is still there"
	[ "$(vf_state "$VF0")" = "g1 attaching vfio-pci" ] && ok "$VF0 stays g1's, out of its QEMU" ||
		fail "$VF0 after migrate-prepare: $(vf_state "$VF0")"
	m=$(vf_mac "$VF0")
	[ "$m" = 00:00:00:00:00:00 ] || [ "$m" = none ] && ok "$VF0's MAC is cleared ($m)" || fail "$VF0's MAC after migrate-prepare: $m"
	r=$(ctl --json vm migrate-prepare g1 2>&1) && fail "a second migrate-prepare was taken: $r" ||
		ok "a second migrate-prepare is refused: $r"
}
prepare
out=$(ctl --json vm migrate-abort g1 2>&1) && [ "$(jq -r .state <<<"$out")" = given-back ] &&
	ok "migrate-abort g1: given back" || fail "migrate-abort g1: $out"
[ "$(vf_mac "$VF0")" = "$MAC" ] && ok "$VF0 has its MAC $MAC again" || fail "$VF0's MAC after the abort: $(vf_mac "$VF0")"
after=$(guest_wait 300 back) && ok "after migrate-abort, g1's VF netdev ($after) is enslaved again" ||
	fail "after migrate-abort: $(vf_state "$VF0"), no enslaved VF netdev"
prepare
# A migration to nowhere fails at once; g1's QEMU reports it and iovmd
# gives the VF back by itself.
$G qmp g1 migrate '{"uri":"unix:/run/iovm-lab/nobody-listens.sock"}' >/dev/null 2>&1
guest_wait 300 back >/dev/null && ok "a failed migration after migrate-prepare gave $VF0 back to g1" ||
	fail "after a failed migration: $(vf_state "$VF0"); $(grep -E 'did not complete|given back' "$LOG" | tail -2)"
grep -q "vm g1: MIGRATION failed" "$LOG" && ok "iovmd saw g1's MIGRATION failed" || fail "no MIGRATION failed from g1"

# --- iovmd killed during migrate-prepare: after the unplug (the link says
# "unplugging") the restarted daemon gives the VF back; after the MAC is
# cleared ("prepared") it keeps the VF out until migrate-abort.
for step in unplugged prepared; do
	stop_d
	start_d "migrate-out:$step" || exit 1
	ctl vm migrate-prepare g1 --timeout-ms 120000 >/dev/null 2>&1
	wait_dead "migrate-out:$step" || die "no crash at migrate-out:$step"
	start_d || die "iovmd did not restart after migrate-out:$step"
	if [ "$step" = unplugged ]; then
		guest_wait 300 back >/dev/null && ok "killed at migrate-out:unplugged: the restarted iovmd gave $VF0 back to g1" ||
			fail "after a crash at migrate-out:unplugged: $(vf_state "$VF0")"
		[ "$(vf_mac "$VF0")" = "$MAC" ] && ok "$VF0 kept its MAC $MAC" || fail "$VF0's MAC: $(vf_mac "$VF0")"
	else
		[ "$(vf_state "$VF0")" = "g1 attaching vfio-pci" ] && gone &&
			ok "killed at migrate-out:prepared: $VF0 stays out of g1 after the restart" ||
			fail "after a crash at migrate-out:prepared: $(vf_state "$VF0")"
		m=$(vf_mac "$VF0")
		[ "$m" = 00:00:00:00:00:00 ] || [ "$m" = none ] && ok "$VF0's MAC stays cleared" || fail "$VF0's MAC: $m"
		out=$(ctl --json vm migrate-abort g1 2>&1) && guest_wait 300 back >/dev/null &&
			ok "migrate-abort after the restart gave $VF0 back" || fail "migrate-abort after the restart: $out"
	fi
done
[ "$(ctl --json status | jq .open_intents)" = 0 ] && ok "no open intent after the crashes" || fail "open intents left"

# --- a completed migration, explicit variant: the primary out first, then
# iovmd plugs a VF with g1's MAC (from the outgoing link: the source VF's
# MAC is cleared) into the destination after RESUME; the source's VF is
# freed once its QEMU is gone.
prepare
$G start g1 --incoming -v || die "g1's incoming QEMU did not start"
standby --incoming >/dev/null || die "standby on the incoming QEMU"
out=$(ctl --json vm add g1-in --qmp "$IN_QMP" --incoming g1 2>&1) || die "vm add g1-in --incoming g1: $out"
src_pid=$($G pid g1)
out=$($G migrate g1 2>&1) && ok "$out" || die "migration: $out"
[ "$($G pid g1)" != "$src_pid" ] && ok "g1 runs in its new QEMU (pid $($G pid g1), was $src_pid)" ||
	fail "g1's QEMU pid did not change"
$G exec g1 -- true && ok "g1's agent answers on the new QEMU" || fail "g1's agent does not answer after the migration"
dst_vf() { ctl --json vm list | jq -re '.[] | select(.name == "g1-in") | .vfs[0] // empty'; }
VF1=$(guest_wait 300 dst_vf) && ok "g1-in holds $VF1 after the migration" || die "g1-in holds no VF: $(ctl --json vm list)"
[ "$VF1" != "$VF0" ] || fail "g1-in holds the source's own VF $VF0"
mac=$(ctl --json vf show "$VF1" | jq -r '[.. | .mac? // empty][0]')
[ "$mac" = "$MAC" ] && ok "$VF1 has g1's MAC $MAC" || fail "$VF1 MAC '$mac', want $MAC"
DEVID1=$($G qmp g1 query-pci | jq -r '[.. | objects | select(.qdev_id? // "" | startswith("iovm-")) | .qdev_id][0]')
[ "$(pair_of "" "$DEVID1")" = sb0 ] && ok "the new QEMU holds $DEVID1 with failover_pair_id sb0" ||
	fail "new QEMU: '$DEVID1' failover_pair_id '$(pair_of "" "$DEVID1")'"
new=$(guest_wait 300 enslaved) && ok "g1's new VF netdev ($new) is enslaved to its failover master" ||
	fail "g1's VF netdev has no failover master after the migration"
src_free() { [ "$(ctl --json vf show "$VF0" | jq -r '.vm // ""')" = "" ]; }
guest_wait 60 src_free && ok "the source's $VF0 is free: $(vf_state "$VF0")" || fail "$VF0 after the migration: $(vf_state "$VF0")"
drv0=$(ctl --json vf show "$VF0" | jq -r .driver)
[ "$drv0" = igbvf ] && ok "$VF0 is back on its host driver" || fail "$VF0 driver '$drv0', want igbvf"
[ "$(held)" = "g1-in $VF1" ] && ok "only g1-in holds a VF ($VF1): nothing held twice" || fail "held: $(held)"
ctl vm remove g1 >/dev/null || fail "vm remove g1 (the source)"
# The destination's VF was reserved and configured before the switch-over,
# plugged after RESUME.
lr=$(grep -n "vm g1-in: vf $VF1 reserved before the switch-over" "$LOG" | head -1 | cut -d: -f1)
lg=$(grep -n "vm g1-in: RESUME" "$LOG" | head -1 | cut -d: -f1)
lp=$(grep -n "vm g1-in: vf $VF1 plugged as" "$LOG" | head -1 | cut -d: -f1)
[ -n "$lr" ] && [ -n "$lg" ] && [ -n "$lp" ] && [ "$lr" -lt "$lg" ] && [ "$lg" -lt "$lp" ] &&
	ok "iovmd reserved $VF1 before g1-in's RESUME and plugged it after" ||
	fail "order of reserve ($lr), RESUME ($lg), plug ($lp) in the log"
grep -E "incoming|migrated|UNPLUG_PRIMARY|RESUME" "$LOG" | tail -12
[ "$(ctl --json status | jq .open_intents)" = 0 ] && ok "no open intent" || fail "open intents left"
[ "${fails:-0}" = 0 ]
