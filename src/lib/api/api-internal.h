/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by the API modules (schema.c, validate.c, parse.c); not public. */
#pragma once

#include "iovm/api-schema.h"

/* Refuses argument a of command c: "CMD: argument 'ARG' must be ...", the
 * rest from fmt. Returns -EINVAL. */
int api_refuse(iovm_api_cmd c, iovm_api_arg a, iovm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The refusal of an integer argument: not an integer, or out of a's range. */
int api_refuse_int(iovm_api_cmd c, iovm_api_arg a, iovm_error *err);
