// SPDX-License-Identifier: GPL-2.0
/* mmap on a forwarded file: pages of the guest's shared window, mirrored by
 * the backend from the real device (docs/devfwd.md, "mmap").
 *
 * The module picks the window pages (its own free pages, never another
 * mapping's), asks the backend to serve them with MMAP, and maps exactly
 * those pages into the caller: the reply only confirms the range and
 * anything but the same range ends the stream. A mapping cannot be split,
 * grown or inherited; a move (mremap) keeps the same pages. Its pages
 * return to the pool when the last vma of it has gone and the backend has
 * answered its MUNMAP. */
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/mm.h>
#include <linux/slab.h>

#include "devfwd-kmod.h"

struct dfk_map {
	struct kref ref;        /* vmas of it: a failed mremap briefly has two */
	struct dfk_stream *s;
	struct dfk_window *w;
	u64 win_off, len;
};

/* The backend stops serving the range; only then may the pages be reused. */
static void map_end(struct dfk_map *m)
{
	struct {
		struct devfwd_hdr h;
		struct devfwd_munmap_req u;
	} msg = { .u = { .win_off = m->win_off } };
	int r;

	/* the vma holds the file, so the stream is still there */
	r = dfk_call(m->s, DEVFWD_OP_MUNMAP, &msg, sizeof(msg), 0, 0, false, false, NULL, NULL);
	dfk_window_put(m->w, m->win_off, m->len, r == 0);
	kfree(m);
}

static void map_release(struct kref *ref)
{
	map_end(container_of(ref, struct dfk_map, ref));
}

static void dfk_vm_open(struct vm_area_struct *vma)
{
	struct dfk_map *m = vma->vm_private_data;

	kref_get(&m->ref);
}

static void dfk_vm_close(struct vm_area_struct *vma)
{
	struct dfk_map *m = vma->vm_private_data;

	kref_put(&m->ref, map_release);
}

static int dfk_vm_may_split(struct vm_area_struct *vma, unsigned long addr)
{
	return -EINVAL;
}

static const struct vm_operations_struct dfk_vm_ops = {
	.open = dfk_vm_open,
	.close = dfk_vm_close,
	.may_split = dfk_vm_may_split,
};

int dfk_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct dfk_stream *s = file->private_data;
	u64 len = vma->vm_end - vma->vm_start;
	struct {
		struct devfwd_hdr h;
		struct devfwd_mmap_req rq;
	} msg = {};
	struct devfwd_mmap_reply *rep = NULL;
	struct dfk_map *m;
	phys_addr_t phys;
	int r;

	/* MAP_SHARED is VM_MAYSHARE: the kernel clears VM_SHARED itself when
	 * the file was opened read-only, and such a mapping is shared too. */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL; /* a private copy of device memory means nothing */
	if (len > U32_MAX || vma->vm_pgoff > (U64_MAX >> PAGE_SHIFT))
		return -EINVAL;
	r = READ_ONCE(s->dead);
	if (r)
		return r;
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m)
		return -ENOMEM;
	r = dfk_window_alloc(len, &m->w, &m->win_off, &phys);
	if (r) {
		kfree(m);
		return r;
	}
	kref_init(&m->ref);
	m->s = s;
	m->len = len;
	msg.rq.offset = (u64)vma->vm_pgoff << PAGE_SHIFT;
	msg.rq.win_off = m->win_off;
	msg.rq.len = len;
	msg.rq.prot = ((vma->vm_flags & VM_READ) ? DEVFWD_PROT_READ : 0) |
		      ((vma->vm_flags & VM_WRITE) ? DEVFWD_PROT_WRITE : 0);
	if (!msg.rq.prot)
		msg.rq.prot = DEVFWD_PROT_READ;
	r = dfk_call(s, DEVFWD_OP_MMAP, &msg, sizeof(msg), sizeof(*rep), 0, true, true, (void **)&rep, NULL);
	if (r == 0 && (rep->win_off != m->win_off || rep->len != len || rep->reserved)) {
		dfk_stream_fail(s, -EIO, "an MMAP reply naming another window range than the one asked for");
		r = -EIO;
	}
	kvfree(rep);
	if (r) {
		/* refused: the backend maps nothing; anything else: it may
		 * have, so the pages stay taken */
		dfk_window_put(m->w, m->win_off, len, r < 0 && r != -EIO && r != -EINTR);
		kfree(m);
		return r;
	}
	if (!(vma->vm_flags & VM_WRITE))
		vma->vm_flags &= ~VM_MAYWRITE; /* the backend copies nothing back */
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP | VM_DONTCOPY;
	/* the window's own pages for this mapping, and no others */
	if (m->win_off + len > dfk_window_size(m->w)) {
		map_end(m);
		return -EIO;
	}
	r = remap_pfn_range(vma, vma->vm_start, PHYS_PFN(phys), len, vma->vm_page_prot);
	if (r) {
		/* a failed ->mmap gets no ->close: end the range here */
		map_end(m);
		return r;
	}
	vma->vm_private_data = m;
	vma->vm_ops = &dfk_vm_ops;
	return 0;
}
