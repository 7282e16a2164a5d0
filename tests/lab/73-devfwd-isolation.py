#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""devfwd isolation on the real kernel, over vsock loopback (CID 1): while a
guest application keeps reading a forwarded /dev/zero through CUSE, other
streams try a device outside the policy, a path with "..", a symlink out of
the allowed set, an ioctl outside the policy, send garbage, hang up in the
middle of a request, and have their worker killed. Every attempt is refused
or ends only its own stream, and the reader is served throughout."""
import errno
import fcntl
import os
import signal
import struct

from devfwd_lab import (IOC, IOR, OP_OPEN, OP_READ, TMP, Backend, Frontend, call, fail, hdr,
                        ZeroReader, make_uinput_keyboard, modprobe, raw_open, recv_exact, vsock_connect,
                        wait_for)

PORT = 7073
EVIOCGVERSION = IOR("E", 0x01, 4)


def main():
    modprobe("cuse", "evdev", "uinput", "vsock_loopback")
    ufd, ev = make_uinput_keyboard(b"devfwd-iso-kbd")
    allowed = os.path.join(TMP, "devfwd-allowed")
    os.makedirs(allowed, exist_ok=True)
    link = os.path.join(allowed, "link")
    if not os.path.lexists(link):
        os.symlink("/dev/full", link)
    backend = Backend(f"[guest cid=1]\nallow-path = /dev/zero\nallow-path = {ev}\nallow-path = {allowed}/*\n"
                      f"allow-ioctl = {EVIOCGVERSION:#x}\n", [f"vsock:{PORT}"], name="iso")
    frontend = Frontend(f"vsock:1:{PORT}", [("/dev/zero", "devfwd-zero"), (ev, "input/devfwd-iso")], name="iso")
    reader = ZeroReader("/dev/devfwd-zero")
    try:
        reader.wait_first("the first forwarded read")

        def progressed(what):
            reader.wait_more(f"the reader to go on after {what}")

        s = vsock_connect(1, PORT)
        for rid, path in enumerate(["/dev/full", "/dev/../dev/zero", "/dev//zero", link, "/etc/passwd"], 1):
            r = raw_open(s, rid, path)
            if r != -errno.EACCES:
                fail(f"open {path} through devfwd gave {r}, expected -EACCES")
        if raw_open(s, 9, "/dev/zero") <= 0:
            fail("an allowed open failed on the same stream after refusals")
        progressed("refused opens")

        # An ioctl outside the policy, through the CUSE device.
        fd = os.open("/dev/input/devfwd-iso", os.O_RDONLY)
        if struct.unpack("i", fcntl.ioctl(fd, EVIOCGVERSION, b"\0" * 4))[0] != 0x010001:
            fail("allowed EVIOCGVERSION failed")
        try:
            fcntl.ioctl(fd, IOC(2, "E", 0x06, 64), bytearray(64))  # EVIOCGNAME
            fail("EVIOCGNAME, not in the policy, succeeded")
        except OSError as e:
            if e.errno != errno.ENOTTY:
                fail(f"EVIOCGNAME refused with {errno.errorcode.get(e.errno)}, expected ENOTTY")
        os.close(fd)
        progressed("a refused ioctl")

        # Garbage, then a hang-up in the middle of a request.
        g = vsock_connect(1, PORT)
        g.sendall(b"\xde\xad\xbe\xef" * 64)
        try:
            if g.recv(64):
                fail("a garbage stream got an answer")
        except ConnectionResetError:
            pass
        g.close()
        h = vsock_connect(1, PORT)
        h.sendall(hdr(OP_OPEN, 1, 0, 200) + b"/dev/ze")
        h.close()
        progressed("garbage and a mid-request hang-up")

        # A worker killed outright: its stream ends, others go on.
        k = vsock_connect(1, PORT)
        if raw_open(k, 1, "/dev/zero") <= 0:
            fail("open on the victim stream failed")
        log = backend.log()
        pid = int([ln for ln in log.splitlines() if "opened /dev/zero" in ln][-1].split("[")[1].split("]")[0])
        os.kill(pid, signal.SIGKILL)
        try:
            k.sendall(hdr(OP_READ, 2, 1, 16) + struct.pack("<QII", 0, 16, 0))
            recv_exact(k, 32)
            fail("a killed worker still answered")
        except (ConnectionResetError, BrokenPipeError):
            pass
        progressed("a killed worker")
        if call(s, OP_READ, 10, 1, struct.pack("<QII", 0, 8, 0))[0] != 8:
            fail("the first raw stream stopped working")
        wait_for(lambda: "killed by signal 9" in backend.log(), "the backend to log the killed worker", 10)
        for needle in ("open /dev/full refused: not in policy", "path goes through a symlink",
                       "refused: not in policy", "stream closed: malformed message"):
            if needle not in backend.log():
                fail(f"backend log lacks {needle!r}:\n{backend.log()}")
    finally:
        reader.stop()
        frontend.stop()
        backend.stop()
        os.close(ufd)
    reader.check("at the end")
    print(f"PASS: isolation held; the forwarded reader did {reader.reads} reads throughout")


if __name__ == "__main__":
    main()
