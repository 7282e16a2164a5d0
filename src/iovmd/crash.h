/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Crash-injection hook for the recovery tests: with IOVM_CRASH_AT=
 * "OP:STEP" (e.g. "attach:device-added"), the daemon kills itself with
 * SIGKILL right after recording that step. Never set in production. */
void iovmd_crash_point(const char *op, const char *step);
