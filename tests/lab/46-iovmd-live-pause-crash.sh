#!/bin/bash
# lab-seconds: 300 (estimate: lab 38's shape with three crash points, the guest on the patched QEMU)
# SPDX-License-Identifier: LGPL-2.1-or-later
# Lab: iovmd killed during a live resize in pause mode, then restarted.
# Lab 38 with g1 on the patched QEMU (`lab/guest start --qemu patched`)
# and `--live pause`, killed at the steps where g1's device is paused:
# released (the VFs not removed yet), numvfs (re-created, not configured)
# and configured (set up, not resumed yet). Recovery must resume g1's
# device onto its VF: besides lab 38's checks, the device is not paused
# and the guest kept its interface (same ifindex and PCI address, no
# hot-plug event).
IOVM_LIVE_CRASH_MODE=pause IOVM_LIVE_CRASH_QEMU=patched IOVM_LIVE_CRASH_STEPS="released numvfs configured" \
	exec bash tests/lab/38-iovmd-live-resize-crash.sh
