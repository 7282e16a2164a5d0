#!/bin/bash
# Benchmark (run in the lab): time to create N VFs and bind them to vfio-pci,
# libiovm (bench/vf-create-bind) against a plain shell script doing the same
# sysfs writes (bench/vf-create-bind.sh), in one run, rounds interleaved so
# drift hits both alike. Each program times its own create+bind span (VF
# removal and process start excluded); the whole command's wall time is
# printed too. Prints medians and the ratio libiovm/script.
# Usage: vf-create-bind-run.sh [N=7] [ROUNDS=7] [PF=eth0]
set -euo pipefail
N=${1:-7}; ROUNDS=${2:-7}; PF=${3:-eth0}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${IOVM_BUILD:?}/bench/vf-create-bind
[ -x "$BIN" ] || { echo "skip: $BIN not built (bench/ not in the build?)" >&2; exit 77; }
modprobe vfio-pci
ADDR=$(basename "$(readlink "/sys/class/net/$PF/device")")
D=/sys/bus/pci/devices/$ADDR
[ "$(cat "$D/sriov_numvfs")" = 0 ] || echo 0 > "$D/sriov_numvfs"

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ms() { for x in "$@"; do printf '%d ' $((x / 1000000)); done; }
lib=() sh=() libw=() shw=()
# One warm-up of each (module state, page cache), not counted.
"$BIN" "$PF" "$N" > /dev/null
bash "$HERE/vf-create-bind.sh" "$ADDR" "$N" > /dev/null
for ((i = 0; i < ROUNDS; i++)); do
	t0=$(date +%s%N); v=$("$BIN" "$PF" "$N"); t1=$(date +%s%N)
	lib+=("$v"); libw+=($((t1 - t0)))
	t0=$(date +%s%N); v=$(bash "$HERE/vf-create-bind.sh" "$ADDR" "$N"); t1=$(date +%s%N)
	sh+=("$v"); shw+=($((t1 - t0)))
done
ml=$(median "${lib[@]}"); msh=$(median "${sh[@]}")
echo "create + bind $N VFs to vfio-pci on $PF ($ADDR), $ROUNDS rounds interleaved"
echo "  libiovm: median $((ml / 1000000)) ms   (rounds: $(ms "${lib[@]}")ms)"
echo "  script:  median $((msh / 1000000)) ms   (rounds: $(ms "${sh[@]}")ms)"
awk -v a="$ml" -v b="$msh" 'BEGIN { printf "  ratio libiovm/script: %.3f (%+.1f%%)\n", a / b, (a / b - 1) * 100 }'
echo "  whole command incl. process start and VF removal: libiovm $(($(median "${libw[@]}") / 1000000)) ms, script $(($(median "${shw[@]}") / 1000000)) ms"
