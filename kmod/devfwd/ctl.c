// SPDX-License-Identifier: GPL-2.0
/*
 * devfwd.ko: the guest kernel frontend of devfwd (docs/devfwd.md, "Kernel
 * frontend"). The registry of forwarded devices and its control file.
 *
 * /dev/devfwd-ctl (root only) takes one command per line:
 *   add CID PORT HOSTPATH NAME   forward the backend's HOSTPATH as /dev/NAME
 *   del NAME                     remove /dev/NAME (open files keep working)
 * and reads back one "NAME HOSTPATH vsock:CID:PORT" line per device.
 * devfwd-frontend --kernel writes it; the module itself has no policy.
 */
#include <linux/cdev.h>
#include <linux/ctype.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "devfwd-kmod.h"

#ifdef __BIG_ENDIAN
#error "the devfwd wire protocol is little-endian; this module does not convert"
#endif

#define DFK_MINORS 256
#define DFK_CTL_LINE 512

struct dfk_dev {
	struct dfk_target t;
	struct cdev *cdev;
	int minor;
};

static dev_t dfk_base;
static struct class *dfk_class;
static DEFINE_IDR(dfk_devs);      /* minor -> struct dfk_dev */
static DEFINE_MUTEX(dfk_devs_lock);

int dfk_lookup(dev_t devt, struct dfk_target *ret)
{
	struct dfk_dev *d;
	int r = -ENODEV;

	if (MAJOR(devt) != MAJOR(dfk_base))
		return -ENODEV;
	mutex_lock(&dfk_devs_lock);
	d = idr_find(&dfk_devs, MINOR(devt));
	if (d) {
		*ret = d->t;
		r = 0;
	}
	mutex_unlock(&dfk_devs_lock);
	return r;
}

/* A relative /dev name: [A-Za-z0-9._-] components joined by '/', no "."
 * or ".." component, no empty one. */
static bool name_ok(const char *n)
{
	const char *c = n;
	size_t comp = 0;

	if (!*n || strlen(n) >= DFK_NAME_MAX)
		return false;
	for (;; c++) {
		if (*c == '/' || !*c) {
			if (comp == 0 || (comp == 1 && c[-1] == '.') || (comp == 2 && c[-1] == '.' && c[-2] == '.'))
				return false;
			if (!*c)
				return true;
			comp = 0;
			continue;
		}
		if (!isalnum(*c) && *c != '.' && *c != '_' && *c != '-')
			return false;
		comp++;
	}
}

/* Caller holds dfk_devs_lock. */
static struct dfk_dev *find_name(const char *name)
{
	struct dfk_dev *d;
	int id;

	idr_for_each_entry(&dfk_devs, d, id)
		if (!strcmp(d->t.name, name))
			return d;
	return NULL;
}

static void dev_remove(struct dfk_dev *d)
{
	device_destroy(dfk_class, MKDEV(MAJOR(dfk_base), d->minor));
	cdev_del(d->cdev);
	idr_remove(&dfk_devs, d->minor);
	kfree(d);
}

static int dev_add(u32 cid, u32 port, const char *path, const char *name)
{
	struct device *dev;
	struct dfk_dev *d;
	char node[DFK_NAME_MAX];
	dev_t devt;
	int r;

	if (path[0] != '/' || strlen(path) > DEVFWD_MAX_PATH || !name_ok(name))
		return -EINVAL;
	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	strscpy(d->t.name, name, sizeof(d->t.name));
	strscpy(d->t.path, path, sizeof(d->t.path));
	d->t.cid = cid;
	d->t.port = port;
	/* the driver core turns '!' in a device name into '/' under /dev */
	strscpy(node, name, sizeof(node));
	strreplace(node, '/', '!');

	mutex_lock(&dfk_devs_lock);
	if (find_name(name)) {
		r = -EEXIST;
		goto fail;
	}
	r = idr_alloc(&dfk_devs, d, 0, DFK_MINORS, GFP_KERNEL);
	if (r < 0)
		goto fail;
	d->minor = r;
	devt = MKDEV(MAJOR(dfk_base), d->minor);
	d->cdev = cdev_alloc();
	if (!d->cdev) {
		r = -ENOMEM;
		goto fail_idr;
	}
	d->cdev->ops = &dfk_fops;
	d->cdev->owner = THIS_MODULE;
	r = cdev_add(d->cdev, devt, 1);
	if (r) {
		kobject_put(&d->cdev->kobj);
		goto fail_idr;
	}
	dev = device_create(dfk_class, NULL, devt, NULL, "%s", node);
	if (IS_ERR(dev)) {
		r = PTR_ERR(dev);
		cdev_del(d->cdev);
		goto fail_idr;
	}
	mutex_unlock(&dfk_devs_lock);
	pr_info("devfwd: /dev/%s forwards the backend's %s (vsock %u:%u)\n", name, path, cid, port);
	return 0;
fail_idr:
	idr_remove(&dfk_devs, d->minor);
fail:
	mutex_unlock(&dfk_devs_lock);
	kfree(d);
	return r;
}

static int dev_del(const char *name)
{
	struct dfk_dev *d;

	mutex_lock(&dfk_devs_lock);
	d = find_name(name);
	if (d)
		dev_remove(d);
	mutex_unlock(&dfk_devs_lock);
	return d ? 0 : -ENOENT;
}

static int ctl_line(char *line)
{
	char path[DEVFWD_MAX_PATH + 1], name[DFK_NAME_MAX];
	unsigned int cid, port;
	char extra;
	int r;

	if (sscanf(line, "add %u %u %255s %63s %c", &cid, &port, path, name, &extra) == 4) {
		r = dev_add(cid, port, path, name);
		if (r)
			pr_warn("devfwd: adding /dev/%s (host %s, vsock %u:%u) failed: %pe\n", name, path, cid,
				port, ERR_PTR(r));
		return r;
	}
	if (sscanf(line, "del %63s %c", name, &extra) == 1)
		return dev_del(name);
	return -EINVAL;
}

static ssize_t ctl_write(struct file *file, const char __user *ubuf, size_t count, loff_t *ppos)
{
	char *buf, *line, *p;
	int r = 0;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (count >= DFK_CTL_LINE * 16)
		return -E2BIG;
	buf = memdup_user_nul(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	p = buf;
	while (!r && (line = strsep(&p, "\n")))
		if (*line)
			r = ctl_line(line);
	kfree(buf);
	return r ? r : count;
}

static ssize_t ctl_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	size_t cap = PAGE_SIZE * 16, len = 0;
	struct dfk_dev *d;
	ssize_t r;
	char *buf;
	int id;

	buf = kvzalloc(cap, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	mutex_lock(&dfk_devs_lock);
	idr_for_each_entry(&dfk_devs, d, id)
		len += scnprintf(buf + len, cap - len, "%s %s vsock:%u:%u\n", d->t.name, d->t.path, d->t.cid,
				 d->t.port);
	mutex_unlock(&dfk_devs_lock);
	r = simple_read_from_buffer(ubuf, count, ppos, buf, len);
	kvfree(buf);
	return r;
}

static const struct file_operations ctl_fops = {
	.owner = THIS_MODULE,
	.write = ctl_write,
	.read = ctl_read,
	.llseek = default_llseek,
};

static struct miscdevice ctl_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "devfwd-ctl",
	.fops = &ctl_fops,
	.mode = 0600,
};

static int __init dfk_init(void)
{
	int r;

	r = alloc_chrdev_region(&dfk_base, 0, DFK_MINORS, "devfwd");
	if (r)
		return r;
	dfk_class = class_create(THIS_MODULE, "devfwd");
	if (IS_ERR(dfk_class)) {
		r = PTR_ERR(dfk_class);
		goto fail_region;
	}
	r = dfk_window_init();
	if (r)
		goto fail_class;
	r = misc_register(&ctl_misc);
	if (r)
		goto fail_window;
	return 0;
fail_window:
	dfk_window_exit();
fail_class:
	class_destroy(dfk_class);
fail_region:
	unregister_chrdev_region(dfk_base, DFK_MINORS);
	return r;
}

static void __exit dfk_exit(void)
{
	struct dfk_dev *d;
	int id;

	misc_deregister(&ctl_misc);
	mutex_lock(&dfk_devs_lock);
	idr_for_each_entry(&dfk_devs, d, id)
		dev_remove(d);
	mutex_unlock(&dfk_devs_lock);
	idr_destroy(&dfk_devs);
	dfk_window_exit();
	class_destroy(dfk_class);
	unregister_chrdev_region(dfk_base, DFK_MINORS);
}

module_init(dfk_init);
module_exit(dfk_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("devfwd guest frontend: device files forwarded to a host backend over vsock");
MODULE_SOFTDEP("pre: vsock");
