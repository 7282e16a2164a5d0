/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

/* Test hook, compiled only with -Dtest-hooks=true and active only when the
 * backend runs with IOVM_DEVFWD_TEST_HOOKS=1: an OPEN of
 * "/.devfwd-subvert/ATTACK[:ARG]" makes the confined worker do what an
 * attacker who took over its code would try (docs/security.md, "devfwd
 * workers"; tests/lab/76-devfwd-confine.py). */
#define DEVFWD_SUBVERT_PREFIX "/.devfwd-subvert/"

/* The answer to the guest when an attack went through (a test failure). */
#define DEVFWD_SUBVERT_SUCCEEDED (-ENOTRECOVERABLE)

/* Runs the attack named by path (which starts with the prefix) in the
 * calling worker; chan is its broker channel, stream its guest's stream.
 * Returns the negative errno of the refused attempt,
 * DEVFWD_SUBVERT_SUCCEEDED, or -EINVAL for an unknown attack. A system call
 * outside the filter kills the worker instead. */
int devfwd_subvert(const char *path, int chan, int stream, const char *peer_name);
