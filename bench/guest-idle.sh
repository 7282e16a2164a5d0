#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What does an idle nested guest cost its emulated host, and what cuts it?
# (docs/lab.md, "What nested guests cost".) Run in the lab:
#
#   lab/iovm-lab run --timeout 2700 -- bench/guest-idle.sh
#
# 1. restored guests (lab/guest start, the saved state): one, then two,
#    idle; each guest QEMU's CPU over IOVM_IDLE_SECS (default 60) from
#    /proc/PID/stat (utime + stime delta / elapsed, % of one of the
#    emulated host's vCPUs), and how long `lab/guest exec g -- true` takes;
#    then one of them paused (QMP stop): what its QEMU costs with no guest
#    code to run.
# 2. with IOVM_IDLE_DIAG=1, what wakes guest g1: its /proc/interrupts and
#    the kernel's timer, workqueue and scheduler events over
#    IOVM_IDLE_TRACE_SECS (default 20, tracefs in the guest), and its
#    QEMU's system calls (strace -c -f, 20 s) and context switches.
# 3. variants booted fresh side by side (no saved state: every one boots
#    Linux: 16 min for three side by side; lab/guest's own 900-s boot
#    deadline is too short for that, this one waits 40 min): "base"
#    (lab/guest's machine as it is) and each
#    of IOVM_IDLE_VARIANTS (names of the table in variant_spec below, or
#    NAME=SPEC; default "hpet-used", the machine before hpet=disable), so
#    the ratio is the change against the old machine in the same emulated
#    host. IOVM_IDLE_READINGS (default 2) windows with all of them
#    idle at once; each reading is also printed as a ratio to base's in the
#    same window. Then `exec true` in each.
#
# A SPEC is a ';'-separated list of append:ARG (added to the guest kernel's
# command line), drop:ARG (removed from it), machine:OPT (added to
# -machine q35, replacing its own value of that key) and qemu:ARGS (more QEMU arguments, split on blanks).
# IOVM_IDLE_PHASES (default "restored variants") picks the parts.
# Prints numbers; asserts nothing about them (under TCG only ratios measured
# in the same run mean anything).
set -uo pipefail
G=${G:-lab/guest}
SECS=${IOVM_IDLE_SECS:-60}
READINGS=${IOVM_IDLE_READINGS:-2}
VARIANTS=${IOVM_IDLE_VARIANTS-hpet-used}

say() { echo "guest-idle: $*"; }

# ticks PID: utime + stime of a process (all its threads), in clock ticks.
ticks() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	echo $(( ${12} + ${13} ))
}

# busy: the emulated host's non-idle ticks and all ticks (all its vCPUs).
busy() {
	local _ u n s i w rest
	read -r _ u n s i w rest < /proc/stat
	# shellcheck disable=SC2086
	set -- $rest
	echo "$(( u + n + s + $1 + $2 + $3 )) $(( u + n + s + i + w + $1 + $2 + $3 ))"
}

# window SECS NAME...: each named guest's QEMU CPU over SECS, in % of one
# vCPU, on one line "NAME=PCT ..." and the host's busy % of all vCPUs.
window() {
	local secs=$1 n t0 t1 b0 b1 out="" hz
	shift
	hz=$(getconf CLK_TCK)
	declare -A pid a
	for n in "$@"; do pid[$n]=$($G pid "$n" 2>/dev/null) || { say "$n: not running"; return 1; }; done
	b0=$(busy); t0=$(date +%s.%N)
	for n in "$@"; do a[$n]=$(ticks "${pid[$n]}"); done
	sleep "$secs"
	for n in "$@"; do a[$n]="${a[$n]} $(ticks "${pid[$n]}")"; done
	t1=$(date +%s.%N); b1=$(busy)
	for n in "$@"; do
		# shellcheck disable=SC2086
		out+=" $n=$(echo ${a[$n]} | awk -v t0="$t0" -v t1="$t1" -v hz="$hz" '{printf "%.1f%%", 100 * ($2 - $1) / hz / (t1 - t0)}')"
	done
	# shellcheck disable=SC2086
	out+=" host-busy=$(echo $b0 $b1 | awk '{printf "%.0f%%", 100 * ($3 - $1) / ($4 - $2)}')"
	echo "${out# }"
}

# exec_time NAME: seconds `lab/guest exec NAME -- true` takes.
exec_time() {
	local t0 t1
	t0=$(date +%s.%N)
	$G exec --timeout 600 "$1" -- true > /dev/null || { echo "failed"; return; }
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1fs", b - a}'
}

# guest_irqs NAME SECS: interrupts the guest took over SECS, per line of
# /proc/interrupts that moved.
guest_irqs() {
	$G exec --timeout 600 "$1" -- sh -c "cat /proc/interrupts > /tmp/i1; sleep $2; cat /proc/interrupts > /tmp/i2
		awk 'NR==FNR { a[\$1] = \$2; next } { d = \$2 - a[\$1]; if (d > 0) { \$2 = \"\"; print \$1, d, \$0 } }' /tmp/i1 /tmp/i2"
}

# guest_trace NAME SECS: what ran in the guest over SECS: expired timers
# (function), executed work items, interrupts and the tasks switched to,
# counted (kernel tracepoints through tracefs).
guest_trace() {
	$G exec --timeout 600 "$1" -- sh -c "
		t=/sys/kernel/tracing
		[ -e \$t/events ] || mount -t tracefs tracefs \$t || exit 1
		echo 0 > \$t/tracing_on; echo > \$t/trace; echo 2048 > \$t/buffer_size_kb
		for e in timer/hrtimer_expire_entry timer/timer_expire_entry workqueue/workqueue_execute_start \
			irq/irq_handler_entry irq/softirq_entry sched/sched_switch; do echo 1 > \$t/events/\$e/enable; done
		echo 1 > \$t/tracing_on; sleep $2; echo 0 > \$t/tracing_on
		for e in timer/hrtimer_expire_entry timer/timer_expire_entry workqueue/workqueue_execute_start \
			irq/irq_handler_entry irq/softirq_entry sched/sched_switch; do echo 0 > \$t/events/\$e/enable; done
		grep -v '^#' \$t/trace | sed -n \
			-e 's/.*hrtimer_expire_entry:.*function=\([^ ]*\).*/hrtimer \1/p' \
			-e 's/.*timer_expire_entry:.*function=\([^ ]*\).*/timer \1/p' \
			-e 's/.*workqueue_execute_start:.*function \([^ ]*\).*/work \1/p' \
			-e 's/.*irq_handler_entry: irq=\([0-9]*\) name=\([^ ]*\).*/irq \1:\2/p' \
			-e 's/.*softirq_entry:.*action=\([^ ]*\).*/softirq \1/p' \
			-e 's/.*sched_switch:.*next_comm=\([^ ]*\) next_pid=.*/switch-to \1/p' |
			sort | uniq -c | sort -rn | head -40
		echo > \$t/trace"
}

# qemu_calls NAME SECS: the guest QEMU's system calls over SECS.
qemu_calls() {
	local p
	p=$($G pid "$1") || return
	if command -v strace > /dev/null; then
		timeout -s INT "$2" strace -c -f -p "$p" 2>&1 | head -25
	else
		say "no strace"
	fi
}

# qemu_switches NAME SECS: context switches of the guest QEMU's threads.
qemu_switches() {
	local p t v0=0 v1=0 n0=0 n1=0
	p=$($G pid "$1") || return
	for t in /proc/"$p"/task/*; do
		v0=$(( v0 + $(awk '/^voluntary_ctxt_switches/{print $2}' "$t/status") ))
		n0=$(( n0 + $(awk '/^nonvoluntary_ctxt_switches/{print $2}' "$t/status") ))
	done
	sleep "$2"
	for t in /proc/"$p"/task/*; do
		v1=$(( v1 + $(awk '/^voluntary_ctxt_switches/{print $2}' "$t/status") ))
		n1=$(( n1 + $(awk '/^nonvoluntary_ctxt_switches/{print $2}' "$t/status") ))
	done
	echo "threads=$(find /proc/"$p"/task -mindepth 1 -maxdepth 1 | wc -l) voluntary=$(( (v1 - v0) / $2 ))/s involuntary=$(( (n1 - n0) / $2 ))/s"
}

# variant_spec NAME: the SPEC of a named variant.
variant_spec() {
	case $1 in
	base) echo "" ;;
	nohpet) echo "machine:hpet=off" ;;
	hpet) echo "machine:hpet=on" ;;
	nopit) echo "machine:pit=off" ;;
	nohpet-nopit) echo "machine:hpet=off,pit=off" ;;
	hpet-disable) echo "append:hpet=disable" ;;
	# lab/guest's machine before hpet=disable: the guest boots on the HPET.
	hpet-used) echo "drop:hpet=disable" ;;
	wq-efficient) echo "append:workqueue.power_efficient=1" ;;
	idle-halt) echo "append:idle=halt" ;;
	audit0) echo "append:audit=0" ;;
	rtc-vm) echo "qemu:-rtc base=utc,clock=vm" ;;
	tb-small) echo "qemu:-accel tcg,tb-size=32" ;;
	*=*) echo "${1#*=}" ;;
	*) return 1 ;;
	esac
}

# boot_variant NAME CID SPEC: boot a guest of lab/guest's machine changed
# by SPEC, with no saved state, as guest NAME (lab/guest exec, pid and stop
# work on it); returns once its agent answers, printing the boot time.
boot_variant() {
	G_PATH=$G python3 - "$@" <<'PY'
import importlib.machinery, importlib.util, os, shlex, sys, time
name, cid, spec = sys.argv[1], int(sys.argv[2]), sys.argv[3]
loader = importlib.machinery.SourceFileLoader("labguest", os.environ["G_PATH"])
g = importlib.util.module_from_spec(importlib.util.spec_from_loader("labguest", loader))
loader.exec_module(g)
gdir = g.gdir_of(name)
os.makedirs(gdir, exist_ok=True)
args = g.machine_args(gdir, 256, cid)
extra = []
for item in filter(None, spec.split(";")):
    kind, _, val = item.partition(":")
    if kind == "append":
        i = args.index("-append") + 1
        args[i] += " " + val
    elif kind == "drop":
        i = args.index("-append") + 1
        args[i] = " ".join(w for w in args[i].split() if w != val)
    elif kind == "machine":
        # key=value replaces the machine's own value of that key.
        i = args.index("-machine") + 1
        key = val.split("=", 1)[0] + "="
        args[i] = ",".join([o for o in args[i].split(",") if not o.startswith(key)] + [val])
    elif kind == "qemu":
        # An -accel given here replaces the machine's own.
        more = shlex.split(val)
        if "-accel" in more and "-accel" in args:
            i = args.index("-accel")
            del args[i:i + 2]
        extra += more
    else:
        sys.exit(f"guest-idle: {name}: bad spec item '{item}'")
cmd = g.qemu_cmd("stock") + args + extra + g.host_args(gdir)
if os.environ.get("IOVM_IDLE_DRY"):
    sys.exit(print(" ".join(cmd)))
with open(os.path.join(gdir, "meta.json"), "w") as f:
    f.write('{"mem": 256, "cid": %d, "qemu": "stock"}' % cid)
with open(os.path.join(gdir, "cmdline"), "w") as f:
    f.write(" ".join(cmd) + "\n")
t0 = time.monotonic()
import subprocess
r = subprocess.run(cmd, capture_output=True, text=True)
if r.returncode:
    sys.exit(f"guest-idle: {name}: qemu failed: {r.stderr.strip()}")
g.qga(gdir, 2400).close()
print(f"{time.monotonic() - t0:.0f}s")
PY
}

restored() {
	local t0
	say "== restored guests (saved state), ${SECS}s windows =="
	t0=$(date +%s)
	$G start g1 -v 2>&1 | sed 's/^/  /' || return 1
	say "g1 started in $(( $(date +%s) - t0 ))s"
	sleep 10
	say "1 guest: $(window "$SECS" g1)"
	say "1 guest: exec true g1 $(exec_time g1), again $(exec_time g1)"
	t0=$(date +%s)
	$G start g2 -v 2>&1 | sed 's/^/  /' || return 1
	say "g2 started in $(( $(date +%s) - t0 ))s"
	sleep 10
	say "2 guests: $(window "$SECS" g1 g2)"
	say "2 guests: exec true g1 $(exec_time g1), g2 $(exec_time g2)"
	$G qmp g1 stop > /dev/null
	say "g1 paused: $(window "$SECS" g1 g2)"
	$G qmp g1 cont > /dev/null
	[ -n "${IOVM_IDLE_DIAG:-}" ] && diag g1
	$G stop g1; $G stop g2
}

diag() {
	say "$1 interrupts over 30s:"; guest_irqs "$1" 30 | sed 's/^/  /'
	say "$1 kernel events over ${IOVM_IDLE_TRACE_SECS:-20}s:"
	guest_trace "$1" "${IOVM_IDLE_TRACE_SECS:-20}" | sed 's/^/  /'
	say "$1 QEMU context switches: $(qemu_switches "$1" 20)"
	say "$1 QEMU system calls over 20s:"; qemu_calls "$1" 20 | sed 's/^/  /'
}

variants() {
	local names=(base) v spec cid=700 i r line b pids=()
	for v in $VARIANTS; do names+=("${v%%=*}"); done
	say "== fresh boots side by side: ${names[*]} =="
	declare -A specs
	specs[base]=""
	for v in $VARIANTS; do
		spec=$(variant_spec "$v") || { say "unknown variant $v"; return 1; }
		specs[${v%%=*}]=$spec
	done
	for v in "${names[@]}"; do
		cid=$((cid + 1))
		say "$v: '${specs[$v]}'"
		( b=$(boot_variant "$v" "$cid" "${specs[$v]}") && say "$v booted in $b" ) &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	sleep 30
	for ((r = 1; r <= READINGS; r++)); do
		line=$(window "$SECS" "${names[@]}") || return 1
		say "reading $r: $line"
		b=$(echo "$line" | tr ' ' '\n' | sed -n 's/^base=\(.*\)%$/\1/p')
		say "reading $r vs base: $(echo "$line" | tr ' ' '\n' | grep -v host-busy |
			awk -F'[=%]' -v b="$b" 'b > 0 {printf "%s=%.2f ", $1, ($2 / b)}')"
	done
	for v in "${names[@]}"; do say "$v: exec true $(exec_time "$v"), again $(exec_time "$v")"; done
	for v in "${names[@]}"; do $G stop "$v"; done
}

[ -n "${IOVM_IDLE_LIB:-}" ] && return 0
[ -n "${IOVM_LAB:-}" ] || { echo "guest-idle: run me inside the lab (lab/iovm-lab run -- $0)" >&2; exit 77; }
for p in ${IOVM_IDLE_PHASES:-restored variants}; do
	case $p in
	restored) restored ;;
	variants) variants ;;
	*) say "unknown phase $p"; exit 2 ;;
	esac
done
