#!/bin/bash
# lab-seconds: 240 (typical on a CI machine; scripts/run-tests starts the longest first)
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lab: the patched QEMU (QEMU 10.0.2 with qemu/patches/, built on the machine
# by `lab/iovm-lab build-qemu`) runs a guest of the emulated host:
#  1. `lab/guest start --qemu patched` restores a guest (or boots and saves
#     one: the patched build has its own saved state) and its agent answers;
#  2. the guest's QEMU process runs the cached build's binary, and QMP
#     query-version names that build ("iovm-lab-KEY", KEY its cache
#     directory's), not Debian's;
#  3. the devices the lab's guests may be given are compiled in, and a
#     virtio-net NIC (a failover standby's; it loads iPXE's ROM through
#     lab/guest's -L paths) hot-plugs into the running guest, which sees it
#     and lets it go again (DEVICE_DELETED);
#  4. every QMP command the series adds to QEMU's schema (such as
#     x-vfio-pause) is in query-commands.
set -uo pipefail
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
G=lab/guest
N=p40
# shellcheck source=lib/guest.sh
. tests/lab/lib/guest.sh
cleanup() { lab/guest stop "$N" > /dev/null 2>&1; }
trap cleanup EXIT

[ -n "${IOVM_LAB_QEMU_PATCHED:-}" ] \
	|| die "no patched QEMU for the current series in the lab cache (lab/iovm-lab build-qemu on the machine)"
BIN=$(readlink -f "$IOVM_LAB_QEMU_PATCHED")
KEY=$(basename "$(dirname "$BIN")"); KEY=${KEY#qemu-}
echo "patched QEMU: $BIN"
sed 's/^/  build-info: /' "$(dirname "$BIN")/build-info"

# 1. a guest on the patched QEMU answers its agent
expect 0 lab/guest start "$N" --qemu patched -v || die "guest $N did not start on the patched QEMU"
expect 0 lab/guest exec "$N" -- cat /proc/sys/kernel/osrelease
ls "$IOVM_LAB_CACHE_DIR"/../guest-state/patched-*.bin > /dev/null 2>&1 \
	&& ok "the patched QEMU's saved state is its own: $(basename "$(ls "$IOVM_LAB_CACHE_DIR"/../guest-state/patched-*.bin)")" \
	|| fail "no patched-*.bin in the lab's guest-state"

# 2. it is the cached build
pid=$(lab/guest pid "$N") || die "no pid for guest $N"
exe=$(readlink "/proc/$pid/exe")
[ "$exe" = "$BIN" ] && ok "guest $N runs $exe" || fail "guest $N runs $exe, not the patched build $BIN"
ver=$(lab/guest qmp "$N" query-version) || die "query-version on guest $N failed"
pkg=$(echo "$ver" | python3 -c 'import json,sys; print(json.load(sys.stdin)["package"].strip())')
[ "$pkg" = "iovm-lab-$KEY" ] && ok "query-version: package '$pkg'" \
	|| fail "query-version names package '$pkg', want 'iovm-lab-$KEY' ($ver)"

# 3. the lab's devices are there (a reduced build has only what it lists)
types=$(lab/guest qmp "$N" qom-list-types) || die "qom-list-types on guest $N failed"
for t in vfio-pci pcie-root-port virtio-net-pci virtio-blk-pci virtio-serial-pci vhost-vsock-pci ivshmem-plain ivshmem-doorbell; do
	grep -q "\"name\": \"$t\"" <<< "$types" && ok "device $t" || fail "the patched QEMU has no device $t"
done
MAC=52:54:00:40:00:01
expect 0 lab/guest qmp "$N" device_add "{\"driver\":\"virtio-net-pci\",\"id\":\"nic40\",\"bus\":\"hp1\",\"mac\":\"$MAC\"}" \
	|| die "device_add virtio-net-pci on the patched QEMU failed"
has_nic() { [ -n "$(guest_if_by_mac "$N" "$MAC")" ]; }
guest_wait 300 has_nic && ok "guest $N sees the hot-plugged virtio-net NIC ($MAC)" \
	|| fail "guest $N did not see the hot-plugged virtio-net NIC $MAC within 300 s"
expect 0 lab/guest qmp "$N" device_del '{"id":"nic40"}' --wait-event DEVICE_DELETED --match device=nic40 --timeout 300

# 4. the series' QMP commands
mapfile -t added < <(cat qemu/patches/*.patch 2>/dev/null \
	| sed -n "s/^+ *{ *'command' *: *'\([^']*\)'.*/\1/p" | sort -u)
if [ ${#added[@]} -eq 0 ]; then
	echo "the series ($(ls qemu/patches/*.patch 2>/dev/null | wc -l) patches) adds no QMP command"
else
	cmds=$(lab/guest qmp "$N" query-commands) || die "query-commands on guest $N failed"
	for c in "${added[@]}"; do
		grep -q "\"name\": \"$c\"" <<< "$cmds" && ok "QMP command $c" \
			|| fail "query-commands of the patched QEMU has no $c"
	done
fi
exit $((fails > 0))
