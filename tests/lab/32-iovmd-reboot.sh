#!/bin/bash
# lab-seconds: 60 (typical on a CI machine; scripts/run-tests starts the longest first)
# SPDX-License-Identifier: LGPL-2.1-or-later
# lab-boots: 2
# Lab: iovmd across a real reboot of the emulated host. scripts/run-tests runs
# this scenario in two boots (IOVM_LAB_BOOT=1, then 2); the state database
# lives in the lab cache, the one directory that survives.
#  boot 1: desired state through iovmctl — eth0 3 VFs on vfio-pci, eth1 2 VFs
#          on the host driver with a MAC and VLAN on eth1/1; a VM registered;
#          iovmd stopped with SIGTERM.
#  boot 2: a fresh kernel has no VFs; iovmd starts on the same database and
#          its recovery re-applies the desired counts, drivers and settings;
#          the VM is still registered.
# Run by hand: IOVM_LAB_BOOT=1 in one `lab/iovm-lab run`, then 2 in another.
# The lab cache is a 9p mount, where SQLite's WAL (shared memory) cannot
# work, so iovmd keeps the database on the emulated host's tmpfs like on a
# disk, and the file is carried across the reboot in the cache while iovmd
# is stopped (a clean stop checkpoints the WAL into the file).
set -uo pipefail
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
B=${IOVM_BUILD:?}
D=$B/src/iovmd/iovmd
CTL=$B/src/iovmctl/iovmctl
[ -x "$D" ] && [ -x "$CTL" ] || skip "iovmd/iovmctl not built"
[ -d /sys/class/net/eth0/device ] && [ -d /sys/class/net/eth1/device ] ||
	skip "no two emulated igb (not in the lab?)"
[ -n "${IOVM_LAB_CACHE_DIR:-}" ] && [ -w "$IOVM_LAB_CACHE_DIR" ] ||
	skip "no writable lab cache to keep state across boots"
command -v jq >/dev/null || skip "no jq"
modprobe vfio-pci && modprobe igbvf || skip "vfio-pci/igbvf modules missing"
BOOT=${IOVM_LAB_BOOT:-}
[ "$BOOT" = 1 ] || [ "$BOOT" = 2 ] || skip "needs IOVM_LAB_BOOT=1 or 2 (two boots)"

P=$IOVM_LAB_CACHE_DIR/persist/32-iovmd-reboot
SOCK=/run/iovm-32/iovm.sock
DB=/run/iovm-32/iovm.db
DPID=
ctl() { "$CTL" --socket "$SOCK" --timeout 180 "$@"; }
start_d() {
	"$D" --socket "$SOCK" --state "$DB" --log-level debug >> "$P/iovmd-boot$BOOT.log" 2>&1 &
	DPID=$!
	for _ in $(seq 600); do
		ctl status >/dev/null 2>&1 && return 0
		kill -0 "$DPID" 2>/dev/null || { fail "iovmd exited: $(tail -5 "$P/iovmd-boot$BOOT.log")"; return 1; }
		sleep 0.2
	done
	fail "iovmd did not answer"; return 1
}
stop_d() { [ -n "$DPID" ] && { kill "$DPID"; wait "$DPID"; DPID=; }; }
trap 'stop_d 2>/dev/null; cp "$P"/iovmd-boot*.log /run/iovm-lab/share/ 2>/dev/null' EXIT
ip link set eth0 up; ip link set eth1 up

if [ "$BOOT" = 1 ]; then
	rm -rf "$P"; mkdir -p "$P"
	echo "boot id: $(cat /proc/sys/kernel/random/boot_id)" | tee "$P/boot1-id"
	start_d || exit 1
	ctl pf set-vfs eth0 3 --driver vfio-pci || fail "set-vfs eth0"
	ctl pf set-vfs eth1 2 --driver host || fail "set-vfs eth1"
	ctl vf set eth1/1 --mac 02:32:00:00:01:01 --vlan 32 || fail "vf set eth1/1"
	ctl vm add later --qmp /run/nowhere/later.qmp --priority low >/dev/null || fail "vm add"
	ctl pf list
	stop_d
	[ -e "$DB-wal" ] && fail "WAL left after a clean stop"
	cp "$DB" "$P/iovm.db" || fail "saving the database"
	[ "$(cat /sys/class/net/eth0/device/sriov_numvfs)" = 3 ] || fail "eth0 does not have 3 VFs"
else
	[ -s "$P/iovm.db" ] || die "no database from boot 1 at $P"
	[ "$(cat /proc/sys/kernel/random/boot_id)" != "$(sed 's/^boot id: //' "$P/boot1-id")" ] &&
		ok "a new boot ($(cat /proc/sys/kernel/random/boot_id))" || fail "same boot id as boot 1"
	for pf in eth0 eth1; do
		n=$(cat "/sys/class/net/$pf/device/sriov_numvfs")
		[ "$n" = 0 ] || fail "$pf has $n VFs before iovmd starts"
	done
	mkdir -p "$(dirname "$DB")" && cp "$P/iovm.db" "$DB" || fail "restoring the database"
	start_d || exit 1
	ctl pf list
	ctl vf list
	[ "$(cat /sys/class/net/eth0/device/sriov_numvfs)" = 3 ] && ok "eth0: 3 VFs re-created" ||
		fail "eth0 has $(cat /sys/class/net/eth0/device/sriov_numvfs) VFs"
	[ "$(cat /sys/class/net/eth1/device/sriov_numvfs)" = 2 ] && ok "eth1: 2 VFs re-created" ||
		fail "eth1 has $(cat /sys/class/net/eth1/device/sriov_numvfs) VFs"
	for i in 0 1 2; do
		vf=$(basename "$(readlink "/sys/class/net/eth0/device/virtfn$i")")
		[ "$(drv "$vf")" = vfio-pci ] || fail "eth0 VF $i on $(drv "$vf"), desired vfio-pci"
	done
	for i in 0 1; do
		vf=$(basename "$(readlink "/sys/class/net/eth1/device/virtfn$i")")
		[ "$(drv "$vf")" = igbvf ] || fail "eth1 VF $i on $(drv "$vf"), desired igbvf"
	done
	v=$(ctl --json vf show eth1/1)
	[ "$(jq -r '.config.mac, .config.vlan' <<<"$v" | tr '\n' ' ')" = "02:32:00:00:01:01 32 " ] &&
		ok "eth1/1 MAC and VLAN re-applied" || fail "eth1/1 after reboot: $(jq -c .config <<<"$v")"
	grep -q "vf 1 .*02:32:00:00:01:01.*vlan 32" < <(ip link show eth1) || fail "iproute2 disagrees: $(ip link show eth1 | grep 'vf 1')"
	[ "$(ctl --json vm list | jq -r '.[].name')" = later ] && ok "the VM registry survived" || fail "vm list: $(ctl --json vm list)"
	grep "recovery:" "$P/iovmd-boot2.log"
	[ "$(ctl --json status | jq .open_intents)" = 0 ] || fail "open intents after recovery"
	stop_d
	rm -rf "$P"
fi
[ $fails = 0 ] && echo "all ok" || echo "$fails failures" >&2
exit $((fails > 0))
