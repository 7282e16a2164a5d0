# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# Lab helper: cheap questions to a nested guest (lab/guest exec), for the
# scenarios that poll until a hot-plugged device shows up or goes away.
#
# A nested guest runs TCG inside TCG: every process it starts costs it
# around a second of CPU, and a poll that starts `cat` per sysfs file
# (tens of processes) every two seconds keeps the guest busy with the poll
# instead of with the hot-plug it waits for. So each question here is one
# `sh -c` that reads sysfs with the shell's own `read` and ${x##*/}, and
# the waits poll every GUEST_POLL_SECS (default 3).
#
# Needs G (the lab/guest command). The guest's error output goes to
# GUEST_EXEC_ERR if set.

# guest_pci_count GUEST PATTERN: how many PCI functions whose
# "vendor:device" matches the case PATTERN (e.g. '0x8086:0x10ca',
# '0x1af4:0x1000|0x1af4:0x1041'). Empty output if the guest did not answer.
guest_pci_count() {
	$G exec "$1" -- sh -c "n=0; for d in /sys/bus/pci/devices/*; do
		read v < \$d/vendor; read i < \$d/device
		case \$v:\$i in $2) n=\$((n + 1)) ;; esac; done; echo \$n" 2>>"${GUEST_EXEC_ERR:-/dev/null}" | tr -d '\r\n '
}

# guest_if_by_mac GUEST MAC: the guest's interface with that address, or "".
guest_if_by_mac() {
	$G exec "$1" -- sh -c "for i in /sys/class/net/*; do
		read a < \$i/address; [ \"\$a\" = $2 ] && echo \${i##*/}; done; true" 2>>"${GUEST_EXEC_ERR:-/dev/null}" | tr -d '\r'
}

# guest_if_by_dev GUEST PATTERN: the first interface whose PCI
# "vendor:device" matches the case PATTERN, or "".
guest_if_by_dev() {
	$G exec "$1" -- sh -c "for i in /sys/class/net/*; do
		[ -e \$i/device/vendor ] || continue
		read v < \$i/device/vendor; read d < \$i/device/device
		case \$v:\$d in $2) echo \${i##*/}; exit 0 ;; esac; done; true" 2>>"${GUEST_EXEC_ERR:-/dev/null}" | tr -d '\r'
}

# guest_wait SECONDS CMD...: run CMD every GUEST_POLL_SECS until it succeeds
# or SECONDS pass; returns its last status.
guest_wait() {
	local deadline=$(( $(date +%s) + $1 )); shift
	while :; do
		"$@" && return 0
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep "${GUEST_POLL_SECS:-3}"
	done
}
