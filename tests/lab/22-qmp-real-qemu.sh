#!/bin/bash
# Lab: iovm-vm against a real QEMU (no guest OS, no VFIO needed), so it also
# runs outside the lab.
#  - QMP negotiation and query-pci through the client;
#  - port choice on a VM started with -S: query-pci cannot see behind the
#    unnumbered root ports, iovm must learn from QOM that hp1 is occupied
#    and pick hp2;
#  - device_add refused by QEMU (no such host device): clean error, the
#    pool stays empty;
#  - `watch` notices QEMU being killed and exits.
set -uo pipefail
# shellcheck source=lib/common.sh
. tests/lab/lib/common.sh
B=${IOVM_BUILD:?}
VM=$B/src/tools/iovm-vm/iovm-vm
QEMU=${IOVM_LAB_QEMU:-qemu-system-x86_64}
[ -x "$VM" ] || skip "$VM not built"
command -v "$QEMU" >/dev/null || skip "no $QEMU"
D=$(mktemp -d "${TMPDIR:-/tmp}/iovm-22-XXXXXX")
SOCK=$D/qmp.sock

"$QEMU" -machine q35 -accel tcg -S -display none -nodefaults -no-user-config \
	-qmp "unix:$SOCK,server=on,wait=off" -pidfile "$D/qemu.pid" -daemonize \
	-device pcie-root-port,id=hp1,chassis=1,slot=1 \
	-device pcie-root-port,id=hp2,chassis=2,slot=2 \
	-netdev user,id=n1 -device virtio-net-pci,id=vnet1,netdev=n1,bus=hp1 \
	|| die "qemu did not start"
QPID=$(cat "$D/qemu.pid")
cleanup() { kill "$QPID" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT

out=$("$VM" --no-host qmp --qmp "$SOCK" --timeout-ms 30000 query-pci 2>&1) || fail "query-pci: $out"
[[ "$out" == *'"qdev_id":"hp2"'* ]] && ok "query-pci through iovm's client (${#out} bytes)" || fail "query-pci output: $out"

out=$("$VM" --no-host --pool "$D/pool.json" attach --qmp "$SOCK" --vm q --vf 0000:7f:1f.7 --no-prepare \
	--timeout-ms 30000 2>&1); rc=$?
if [ $rc = 121 ] && [[ "$out" == *"to port hp2"* ]] && [[ "$out" == *"no such host device"* ]]; then
	ok "attach picked hp2 (hp1 holds vnet1, known only to QOM) and QEMU's refusal came back: $out"
else
	fail "attach: rc=$rc $out"
fi
[ -z "$("$VM" --pool "$D/pool.json" pool)" ] && ok "pool empty after the refused attach" || fail "pool: $("$VM" --pool "$D/pool.json" pool)"

out=$("$VM" --no-host attach --qmp "$SOCK" --vm q --vf 0000:7f:1f.7 --no-prepare --port hp1 2>&1); rc=$?
[ $rc = 16 ] && [[ "$out" == *"port hp1 is occupied by a device"* ]] && ok "explicit occupied port refused: $out" \
	|| fail "attach --port hp1: rc=$rc $out"

"$VM" --no-host watch --qmp "$SOCK" --vm q > "$D/watch" 2>&1 &
wpid=$!
for _ in $(seq 100); do grep -q watching "$D/watch" && break; sleep 0.1; done
kill -9 "$QPID"
for _ in $(seq 300); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$wpid" 2>/dev/null; then
	kill "$wpid"; fail "watch did not notice QEMU's death"
else
	wait "$wpid"; rc=$?
	[ $rc = 0 ] && grep -q "gone: .*QEMU went away" "$D/watch" && ok "watch: $(tr '\n' ' ' < "$D/watch")" \
		|| fail "watch rc=$rc: $(cat "$D/watch")"
fi

[ $fails = 0 ] && echo "all ok" || echo "$fails failures" >&2
exit $((fails > 0))
