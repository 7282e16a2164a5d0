// SPDX-License-Identifier: GPL-2.0
/* The ioctl layout table and its functions: the very source user space
 * compiles (src/devfwd/layout.c, LGPL-2.1-or-later, compatible), so the
 * module sizes guest buffers exactly as the CUSE frontend and the backend do. */
#include "../../src/devfwd/layout.c"
