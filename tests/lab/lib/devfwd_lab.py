# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared setup for the devfwd lab scenarios (tests/lab/7*-devfwd-*.py, the
benchmark 75-devfwd-bench.py among them): load modules, start devfwd-backend
with a policy and devfwd-frontend for some devices, wait for conditions with
deadlines. The scenarios import it through PYTHONPATH, which
tests/lab/run-inside sets."""
import fcntl
import glob
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

BUILD = os.environ.get("IOVM_BUILD", "")
TMP = os.environ.get("TMPDIR", "/tmp")


def skip(why):
    print(f"SKIP: {why}", file=sys.stderr)
    sys.exit(77)


def fail(why):
    print(f"FAIL: {why}", file=sys.stderr)
    sys.exit(1)


def binary(name):
    p = os.path.join(BUILD, "src/devfwd", name)
    if not BUILD or not os.access(p, os.X_OK):
        skip(f"{p} not built (set IOVM_BUILD to the build directory)")
    return p


def modprobe(*mods):
    for m in mods:
        r = subprocess.run(["modprobe", m], capture_output=True, text=True)
        if r.returncode != 0:
            skip(f"modprobe {m} failed: {r.stderr.strip()}")


def wait_for(cond, what, timeout=30.0, interval=0.05):
    """Polls cond() until it is true or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    fail(f"timed out after {timeout:.0f}s waiting for {what}")


class ZeroReader:
    """A thread reading 4 KiB blocks of zeros from a forwarded /dev/zero
    until stop(): a guest's stream that must keep working while another
    guest's does something else. reads counts the blocks, errors what went
    wrong."""

    def __init__(self, path):
        self.path, self.reads, self.errors = path, 0, []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run)
        self._t.start()

    def _run(self):
        try:
            with open(self.path, "rb", buffering=0) as f:
                while not self._stop.is_set():
                    if f.read(4096) != bytes(4096):
                        self.errors.append("short or non-zero read")
                    self.reads += 1
        except OSError as e:
            self.errors.append(str(e))

    def wait_first(self, what):
        wait_for(lambda: self.reads > 0 or self.errors, what)
        self.check(what)

    def wait_more(self, what):
        """Waits for one more read than now; fails if the reader failed."""
        n = self.reads
        wait_for(lambda: self.reads > n or self.errors, what)
        self.check(what)

    def check(self, what):
        if self.errors:
            fail(f"{what}: the reader failed: {self.errors}")

    def stop(self):
        self._stop.set()
        self._t.join(timeout=30)


def stop_process(proc, timeout=10):
    """SIGTERM, then SIGKILL if proc has not exited within timeout seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Logged:
    """A devfwd process started with its stderr in self.log_file (at
    self.logpath)."""

    def log(self):
        with open(self.logpath) as f:
            return f.read()

    def stop(self):
        stop_process(self.proc)
        self.log_file.close()


class Backend(Logged):
    def __init__(self, policy, listen, name="backend", wrap=(), verbose=True):
        self.policy = os.path.join(TMP, f"devfwd-{name}.conf")
        self.logpath = os.path.join(TMP, f"devfwd-backend-{name}.log")
        with open(self.policy, "w") as f:
            f.write(policy)
        rfd, wfd = os.pipe()
        args = [*wrap, binary("devfwd-backend"), "--policy", self.policy, "--ready-fd", str(wfd)]
        if verbose:
            args.append("-v")  # every ioctl logged: for tests, not for timing
        for addr in listen:
            args += ["--listen", addr]
        self.log_file = open(self.logpath, "w")
        self.proc = subprocess.Popen(args, pass_fds=(wfd,), stderr=self.log_file)
        os.close(wfd)
        ready = os.read(rfd, 16)
        os.close(rfd)
        if ready != b"READY\n":
            self.stop()
            fail(f"devfwd-backend did not start: {self.log()}")


class Frontend(Logged):
    def __init__(self, addr, devices, name="frontend", wrap=()):
        """devices: list of (host_path, guest_name) pairs; waits for every
        /dev/guest_name to appear."""
        self.logpath = os.path.join(TMP, f"devfwd-frontend-{name}.log")
        args = [*wrap, binary("devfwd-frontend"), "--connect", addr]
        for host, guest in devices:
            args += ["--device", f"{host}={guest}"]
        if os.environ.get("IOVM_DEVFWD_DEBUG"):
            args.append("--debug")
        self.log_file = open(self.logpath, "w")
        self.proc = subprocess.Popen(args, stderr=self.log_file)
        for _, guest in devices:
            path = "/dev/" + guest
            wait_for(lambda: os.path.exists(path) or self.proc.poll() is not None, path)
            if self.proc.poll() is not None:
                fail(f"devfwd-frontend exited ({self.proc.returncode}): {self.log()}")


# ioctl number helpers (asm-generic/ioctl.h)
def IOC(d, t, nr, size):
    return (d << 30) | (size << 16) | (ord(t) << 8) | nr


def IO(t, nr):
    return IOC(0, t, nr, 0)


def IOW(t, nr, size):
    return IOC(1, t, nr, size)


def IOR(t, nr, size):
    return IOC(2, t, nr, size)


def IOWR(t, nr, size):
    return IOC(3, t, nr, size)


def make_uinput_keyboard(name=b"devfwd-lab-keyboard", keys=(30, 48)):
    """Creates a uinput keyboard; returns (uinput fd, /dev/input/eventN)."""
    ui_set_evbit, ui_set_keybit = IOW("U", 100, 4), IOW("U", 101, 4)
    ui_dev_setup, ui_dev_create = IOW("U", 3, 92), IO("U", 1)
    fd = os.open("/dev/uinput", os.O_WRONLY | os.O_NONBLOCK)
    fcntl.ioctl(fd, ui_set_evbit, 1)  # EV_KEY
    for k in keys:
        fcntl.ioctl(fd, ui_set_keybit, k)
    fcntl.ioctl(fd, ui_dev_setup, struct.pack("HHHH80sI", 0x06, 0x1234, 0x5678, 1, name, 0))
    fcntl.ioctl(fd, ui_dev_create)
    buf = bytearray(64)
    fcntl.ioctl(fd, IOC(2, "U", 44, len(buf)), buf)
    sysname = buf.split(b"\0")[0].decode()
    ev = wait_for(lambda: glob.glob(f"/sys/devices/virtual/input/{sysname}/event*"), "uinput event node")
    path = "/dev/input/" + os.path.basename(ev[0])
    wait_for(lambda: os.path.exists(path), path)
    return fd, path


# A raw protocol client (proto.h, version 1), to send what a real frontend
# never would.
MAGIC, VERSION = 0x44574644, 1
OP_HELLO, OP_OPEN, OP_READ, OP_IOCTL = 1, 2, 4, 6


def hdr(op, rid, fh, length):
    return struct.pack("<IHHIIiIII", MAGIC, VERSION, op, rid, fh, 0, 0, length, 0)


def vsock_connect(cid, port):
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect((cid, port))
    return s


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise ConnectionResetError("stream closed")
        b += c
    return b


def call(s, op, rid, fh, payload):
    """Sends one request, returns (result, payload) of its reply."""
    s.sendall(hdr(op, rid, fh, len(payload)) + payload)
    h = struct.unpack("<IHHIIiIII", recv_exact(s, 32))
    if h[3] != rid:
        fail(f"reply id {h[3]} for request {rid}")
    return h[5], recv_exact(s, h[7]) if h[7] else b""


def raw_open(s, rid, path, flags=1):
    p = path.encode()
    return call(s, OP_OPEN, rid, 0, struct.pack("<IHH", flags, len(p), 0) + p)[0]
