#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""devfwd, input class, on real drivers: a virtual keyboard made with uinput
on the host, forwarded over vsock loopback (CID 1) to a CUSE device. An
unmodified evdev reader sees EVIOCGVERSION/EVIOCGNAME/EVIOCGBIT, grabs the
device with EVIOCGRAB (a direct reader then sees nothing), polls and reads
the injected key events; mmap reports ENODEV."""
import errno
import fcntl
import mmap
import os
import select
import struct
import subprocess

from devfwd_lab import IOC, IOR, IOW, Backend, Frontend, binary, fail, make_uinput_keyboard, modprobe, stop_process, wait_for

EV_SYN, EV_KEY, KEY_A, KEY_B = 0, 1, 30, 48
EVIOCGVERSION = IOR("E", 0x01, 4)
EVIOCGRAB = IOW("E", 0x90, 4)
NAME = b"devfwd-lab-keyboard"
PORT = 7070


def EVIOCGNAME(n):
    return IOC(2, "E", 0x06, n)


def EVIOCGBIT(ev, n):
    return IOC(2, "E", 0x20 + ev, n)


def emit(ufd, code, value):
    for t, c, v in ((EV_KEY, code, value), (EV_SYN, 0, 0)):
        os.write(ufd, struct.pack("llHHi", 0, 0, t, c, v))


def read_key(fd):
    """Reads events until an EV_KEY, returns (code, value)."""
    while True:
        data = os.read(fd, 24 * 8)
        for i in range(0, len(data), 24):
            _, _, t, c, v = struct.unpack("llHHi", data[i:i + 24])
            if t == EV_KEY:
                return c, v


def main():
    modprobe("cuse", "evdev", "uinput", "vsock_loopback")
    ufd, host_path = make_uinput_keyboard(NAME, (KEY_A, KEY_B))
    backend = Backend(f"[guest cid=1]\nallow-path = {host_path}\nallow-ioctl = E:*\n",
                      [f"vsock:{PORT}"], name="input")
    frontend = Frontend(f"vsock:1:{PORT}", [(host_path, "input/devfwd-kbd")], name="input")
    try:
        fd = os.open("/dev/input/devfwd-kbd", os.O_RDONLY)
        ver = struct.unpack("i", fcntl.ioctl(fd, EVIOCGVERSION, b"\0" * 4))[0]
        if ver != 0x010001:
            fail(f"EVIOCGVERSION through devfwd gave {ver:#x}")
        name = bytearray(256)
        n = fcntl.ioctl(fd, EVIOCGNAME(len(name)), name)
        if bytes(name[:n]).rstrip(b"\0") != NAME:
            fail(f"EVIOCGNAME gave {bytes(name[:n])!r}, expected {NAME!r}")
        bits = bytearray(96)
        fcntl.ioctl(fd, EVIOCGBIT(EV_KEY, len(bits)), bits)
        if not (bits[KEY_A // 8] >> (KEY_A % 8)) & 1 or not (bits[KEY_B // 8] >> (KEY_B % 8)) & 1:
            fail("EVIOCGBIT(EV_KEY) lacks KEY_A or KEY_B")
        if (bits[KEY_A // 8 + 1]):
            fail(f"EVIOCGBIT(EV_KEY) claims keys the device lacks: {bits.hex()}")

        # poll: nothing yet, then readiness after an event.
        p = select.poll()
        p.register(fd, select.POLLIN)
        if p.poll(0):
            fail("forwarded device polls readable before any event")
        emit(ufd, KEY_A, 1)
        if not p.poll(20000):
            fail("poll on the forwarded device never reported the key press")
        if read_key(fd) != (KEY_A, 1):
            fail("did not read KEY_A press")

        # Grab: a direct reader on the host no longer sees events.
        direct = os.open(host_path, os.O_RDONLY | os.O_NONBLOCK)
        fcntl.ioctl(fd, EVIOCGRAB, 1)
        emit(ufd, KEY_B, 1)
        if read_key(fd) != (KEY_B, 1):
            fail("grabbing reader did not read KEY_B")
        try:
            leaked = os.read(direct, 24 * 8)
            fail(f"direct reader saw {len(leaked)} bytes while devfwd held the grab")
        except BlockingIOError:
            pass
        fcntl.ioctl(fd, EVIOCGRAB, 0)
        emit(ufd, KEY_B, 0)
        if read_key(fd) != (KEY_B, 0):
            fail("forwarded reader did not read KEY_B release")
        wait_for(lambda: select.select([direct], [], [], 0)[0], "direct reader after ungrab", timeout=10)
        if read_key(direct) != (KEY_B, 0):
            fail("direct reader did not see KEY_B release after ungrab")

        try:
            mmap.mmap(fd, 4096, prot=mmap.PROT_READ)
            fail("mmap of a forwarded device succeeded")
        except OSError as e:
            if e.errno != errno.ENODEV:
                fail(f"mmap failed with {errno.errorcode.get(e.errno)}, expected ENODEV")
        os.close(fd)
        os.close(direct)
    finally:
        frontend.stop()
        backend.stop()
    try:
        connect_retry(host_path)
    finally:
        os.close(ufd)
    print("PASS: input forwarded (version, name, bits, poll, read, grab; mmap ENODEV); "
          "a frontend started before its backend connects once the backend listens")


def connect_retry(host_path):
    """A frontend started before its backend keeps trying (a guest often
    boots before the host side is up); with --connect-timeout 0 it gives up
    at once and names the address."""
    late = PORT + 1
    r = subprocess.run([binary("devfwd-frontend"), "--connect", f"vsock:1:{late}", "--connect-timeout", "0",
                        "--device", f"{host_path}=input/devfwd-never"], capture_output=True, text=True, timeout=30)
    if r.returncode == 0 or f"vsock 1:{late}" not in r.stderr:
        fail(f"a frontend with no backend and --connect-timeout 0: status {r.returncode}, {r.stderr!r}")
    print(f"ok: no backend, no retry: {r.stderr.strip()}")
    log = os.path.join(os.environ.get("TMPDIR", "/tmp"), "devfwd-frontend-late.log")
    with open(log, "w") as lf:
        proc = subprocess.Popen([binary("devfwd-frontend"), "--connect", f"vsock:1:{late}", "--connect-timeout", "60",
                                 "--device", f"{host_path}=input/devfwd-late"], stderr=lf)
    backend = None
    try:
        wait_for(lambda: "retrying" in open(log).read() or proc.poll() is not None,
                 "the frontend to report its first failed connect", timeout=30)
        if proc.poll() is not None:
            fail(f"the frontend gave up instead of retrying: {open(log).read()}")
        backend = Backend(f"[guest cid=1]\nallow-path = {host_path}\nallow-ioctl = E:*\n",
                          [f"vsock:{late}"], name="late")
        wait_for(lambda: os.path.exists("/dev/input/devfwd-late") or proc.poll() is not None,
                 "the late frontend's device", timeout=60)
        if proc.poll() is not None:
            fail(f"the frontend exited once the backend was up: {open(log).read()}")
        fd = os.open("/dev/input/devfwd-late", os.O_RDONLY)
        ver = struct.unpack("i", fcntl.ioctl(fd, EVIOCGVERSION, b"\0" * 4))[0]
        os.close(fd)
        if ver != 0x010001:
            fail(f"EVIOCGVERSION through the late frontend gave {ver:#x}")
        print(f"ok: frontend started before the backend connected: {open(log).read().strip()}")
    finally:
        stop_process(proc)
        if backend:
            backend.stop()


if __name__ == "__main__":
    main()
