/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one map from libnl's error codes back to errno. libnl folds the
 * kernel's errno into its own codes; these are the ones drivers and the
 * rtnetlink core return. */

#include <errno.h>
#include <netlink/errno.h>

static inline int nlerr_to_errno(int e)
{
	switch (e < 0 ? -e : e) {
	case NLE_EXIST: return -EEXIST;
	case NLE_OPNOTSUPP: return -EOPNOTSUPP;
	case NLE_INVAL: return -EINVAL;
	case NLE_BUSY: return -EBUSY;
	case NLE_PERM: return -EPERM;
	case NLE_NOACCESS: return -EACCES;
	case NLE_NODEV:
	case NLE_OBJ_NOTFOUND: return -ENODEV;
	case NLE_RANGE: return -ERANGE;
	case NLE_NOMEM: return -ENOMEM;
	case NLE_AGAIN: return -ETIMEDOUT;  /* SO_RCVTIMEO expired */
	case NLE_AF_NOSUPPORT: return -EAFNOSUPPORT;
	default: return -EIO;
	}
}
