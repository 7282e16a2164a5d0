# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared setup for the devfwd lab scenarios (tests/lab/7*-devfwd-*.py) and
the devfwd benchmark: load modules, start devfwd-backend with a policy and
devfwd-frontend for some devices, wait for conditions with deadlines."""
import os
import signal
import subprocess
import sys
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


class Backend:
    def __init__(self, policy, listen, name="backend"):
        self.policy = os.path.join(TMP, f"devfwd-{name}.conf")
        self.logpath = os.path.join(TMP, f"devfwd-backend-{name}.log")
        with open(self.policy, "w") as f:
            f.write(policy)
        rfd, wfd = os.pipe()
        args = [binary("devfwd-backend"), "--policy", self.policy, "--ready-fd", str(wfd), "-v"]
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

    def log(self):
        with open(self.logpath) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.log_file.close()


class Frontend:
    def __init__(self, addr, devices, name="frontend"):
        """devices: list of (host_path, guest_name) pairs; waits for every
        /dev/guest_name to appear."""
        self.logpath = os.path.join(TMP, f"devfwd-frontend-{name}.log")
        args = [binary("devfwd-frontend"), "--connect", addr]
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

    def log(self):
        with open(self.logpath) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


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
