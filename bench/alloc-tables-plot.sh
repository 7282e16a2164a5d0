#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Plot bench/alloc-tables.sh's results beside the published ones: one bar
# pair per guest and experiment, the paper's throughput and the lab's
# scaled back by the run's scale (lab kbit/s x SCALE / 1000 = Mb/s at the
# paper's caps), with each guest's cap as a mark.
#   bench/alloc-tables-plot.sh RESULTS.csv OUT.png
# (gnuplot-nox; scripts/install-deps installs it.)
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 RESULTS.csv OUT.png" >&2; exit 2; }
csv=$1 png=$2
command -v gnuplot >/dev/null || { echo "$0: gnuplot not found (scripts/install-deps)" >&2; exit 1; }
dat=$(mktemp)
trap 'rm -f "$dat"' EXIT
# label paper lab-scaled cap; tables 1-4 only (table 0 is the uncapped
# baseline), in the paper's order.
awk -F, 'NR > 1 && $1 != 0 && $7 != "" {
	ph = ($1 == 4 ? ($2 == "first" ? "4a" : "4b") : $1)
	key = ph " " $3
	printf "%s\t\"T%s %s\"\t%s\t%.2f\t%s\n", ph, ph, $3, ($11 == "" ? "NaN" : $11), $9 * $14 / 1000, $7
}' "$csv" | sort -s -k1,1 | cut -f2- > "$dat"
[ -s "$dat" ] || { echo "$0: no capped results in $csv" >&2; exit 1; }
scale=$(awk -F, 'NR == 2 { print $14 }' "$csv")
secs=$(awk -F, 'NR == 2 { print $13 }' "$csv")
gnuplot <<EOF
set terminal pngcairo size 1100,520 font "sans,10"
set output "$png"
set title "Per-guest throughput: published (82576, netperf, 10 min) and iovm in the lab (emulated 82576, iperf3, ${secs} s, caps / ${scale})"
set ylabel "Mb/s at the paper's caps (lab: kbit/s x ${scale} / 1000)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:460]
set xtics rotate by -35 scale 0
set key top right
set grid ytics
plot "$dat" using 2:xtic(1) title "paper" lc rgb "#4c72b0", \
     "" using 3 title "iovm lab (scaled)" lc rgb "#dd8452", \
     "" using 0:4 with points pt 7 ps 1.2 lc rgb "black" title "cap"
EOF
echo "wrote $png"
