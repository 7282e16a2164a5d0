# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared setup for the devfwd lab scenarios (tests/lab/7*-devfwd-*.py, the
benchmark 75-devfwd-bench.py among them): load modules, start devfwd-backend
with a policy and devfwd-frontend for some devices, wait for conditions with
deadlines. The scenarios import it through PYTHONPATH, which
tests/lab/run-inside sets."""
import fcntl
import glob
import os
import re
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


# A raw protocol client (proto.h, version 2), to send what a real frontend
# never would.
MAGIC, VERSION = 0x44574644, 2
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


REPLY = 0x1  # DEVFWD_F_REPLY


def reply_hdr(op, rid, fh=0, result=0, length=0, magic=MAGIC, flags=REPLY):
    return struct.pack("<IHHIIiIII", magic, VERSION, op, rid, fh, result, flags, length, 0)


class FakeBackend:
    """A vsock listener that plays a misbehaving backend: it serves one
    stream per mode, in order, calling answer(conn, mode, op, id, payload)
    for each request; answer returns False to end the stream. seen lists
    the modes served."""

    def __init__(self, port, modes):
        self.modes, self.seen, self.errors = list(modes), [], []
        self.srv = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        self.srv.bind((socket.VMADDR_CID_ANY, port))
        self.srv.listen(4)
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        for mode in self.modes:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.seen.append(mode)
            try:
                self.serve(conn, mode)
            except (OSError, ConnectionResetError) as e:
                self.errors.append(f"{mode}: {e}")
            finally:
                conn.close()

    def serve(self, c, mode):
        c.settimeout(120)
        while True:
            try:
                h = struct.unpack("<IHHIIiIII", recv_exact(c, 32))
            except (ConnectionResetError, socket.timeout, OSError):
                return
            op, rid, length = h[2], h[3], h[7]
            payload = recv_exact(c, length) if length else b""
            if self.answer(c, mode, op, rid, payload) is False:
                return

    def answer(self, c, mode, op, rid, payload):
        raise NotImplementedError

    def close(self):
        self.srv.close()


# ---- guests of the emulated host (lab/guest) and ALSA's loopback card

LAB_GUEST = os.path.join(os.getcwd(), "lab/guest")


def lab_guest(*args, timeout=300, check=True):
    """lab/guest ARGS...; a non-zero status fails the scenario when check."""
    r = subprocess.run([LAB_GUEST, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        fail(f"lab/guest {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()} {r.stdout.strip()}")
    return r


def guest_sh(name, cmd, timeout=120, check=True):
    """A shell command in guest name, through its agent."""
    return lab_guest("exec", "--timeout", str(timeout), name, "--", "sh", "-c", cmd, timeout=timeout + 30,
                     check=check)


KO = os.path.join(os.getcwd(), "kmod/devfwd/devfwd.ko")


def kmod_tools():
    """What a guest of the kernel frontend needs (skips when not built):
    the probe, the static frontend; devfwd.ko must be built for the lab's
    kernel."""
    probe = os.path.join(BUILD, "src/devfwd/devfwd-kmod-probe")
    frontend = os.path.join(BUILD, "src/devfwd/devfwd-frontend-static")
    for p in (probe, frontend):
        if not os.access(p, os.X_OK):
            skip(f"{p} not built")
    if not os.access(KO, os.R_OK):
        skip(f"{KO} not built (scripts/run-tests builds it when the lab kernel's headers are installed)")
    if not os.access(LAB_GUEST, os.X_OK):
        skip("lab/guest is missing")
    vermagic = subprocess.run(["modinfo", "-F", "vermagic", KO], capture_output=True, text=True).stdout.split()
    if not vermagic or vermagic[0] != os.uname().release:
        fail(f"{KO} is built for {vermagic[:1]}, the lab's guests run {os.uname().release}")
    return probe, frontend


def kmod_guest(name, cid, probe, frontend):
    """Starts guest name with vsock CID cid, pushes devfwd.ko, the probe
    (/tmp/probe) and the frontend (/tmp/devfwd-frontend) into it and loads
    the module."""
    t0 = time.monotonic()
    lab_guest("start", name, "--cid", str(cid), timeout=1200)
    print(f"guest up in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    ko = os.path.join(TMP, "devfwd.ko")  # without debug info: a third of the bytes to push
    subprocess.run(["strip", "--strip-debug", "-o", ko, KO], check=True)
    for src, dst in ((ko, "/tmp/devfwd.ko"), (probe, "/tmp/probe"), (frontend, "/tmp/devfwd-frontend")):
        lab_guest("push", name, src, dst, "--mode", "755", timeout=600)
    r = guest_sh(name, "modprobe vmw_vsock_virtio_transport 2>/dev/null; insmod /tmp/devfwd.ko && "
                 "test -c /dev/devfwd-ctl", check=False)
    if r.returncode:
        fail(f"insmod devfwd.ko in the guest failed: {r.stdout} {r.stderr}")


def guest_dmesg_clean(name):
    """Guest name's kernel log, failing the scenario on an oops or warning."""
    dmesg = guest_sh(name, "dmesg").stdout
    bad = [l for l in dmesg.splitlines() if any(w in l for w in ("BUG", "Oops", "WARNING", "Call Trace",
                                                                 "general protection"))]
    if bad:
        fail("the guest kernel logged:\n" + "\n".join(bad))
    return dmesg


def add_window(name, path, size):
    """Hot-adds guest name's shared window over QMP (a memory-backend-file
    on path, share=on, and an ivshmem-plain on it on root port hp1) and
    waits for its devfwd.ko to bind it (docs/devfwd.md, "mmap")."""
    lab_guest("qmp", name, "object-add", f'{{"qom-type":"memory-backend-file","id":"dfwin","mem-path":"{path}",'
              f'"size":{size},"share":true}}')
    lab_guest("qmp", name, "device_add", '{"driver":"ivshmem-plain","memdev":"dfwin","id":"dfwin0","bus":"hp1"}')
    wait_for(lambda: f"shared window of {size // 1024} KiB" in guest_sh(name, "dmesg | grep devfwd",
                                                                          check=False).stdout,
             "the guest's devfwd.ko to bind the hot-added ivshmem device", timeout=300, interval=3)


def push_alsa(name):
    """aplay into guest name (/tmp/aplay), the libraries it needs that the
    guest lacks (/tmp/alib, for LD_LIBRARY_PATH) and alsa-lib's
    configuration."""
    guest_sh(name, "mkdir -p /tmp/alib /usr/share/alsa")
    lab_guest("push", name, "/usr/bin/aplay", "/tmp/aplay", "--mode", "755", timeout=600)
    libs = subprocess.run(["ldd", "/usr/bin/aplay"], capture_output=True, text=True, check=True).stdout
    paths = re.findall(r"=> (/\S+)", libs)
    # the guest's agent brought its C library along; push only what is missing
    have = guest_sh(name, " ".join(f"test -e {p} && echo {p};" for p in paths), check=False).stdout.split()
    for path in paths:
        if path not in have:
            lab_guest("push", name, path, f"/tmp/alib/{os.path.basename(path)}", "--mode", "644", timeout=600)
    lab_guest("push", name, "/usr/share/alsa/alsa.conf", "/usr/share/alsa/alsa.conf", "--mode", "644")


def loopback_card():
    """The card number of snd-aloop's Loopback card."""
    with open("/proc/asound/cards") as f:
        for line in f:
            m = re.match(r"\s*(\d+)\s+\[Loopback", line)
            if m:
                return int(m.group(1))
    fail("snd-aloop loaded but no Loopback card in /proc/asound/cards")


def wav(path, pcm, rate=48000, channels=2):
    """A 16-bit PCM WAV file of the samples pcm."""
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16))
        f.write(b"data" + struct.pack("<I", len(pcm)) + pcm)


def capture_running(card):
    """True once the loopback's capture side (device 1) is running."""
    try:
        with open(f"/proc/asound/card{card}/pcm1c/sub0/status") as f:
            return "RUNNING" in f.read()
    except OSError:
        return False


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
