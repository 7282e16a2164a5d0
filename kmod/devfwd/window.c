// SPDX-License-Identifier: GPL-2.0
/* The guest's shared window: BAR2 of an ivshmem-plain device (PCI
 * 1af4:1110), whose memory is a file on the host that devfwd-backend maps
 * too (docs/devfwd.md, "mmap"). This module is the only party that sees
 * every opener of the guest, so it hands out the window's pages: each
 * mapping gets pages of its own, and a range goes back to the free pool
 * only once the backend has said it no longer touches it. */
#include <linux/bitmap.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/slab.h>

#include "devfwd-kmod.h"

#define WINDOW_BAR 2

struct dfk_window {
	struct kref ref;
	struct pci_dev *pdev;
	phys_addr_t phys;
	u64 size;
	unsigned long npages;
	spinlock_t lock;       /* used */
	unsigned long *used;   /* a bit per window page */
};

static DEFINE_MUTEX(win_lock);
static struct dfk_window *window; /* the bound device's, or NULL */

static void window_free(struct kref *ref)
{
	struct dfk_window *w = container_of(ref, struct dfk_window, ref);

	bitmap_free(w->used);
	kfree(w);
}

int dfk_window_alloc(u64 len, struct dfk_window **ret_w, u64 *ret_off, phys_addr_t *ret_phys)
{
	unsigned long n = len >> PAGE_SHIFT, at;
	struct dfk_window *w;

	if (!len || len & ~PAGE_MASK)
		return -EINVAL;
	mutex_lock(&win_lock);
	w = window;
	if (w)
		kref_get(&w->ref);
	mutex_unlock(&win_lock);
	if (!w)
		return -ENODEV; /* no window: mmap stays refused, as on CUSE */
	if (n > w->npages) {
		kref_put(&w->ref, window_free);
		return -ENOMEM;
	}
	spin_lock(&w->lock);
	at = bitmap_find_next_zero_area(w->used, w->npages, 0, n, 0);
	if (at < w->npages)
		bitmap_set(w->used, at, n);
	spin_unlock(&w->lock);
	if (at >= w->npages) {
		kref_put(&w->ref, window_free);
		return -ENOMEM;
	}
	*ret_w = w;
	*ret_off = (u64)at << PAGE_SHIFT;
	*ret_phys = w->phys + *ret_off;
	return 0;
}

void dfk_window_put(struct dfk_window *w, u64 off, u64 len, bool reuse)
{
	/* a range the backend may still write stays taken for good */
	if (reuse) {
		spin_lock(&w->lock);
		bitmap_clear(w->used, off >> PAGE_SHIFT, len >> PAGE_SHIFT);
		spin_unlock(&w->lock);
	}
	kref_put(&w->ref, window_free);
}

u64 dfk_window_size(const struct dfk_window *w)
{
	return w->size;
}

static int window_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct dfk_window *w;
	u64 size;
	int r;

	r = pcim_enable_device(pdev);
	if (r)
		return r;
	size = pci_resource_len(pdev, WINDOW_BAR);
	if (!(pci_resource_flags(pdev, WINDOW_BAR) & IORESOURCE_MEM) || size < PAGE_SIZE || size & ~PAGE_MASK) {
		dev_err(&pdev->dev, "devfwd: ivshmem BAR%d is not page-sized memory (%llu bytes); no window\n",
			WINDOW_BAR, size);
		return -ENODEV;
	}
	r = pci_request_region(pdev, WINDOW_BAR, "devfwd-window");
	if (r)
		return r;
	w = kzalloc(sizeof(*w), GFP_KERNEL);
	if (!w)
		goto nomem;
	w->npages = size >> PAGE_SHIFT;
	w->used = bitmap_zalloc(w->npages, GFP_KERNEL);
	if (!w->used) {
		kfree(w);
		goto nomem;
	}
	kref_init(&w->ref);
	spin_lock_init(&w->lock);
	w->pdev = pdev;
	w->phys = pci_resource_start(pdev, WINDOW_BAR);
	w->size = size;
	mutex_lock(&win_lock);
	if (window) {
		mutex_unlock(&win_lock);
		dev_err(&pdev->dev, "devfwd: a second ivshmem device; the window stays the first one's\n");
		window_free(&w->ref);
		pci_release_region(pdev, WINDOW_BAR);
		return -EBUSY;
	}
	window = w;
	mutex_unlock(&win_lock);
	pci_set_drvdata(pdev, w);
	dev_info(&pdev->dev, "devfwd: shared window of %llu KiB for mmap\n", size >> 10);
	return 0;
nomem:
	pci_release_region(pdev, WINDOW_BAR);
	return -ENOMEM;
}

static void window_remove(struct pci_dev *pdev)
{
	struct dfk_window *w = pci_get_drvdata(pdev);

	mutex_lock(&win_lock);
	if (window == w)
		window = NULL;
	mutex_unlock(&win_lock);
	/* mappings still in processes keep w (not the device's memory) */
	pci_release_region(pdev, WINDOW_BAR);
	kref_put(&w->ref, window_free);
}

static const struct pci_device_id window_ids[] = {
	{ PCI_DEVICE(PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1110) },
	{}
};
MODULE_DEVICE_TABLE(pci, window_ids);

static struct pci_driver window_driver = {
	.name = "devfwd-window",
	.id_table = window_ids,
	.probe = window_probe,
	.remove = window_remove,
};

int dfk_window_init(void)
{
	return pci_register_driver(&window_driver);
}

void dfk_window_exit(void)
{
	pci_unregister_driver(&window_driver);
}
