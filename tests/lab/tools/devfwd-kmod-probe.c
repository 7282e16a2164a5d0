/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs file operations on a device forwarded by devfwd.ko inside a lab guest
 * (busybox has no ioctl tool) and prints their results, one "key=value"
 * line each, for tests/lab/77-devfwd-kmod.py to compare with the host's.
 *
 *   devfwd-kmod-probe evdev DEV        EVIOCGVERSION, EVIOCGID, EVIOCGNAME, EVIOCGBIT(EV_KEY)
 *   devfwd-kmod-probe events DEV N     poll, then read until N key events
 *   devfwd-kmod-probe sigread DEV      a blocked read interrupted by SIGALRM, then an ioctl
 *   devfwd-kmod-probe readerr DEV      blocking reads until one fails
 *   devfwd-kmod-probe tun DEV IFNAME   TUNSETIFF (tap), TUNGETIFF, read a frame, write it back
 *   devfwd-kmod-probe garbage DEV      open, ioctl, read, poll: print what each returns
 *   devfwd-kmod-probe concurrent DEV   ioctls on a file while a child's read on it waits, then
 *                                      a signal ends that read
 *   devfwd-kmod-probe mmap DEV LEN     mmap(MAP_SHARED) LEN bytes at offset 0 twice, each
 *                                      touched and unmapped
 *   devfwd-kmod-probe fill DEV LEN B   mmap LEN bytes, fill them with byte B, unmap
 *   devfwd-kmod-probe romap DEV LEN    on a file opened read-only: mmap(MAP_SHARED,
 *                                      PROT_READ) LEN bytes, read one, unmap; then
 *                                      mmap(MAP_PRIVATE), which must fail
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/input.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void on_alarm(int sig)
{
	(void)sig;
}

static void arm(unsigned s)
{
	struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */

	sigaction(SIGALRM, &sa, NULL);
	alarm(s);
}

static int open_dev(const char *dev, int flags)
{
	int fd = open(dev, flags);

	if (fd < 0) {
		printf("open=-1 errno=%s\n", strerror(errno));
		fflush(stdout);
		exit(3);
	}
	printf("open=ok\n");
	fflush(stdout);
	return fd;
}

static int evdev(const char *dev)
{
	int fd = open_dev(dev, O_RDONLY), version = 0, bits = 0;
	unsigned char keys[KEY_MAX / 8 + 1] = { 0 };
	char name[256] = { 0 };
	struct input_id id = { 0 };
	int r;

	r = ioctl(fd, EVIOCGVERSION, &version);
	printf("EVIOCGVERSION=%d 0x%x\n", r, version);
	r = ioctl(fd, EVIOCGID, &id);
	printf("EVIOCGID=%d %04x:%04x:%04x:%04x\n", r, id.bustype, id.vendor, id.product, id.version);
	r = ioctl(fd, EVIOCGNAME(sizeof(name)), name);
	printf("EVIOCGNAME=%d %s\n", r, name);
	r = ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(keys)), keys);
	printf("EVIOCGBIT_KEY=%d", r);
	for (int i = 0; i <= KEY_MAX; i++)
		if (keys[i / 8] & (1u << (i % 8))) {
			printf(" %d", i);
			bits++;
		}
	printf("\n");
	/* a command no layout or driver knows */
	r = ioctl(fd, _IOR('E', 0xee, int), &version);
	printf("unknown=%d errno=%s\n", r, r < 0 ? strerror(errno) : "none");
	close(fd);
	return bits ? 0 : 1;
}

static int events(const char *dev, int n)
{
	int fd = open_dev(dev, O_RDONLY), got = 0;
	struct input_event ev[16];
	struct pollfd p = { .fd = fd, .events = POLLIN };

	printf("ready\n");
	fflush(stdout);
	/* poll first: the wake-up comes from the backend's POLL_NOTIFY */
	int r = poll(&p, 1, 240000);

	printf("poll=%d revents=0x%x\n", r, p.revents);
	while (got < n) {
		ssize_t len = read(fd, ev, sizeof(ev));

		if (len < 0) {
			printf("read=-1 errno=%s\n", strerror(errno));
			return 1;
		}
		for (size_t i = 0; i < (size_t)len / sizeof(ev[0]); i++)
			if (ev[i].type == EV_KEY) {
				printf("ev %u %u %d\n", ev[i].type, ev[i].code, ev[i].value);
				got++;
			}
	}
	close(fd);
	return 0;
}

static int sigread(const char *dev)
{
	int fd = open_dev(dev, O_RDONLY), version = 0;
	struct input_event ev;
	ssize_t len;

	printf("ready\n");
	fflush(stdout);
	arm(5);
	len = read(fd, &ev, sizeof(ev));
	printf("read=%zd errno=%s\n", len, len < 0 ? strerror(errno) : "none");
	/* the file still works after the cancelled read */
	int r = ioctl(fd, EVIOCGVERSION, &version);

	printf("after=%d 0x%x\n", r, version);
	close(fd);
	return 0;
}

static int readerr(const char *dev)
{
	int fd = open_dev(dev, O_RDONLY);
	char buf[64];
	ssize_t len;

	printf("ready\n");
	fflush(stdout);
	arm(600);
	do
		len = read(fd, buf, sizeof(buf));
	while (len > 0);
	printf("read=%zd errno=%s\n", len, len < 0 ? strerror(errno) : "none");
	fflush(stdout);
	len = read(fd, buf, sizeof(buf));
	printf("again=%zd errno=%s\n", len, len < 0 ? strerror(errno) : "none");
	close(fd);
	return 0;
}

static int tun(const char *dev, const char *ifname)
{
	int fd = open_dev(dev, O_RDWR), r;
	struct ifreq ifr = { 0 };
	unsigned char frame[2048];
	ssize_t len;

	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	r = ioctl(fd, TUNSETIFF, &ifr);
	printf("TUNSETIFF=%d %s\n", r, r < 0 ? strerror(errno) : ifr.ifr_name);
	memset(&ifr, 0, sizeof(ifr));
	r = ioctl(fd, TUNGETIFF, &ifr);
	printf("TUNGETIFF=%d %s 0x%x\n", r, ifr.ifr_name, (unsigned)ifr.ifr_flags & 0xffff);
	printf("ready\n");
	fflush(stdout);
	arm(240);
	len = read(fd, frame, sizeof(frame));
	if (len < 14) {
		printf("frame=%zd errno=%s\n", len, len < 0 ? strerror(errno) : "short");
		return 1;
	}
	printf("frame=%zd ethertype=%02x%02x\n", len, frame[12], frame[13]);
	len = write(fd, frame, (size_t)len);
	printf("write=%zd\n", len);
	fflush(stdout);
	/* the host checks its interface's counters before it goes */
	for (int i = 0; i < 300 && access("/tmp/tun.done", F_OK) != 0; i++)
		sleep(1);
	close(fd);
	return 0;
}

static int garbage(const char *dev)
{
	int fd = open(dev, O_RDONLY), version = 0, r;
	char name[64];
	struct pollfd p;
	ssize_t len;

	printf("open=%d errno=%s\n", fd < 0 ? -1 : 0, fd < 0 ? strerror(errno) : "none");
	if (fd < 0)
		return 0;
	r = ioctl(fd, EVIOCGVERSION, &version);
	printf("ioctl=%d errno=%s\n", r, r < 0 ? strerror(errno) : "none");
	r = ioctl(fd, EVIOCGNAME(sizeof(name)), name);
	printf("ioctl2=%d errno=%s\n", r, r < 0 ? strerror(errno) : "none");
	arm(30);
	len = read(fd, name, sizeof(name));
	printf("read=%zd errno=%s\n", len, len < 0 ? strerror(errno) : "none");
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	r = poll(&p, 1, 0);
	printf("poll=%d revents=0x%x\n", r, p.revents);
	close(fd);
	return 0;
}

/* Whether pid sleeps in the module waiting for a reply (its wchan). */
static int waits_in_module(pid_t pid)
{
	char path[64], w[128] = { 0 };
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(w, sizeof(w), f))
		w[0] = 0;
	fclose(f);
	return strcmp(w, "dfk_call") == 0;
}

static int concurrent(const char *dev)
{
	int fd = open_dev(dev, O_RDONLY), ok = 0, st = 0;
	struct input_event ev;
	pid_t child;
	int i;

	child = fork();
	if (child == 0) {
		struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */
		ssize_t len;

		sigaction(SIGUSR1, &sa, NULL);
		len = read(fd, &ev, sizeof(ev));
		_exit(len < 0 && errno == EINTR ? 0 : 1);
	}
	/* a deadline of 120 s for the child's read to be in flight */
	for (i = 0; i < 1200 && !waits_in_module(child); i++)
		usleep(100000);
	printf("child_waiting=%d\n", waits_in_module(child));
	for (i = 0; i < 20; i++) {
		int version = 0;

		if (ioctl(fd, EVIOCGVERSION, &version) == 0 && version == 0x10001)
			ok++;
	}
	printf("ioctls=%d still_waiting=%d\n", ok, waitpid(child, &st, WNOHANG) == 0);
	kill(child, SIGUSR1);
	waitpid(child, &st, 0);
	printf("child=%s\n", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "EINTR" : "other");
	close(fd);
	return 0;
}

static int map_once(int fd, size_t len, const char *key)
{
	volatile unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED) {
		printf("%s=-1 errno=%s\n", key, strerror(errno));
		return -1;
	}
	p[len - 1] = p[0];
	printf("%s=0 munmap=%d\n", key, munmap((void *)p, len));
	return 0;
}

static int fill(const char *dev, size_t len, int byte)
{
	int fd = open_dev(dev, O_RDWR);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED) {
		printf("fill=-1 errno=%s\n", strerror(errno));
		return 1;
	}
	memset(p, byte, len);
	printf("fill=0 munmap=%d\n", munmap(p, len));
	close(fd);
	return 0;
}

static int romap(const char *dev, size_t len)
{
	int fd = open_dev(dev, O_RDONLY);
	volatile unsigned char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	void *q;

	if (p == MAP_FAILED) {
		printf("romap=-1 errno=%s\n", strerror(errno));
	} else {
		int first = p[0];

		printf("romap=0 first=%d munmap=%d\n", first, munmap((void *)p, len));
	}
	q = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (q == MAP_FAILED)
		printf("private=-1 errno=%s\n", strerror(errno));
	else
		printf("private=0 munmap=%d\n", munmap(q, len));
	close(fd);
	return 0;
}

static int mapping(const char *dev, size_t len)
{
	int fd = open_dev(dev, O_RDWR);

	map_once(fd, len, "mmap");
	map_once(fd, len, "again");
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "evdev"))
		return evdev(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "events"))
		return events(argv[2], atoi(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "sigread"))
		return sigread(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "readerr"))
		return readerr(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "tun"))
		return tun(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "concurrent"))
		return concurrent(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "garbage"))
		return garbage(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "fill"))
		return fill(argv[2], strtoul(argv[3], NULL, 0), atoi(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "romap"))
		return romap(argv[2], strtoul(argv[3], NULL, 0));
	if (argc == 4 && !strcmp(argv[1], "mmap"))
		return mapping(argv[2], strtoul(argv[3], NULL, 0));
	fprintf(stderr, "usage: devfwd-kmod-probe evdev|events|sigread|readerr|tun|garbage|concurrent|mmap|romap|fill DEV [ARG]\n");
	return 2;
}
