#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Plot bench/live-resize.sh's replies: one row per mode (round 1), a mark
# for every ping reply the guest sent, in seconds from the start of the
# resize; the command's duration as a bar under the row. A gap in a row is
# the outage the guest's traffic saw.
#   bench/live-resize-plot.sh OUT-DIR OUT.png
# (gnuplot-nox; scripts/install-deps installs it.)
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 OUT-DIR OUT.png" >&2; exit 2; }
dir=$1 png=$2
command -v gnuplot >/dev/null || { echo "$0: gnuplot not found (scripts/install-deps)" >&2; exit 1; }
dat=$(mktemp) ops=$(mktemp)
trap 'rm -f "$dat" "$ops"' EXIT
row=0 labels=""
for mode in replug failover pause; do
	[ -s "$dir/replies-$mode-1.txt" ] && [ -s "$dir/op-$mode-1.txt" ] || continue
	row=$((row + 1))
	read -r t0 t1 < "$dir/op-$mode-1.txt"
	awk -v t0="$t0" -v r="$row" '{ d = $1 - t0; if (d >= -5 && d <= 120) print d, r }' "$dir/replies-$mode-1.txt" >> "$dat"
	echo "$row 0 $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" >> "$ops"
	labels="$labels${labels:+, }\"$mode\" $row"
done
[ "$row" -gt 0 ] || { echo "$0: no replies in $dir" >&2; exit 1; }
gnuplot <<EOF
set terminal pngcairo size 1100,$((140 + 70 * row)) font "sans,10"
set output "$png"
set title "Ping replies (every 50 ms) from a guest whose VF's PF is resized 2 -> 3 VFs at t = 0"
set xlabel "seconds from the start of iovmctl pf set-vfs --live MODE"
set yrange [0.3:$row.7]
set ytics ($labels)
set grid xtics
plot "$dat" using 1:2 with points pt 7 ps 0.4 lc rgb "#1f77b4" title "reply", \
     "$ops" using (0):(\$1 - 0.25):(\$3):(0) with vectors nohead lw 3 lc rgb "#d62728" title "command running"
EOF
