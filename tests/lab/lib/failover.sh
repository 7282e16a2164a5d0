# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Guest g1 with a virtio-net failover pair (labs 44 and 45, docs/migration.md).
# Source it after lib/iovmd.sh, with MAC set to the standby's MAC.

# enslaved: g1's VF netdev (8086:10ca) with MAC has a master, the failover
# device; prints "NAME IFINDEX" (a VF unplugged and plugged back comes back
# as a new netdev, with a new ifindex).
enslaved() {
	$G exec g1 -- sh -c 'for i in /sys/class/net/*; do
		[ -e $i/device/device ] || continue; read d < $i/device/device; read a < $i/address
		read x < $i/ifindex
		[ "$d" = 0x10ca ] && [ "$a" = '"$MAC"' ] && [ -e $i/master ] && { echo ${i##*/} $x; exit 0; }; done; exit 1' 2>/dev/null
}
# pair_of QEMU-FLAG DEVID: the device's failover_pair_id in g1's QEMU.
pair_of() {
	$G qmp g1 $1 qom-get "{\"path\":\"/machine/peripheral/$2\",\"property\":\"failover_pair_id\"}" | jq -r .
}
# standby QEMU-FLAG [QMP-OPTIONS...]: the virtio-net standby sb0 (and its
# netdev) in g1's QEMU ("" the running one, --incoming the one waiting for
# the migration).
standby() {
	$G qmp g1 $1 netdev_add '{"type":"user","id":"sbn0"}' >/dev/null &&
	$G qmp g1 $1 device_add "{\"driver\":\"virtio-net-pci\",\"netdev\":\"sbn0\",\"id\":\"sb0\",\"mac\":\"$MAC\",\"failover\":true,\"bus\":\"hp4\"}" "${@:2}"
}
