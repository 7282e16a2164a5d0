#!/usr/bin/env python3
# lab-seconds: 420 (typical on a CI machine; scripts/run-tests starts the longest first)
# SPDX-License-Identifier: LGPL-2.1-or-later
"""devfwd.ko, the guest kernel frontend, across a real VM boundary:
devfwd-backend on the emulated host, the module (kmod/devfwd, built for the
lab's kernel by scripts/run-tests) loaded in a guest of it with insmod, and
configured by `devfwd-frontend --kernel` over virtio-vsock (guest CID 43).

A probe in the guest (tests/lab/tools/devfwd-kmod-probe.c) checks:
- evdev ioctls (EVIOCGVERSION, EVIOCGID, EVIOCGNAME, EVIOCGBIT, an unknown
  one) give what the same ioctls give on the host's device;
- a poll blocked before any event is woken (POLL_NOTIFY) and the key events
  read in the guest are exactly those injected on the host;
- a read blocked on the host is interrupted by a signal (EINTR, through
  CANCEL) and the file works afterwards; ioctls on a file are answered
  while a read on the same file waits;
- TUN: TUNSETIFF creates the host's tap interface, TUNGETIFF returns it, a
  frame the host sends is read in the guest and one written in the guest is
  received by the host; closing removes the interface;
- a fake backend sending garbage (unknown id, oversized and overlong
  payloads, bad magic, kernel-internal errno, wrong op, a cut message, a
  stray POLL_NOTIFY, a malformed HELLO, a read result larger than asked)
  makes the calls fail with EIO, never anything else;
- a backend killed while a guest read waits ends that read with EIO;
and that the guest kernel logged no BUG, Oops or WARNING, and the module
unloads."""
import os
import signal
import struct
import subprocess
import sys

from devfwd_lab import Backend, FakeBackend, IOC, IOR, VERSION, fail, guest_sh, kmod_guest, kmod_tools, lab_guest, \
    make_uinput_keyboard, modprobe, reply_hdr, wait_for

GUEST, CID, PORT, FAKE_PORT = "devfwd-kmod", 43, 7077, 7078
EIO = os.strerror(5)


guest = lab_guest


def gexec(cmd, timeout=120, check=True):
    return guest_sh(GUEST, cmd, timeout=timeout, check=check)


def gfile(path):
    return gexec(f"cat {path} 2>/dev/null", check=False).stdout


def guest_wchan(pidfile):
    """Where the guest process whose pid is in pidfile sleeps."""
    return gexec(f"cat /proc/$(cat {pidfile})/wchan 2>/dev/null", check=False).stdout.strip()


def wait_guest_file(path, text, what, timeout=180):
    return wait_for(lambda: text in gfile(path), what, timeout=timeout, interval=1)


# ---- a fake backend: a real HELLO and OPEN, then one kind of garbage per stream

HELLO, OPEN, RELEASE, READ, IOCTL, POLL, NOTIFY = 1, 2, 3, 4, 6, 7, 8
# mode -> what the probe's calls must return (open, ioctl, ioctl2, read)
MODES = {
    "unknown-id": ("0", EIO, EIO, EIO),
    "overlong": ("0", EIO, EIO, EIO),        # 4096 bytes for a 4-byte ioctl answer
    "oversized": ("0", EIO, EIO, EIO),       # a header claiming 2 MiB
    "bad-magic": ("0", EIO, EIO, EIO),
    "restart-errno": ("0", EIO, EIO, EIO),   # result -512 (ERESTARTSYS)
    "wrong-op": ("0", EIO, EIO, EIO),
    "cut": ("0", EIO, EIO, EIO),             # the reply stops mid-payload, then EOF
    "stray-notify": ("0", EIO, EIO, EIO),    # POLL_NOTIFY for a file never opened
    "bad-hello": ("-1", None, None, None),   # HELLO answered with 16 bytes
    "read-too-much": ("0", "none", "none", EIO),  # 200 bytes for a 64-byte read
}


rhdr = reply_hdr


class GarbageBackend(FakeBackend):
    def answer(self, c, mode, op, rid, payload):
        if op == HELLO:
            if mode == "bad-hello":
                c.sendall(rhdr(HELLO, rid, length=16) + bytes(16))
            else:
                c.sendall(rhdr(HELLO, rid, length=8) + struct.pack("<II", VERSION, 1 << 20))
        elif op == OPEN:
            c.sendall(rhdr(OPEN, rid, result=1))
            if mode == "stray-notify":
                c.sendall(rhdr(NOTIFY, 0, fh=99, result=1, flags=0))
        elif op == RELEASE:
            c.sendall(rhdr(RELEASE, rid, fh=1))
        elif op == IOCTL:
            if mode == "unknown-id":
                c.sendall(rhdr(IOCTL, rid + 1000, fh=1, length=4) + bytes(4))
            elif mode == "overlong":
                c.sendall(rhdr(IOCTL, rid, fh=1, length=4096) + bytes(4096))
            elif mode == "oversized":
                c.sendall(rhdr(IOCTL, rid, fh=1, length=2 << 20))
            elif mode == "bad-magic":
                c.sendall(rhdr(IOCTL, rid, fh=1, length=4, magic=0x41414141) + bytes(4))
            elif mode == "restart-errno":
                c.sendall(rhdr(IOCTL, rid, fh=1, result=-512))
            elif mode == "wrong-op":
                c.sendall(rhdr(READ, rid, fh=1, result=4, length=4) + bytes(4))
            elif mode == "cut":
                c.sendall(rhdr(IOCTL, rid, fh=1, length=4) + bytes(2))
                return False
            else:
                # an honest answer: zeros, as long as the OUT segments
                nseg = struct.unpack_from("<H", payload, 4)[0]
                out = sum(ln for ln, _, d, _, _ in (struct.unpack_from("<IIBBH", payload, 16 + 12 * i)
                                                    for i in range(nseg)) if d & 2)
                c.sendall(rhdr(IOCTL, rid, fh=1, length=out) + bytes(out))
        elif op == READ:
            c.sendall(rhdr(READ, rid, fh=1, result=200, length=200) + bytes(200))
        elif op == POLL:
            c.sendall(rhdr(POLL, rid, fh=1, result=0))


def native_evdev(ev):
    """The probe's evdev lines, from the same ioctls on the host's device."""
    import fcntl
    fd = os.open(ev, os.O_RDONLY)
    try:
        version = struct.unpack("i", fcntl.ioctl(fd, IOR("E", 0x01, 4), bytes(4)))[0]
        ident = struct.unpack("HHHH", fcntl.ioctl(fd, IOR("E", 0x02, 8), bytes(8)))
        name = fcntl.ioctl(fd, IOC(2, "E", 0x06, 256), bytes(256))
        keys = fcntl.ioctl(fd, IOC(2, "E", 0x20 + 1, 96), bytes(96))
        try:
            fcntl.ioctl(fd, IOR("E", 0xee, 4), bytes(4))
            unknown = "0 errno=none"
        except OSError as e:
            unknown = f"-1 errno={os.strerror(e.errno)}"
    finally:
        os.close(fd)
    bits = [i for i in range(96 * 8) if keys[i // 8] & (1 << (i % 8))]
    name_len = name.index(b"\0") + 1
    return [f"EVIOCGVERSION=0 0x{version:x}",
            "EVIOCGID=0 " + ":".join(f"{x:04x}" for x in ident),
            f"EVIOCGNAME={name_len} {name[:name_len - 1].decode()}",
            f"EVIOCGBIT_KEY=96 " + " ".join(map(str, bits)),
            f"unknown={unknown}"]


def kill_backend(backend):
    """SIGKILL for the backend and every worker it forked."""
    pids = [backend.proc.pid]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == backend.proc.pid:
                        pids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    backend.proc.wait()


def main():
    probe, frontend = kmod_tools()
    modprobe("evdev", "uinput", "vhost_vsock", "tun")
    ufd, ev = make_uinput_keyboard(b"devfwd-kmod-kbd", keys=(30, 48))
    backend = Backend(f"[guest cid={CID}]\nallow-path = {ev}\nallow-path = /dev/net/tun\n"
                      "allow-ioctl = E:*\nallow-ioctl = T:*\nworker-capability = net_admin\n",
                      [f"vsock:{PORT}"], name="kmod")
    fake = GarbageBackend(FAKE_PORT, MODES)
    started = False
    try:
        started = True  # stopping a guest that did not start is harmless
        kmod_guest(GUEST, CID, probe, frontend)
        r = gexec(f"/tmp/devfwd-frontend --kernel --connect vsock:2:{PORT} --connect-timeout 300 "
                  f"--device {ev}=input/kbd0 --device /dev/net/tun=net/dfktun && cat /dev/devfwd-ctl && "
                  "ls -l /dev/input/kbd0 /dev/net/dfktun", check=False, timeout=400)
        if r.returncode or f"input/kbd0 {ev} vsock:2:{PORT}" not in r.stdout:
            fail(f"devfwd-frontend --kernel did not set up the devices: {r.stdout} {r.stderr}")
        print(r.stdout, file=sys.stderr)

        # 1. ioctls: the guest's answers equal the host's own.
        got = gexec("/tmp/probe evdev /dev/input/kbd0").stdout.splitlines()
        want = native_evdev(ev)
        if got[1:] != want:
            fail(f"evdev ioctls through devfwd.ko differ from the host's:\n guest {got}\n host  {want}")
        print(f"ioctls equal: {want}", file=sys.stderr)

        # 2. poll woken by POLL_NOTIFY, then exactly the injected events.
        gexec("/tmp/probe events /dev/input/kbd0 4 >/tmp/events.log 2>&1 & echo $! >/tmp/events.pid")
        # The poll has had the backend's "not ready" and sleeps on the
        # module's wait queue before anything happens.
        wait_for(lambda: "poll" in guest_wchan("/tmp/events.pid") and "dfk" not in guest_wchan("/tmp/events.pid"),
                 "the guest's poll to sleep", timeout=180, interval=1)
        injected = [(1, 30, 1), (1, 30, 0), (1, 48, 1), (1, 48, 0)]
        for t, c, v in injected:
            os.write(ufd, struct.pack("llHHi", 0, 0, t, c, v) + struct.pack("llHHi", 0, 0, 0, 0, 0))
        wait_guest_file("/tmp/events.log", "ev 1 48 0", "the guest to read the injected events", timeout=120)
        out = gfile("/tmp/events.log")
        read = [tuple(int(x) for x in l.split()[1:]) for l in out.splitlines() if l.startswith("ev ")]
        if "poll=1 revents=0x1" not in out or read != injected:
            fail(f"poll/read through devfwd.ko: {out!r}, injected {injected}")
        print(f"events equal: {read}", file=sys.stderr)

        # 3. a signal interrupts a read parked on the host.
        out = gexec("/tmp/probe sigread /dev/input/kbd0", timeout=60).stdout
        if f"read=-1 errno={os.strerror(4)}" not in out or "after=0 0x10001" not in out:
            fail(f"a signal did not interrupt the blocked read cleanly: {out!r}")
        print("signal: read interrupted (EINTR), file usable after", file=sys.stderr)

        # 3b. one file, several calls in flight: ioctls answered while a
        # child's read on the same file waits; a signal then ends that read.
        out = gexec("/tmp/probe concurrent /dev/input/kbd0", timeout=200).stdout
        if not all(x in out for x in ("child_waiting=1", "ioctls=20 still_waiting=1", "child=EINTR")):
            fail(f"ioctls beside a waiting read on the same file: {out!r}")
        print("concurrent: 20 ioctls answered while a read on the same file waited; SIGUSR1 ended it",
              file=sys.stderr)

        # 4. TUN: the host's tap interface, a frame each way.
        gexec("/tmp/probe tun /dev/net/dfktun dfk0 >/tmp/tun.log 2>&1 &")
        wait_guest_file("/tmp/tun.log", "ready", "TUNSETIFF through devfwd.ko")
        out = gfile("/tmp/tun.log")
        if "TUNSETIFF=0 dfk0" not in out or "TUNGETIFF=0 dfk0 0x1002" not in out:
            fail(f"TUNSETIFF/TUNGETIFF through devfwd.ko: {out!r}")
        if not os.path.exists("/sys/class/net/dfk0"):
            fail("TUNSETIFF in the guest made no dfk0 on the host")
        # no IPv6 chatter: the first frame out is the ARP request below
        if os.path.exists("/proc/sys/net/ipv6/conf/dfk0/disable_ipv6"):
            with open("/proc/sys/net/ipv6/conf/dfk0/disable_ipv6", "w") as f:
                f.write("1")
        subprocess.run(["ip", "link", "set", "dfk0", "up"], check=True)
        subprocess.run(["ip", "addr", "add", "10.77.7.1/24", "dev", "dfk0"], check=True)

        def frame_seen():
            subprocess.run(["ping", "-c1", "-W1", "10.77.7.2"], capture_output=True)  # an ARP request
            return "write=" in gfile("/tmp/tun.log")
        wait_for(frame_seen, "the guest to read a frame from the tap", timeout=180, interval=1)
        out = gfile("/tmp/tun.log")
        flen = out.split("frame=")[1].split()[0]
        if "ethertype=0806" not in out or f"write={flen}" not in out:
            fail(f"the tap's frame through devfwd.ko: {out!r}")
        with open("/sys/class/net/dfk0/statistics/rx_packets") as f:
            rx = int(f.read())
        if rx < 1:
            fail("the frame the guest wrote never reached the host's tap")
        gexec("touch /tmp/tun.done")
        wait_for(lambda: not os.path.exists("/sys/class/net/dfk0"), "dfk0 to go when the guest closes it",
                 timeout=120, interval=1)
        print(f"tun: ARP frame of {flen} bytes read in the guest, written back (host rx {rx})", file=sys.stderr)

        # 5. garbage from a fake backend: errors, no oops.
        gexec(f"echo 'add 2 {FAKE_PORT} /dev/input/event9 fake0' > /dev/devfwd-ctl")
        n = len(MODES)
        out = gexec(f"for i in $(seq {n}); do /tmp/probe garbage /dev/fake0; echo ---; done", timeout=600).stdout
        runs = [dict(l.split("=", 1) for l in sec.strip().splitlines() if "=" in l)
                for sec in out.split("---")[:n]]
        if fake.seen != list(MODES):
            fail(f"the fake backend served {fake.seen}, expected {list(MODES)}; guest: {out}")
        for (mode, (o, i1, i2, rd)), r in zip(MODES.items(), runs):
            def errno_of(key):
                return r.get(key, "").split("errno=")[-1]
            ok = r.get("open", "").startswith(o)
            if o == "0":
                ok = ok and errno_of("ioctl") == i1 and errno_of("ioctl2") == i2 and errno_of("read") == rd
                ok = ok and (mode == "read-too-much" or int(r.get("poll", "0 revents=0x0").split("0x")[1], 16) & 0x8)
            else:
                ok = ok and errno_of("open") == EIO
            if not ok:
                fail(f"fake backend '{mode}': the guest got {r}")
        print(f"garbage: {len(runs)} malformed backends, each call failed with EIO", file=sys.stderr)

        # 6. the backend dies while a guest read waits on it.
        gexec("/tmp/probe readerr /dev/input/kbd0 >/tmp/readerr.log 2>&1 & echo $! >/tmp/readerr.pid")
        wait_for(lambda: guest_wchan("/tmp/readerr.pid") == "dfk_call", "the guest's read to wait for its reply",
                 timeout=180, interval=1)
        kill_backend(backend)
        wait_guest_file("/tmp/readerr.log", "again=", "the guest's read to end", timeout=120)
        out = gfile("/tmp/readerr.log")
        if f"read=-1 errno={EIO}" not in out or f"again=-1 errno={EIO}" not in out:
            fail(f"a killed backend did not end the guest's read with EIO: {out!r}")
        print("killed backend: the waiting read and the next one got EIO", file=sys.stderr)

        # The guest kernel stayed sound, named the causes, and the module unloads.
        dmesg = gexec("dmesg").stdout
        bad = [l for l in dmesg.splitlines() if any(w in l for w in ("BUG", "Oops", "WARNING", "Call Trace",
                                                                     "general protection"))]
        if bad:
            fail("the guest kernel logged:\n" + "\n".join(bad))
        if "unknown id" not in dmesg or not ("the backend closed the stream" in dmesg
                                             or "receiving from the backend failed" in dmesg):
            fail(f"the guest's kernel log does not name the causes:\n{dmesg[-3000:]}")
        r = gexec("rmmod devfwd && ! test -e /dev/input/kbd0", check=False)
        if r.returncode:
            fail(f"rmmod devfwd failed: {r.stdout} {r.stderr}")
        print("\n".join(l for l in dmesg.splitlines() if "devfwd" in l)[-4000:], file=sys.stderr)
    finally:
        if started:
            guest("stop", GUEST, check=False)
        if backend.proc.poll() is None:
            backend.stop()
        fake.close()
        os.close(ufd)
    print(f"PASS: devfwd.ko in a guest (vsock cid {CID}): evdev ioctls and events equal the host's, poll "
          "wake-up, signal, TUN both ways, garbage and a killed backend give EIO, no oops")


if __name__ == "__main__":
    main()
