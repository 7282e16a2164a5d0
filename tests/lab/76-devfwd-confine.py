#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# lab-seconds: 90
"""devfwd worker confinement on the real kernel, with a subverted worker.

One guest (vsock loopback, CID 1) owns workers whose code an attacker has
taken over: the test-only hook (built with -Dtest-hooks=true, armed by
IOVM_DEVFWD_TEST_HOOKS=1) makes a confined worker open /etc/shadow and
/dev/mem, execve a shell, connect an AF_INET socket, ptrace another guest's
worker, setuid(0), pass a descriptor over its stream, and issue an ioctl
outside its policy on a file it was allowed to open. With the seccomp filter every one fails: the worker is
killed (SIGSYS) or, for the ioctl, gets EPERM and goes on serving. A second
backend without the filter shows what the other steps hold on their own
(another user, no capabilities, empty namespaces), and that the ioctl is
stopped by the filter alone. Throughout, another guest (UNIX uid 0, through
a CUSE frontend) keeps reading and issuing its own ioctls, and the backend
logs every attempt."""
import errno
import fcntl
import os
import re
import struct

from devfwd_lab import (IOC, IOR, OP_READ, TMP, Backend, Frontend, ZeroReader, call, fail, make_uinput_keyboard,
                        modprobe, raw_open, vsock_connect, wait_for)

PORT, PORT_NOFILTER = 7076, 7077
EVIOCGVERSION = IOR("E", 0x01, 4)
EVIOCGNAME = IOC(2, "E", 0x06, 64)
SUBVERT = "/.devfwd-subvert/"
SUCCEEDED = -errno.ENOTRECOVERABLE  # the hook's answer when an attack went through
KILLING = ("shadow", "mem", "exec", "inet", "ptrace", "setuid", "passfd")
LAYERED = KILLING[:-1]  # passfd over vsock means nothing without the filter


def start_backend(name, port, policy, sock, extra_env):
    os.environ.update(extra_env)
    try:
        b = Backend(policy, [f"vsock:{port}", f"unix:{sock}"], name=name)
    finally:
        for k in extra_env:
            del os.environ[k]
    if "test hooks enabled" not in b.log():
        b.stop()
        fail(f"devfwd-backend has no test hooks (configure the build with -Dtest-hooks=true):\n{b.log()}")
    return b


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ":\t" in ln)


def last_worker(backend, what):
    """The pid of the worker whose log line matches the regex what (the latest)."""
    pids = re.findall(r"devfwd-backend\[(\d+)\]:[^\n]*" + what, backend.log())
    if not pids:
        fail(f"no worker logged {what!r}:\n{backend.log()}")
    return int(pids[-1])


def check_confined(pid, seccomp):
    st = status(pid)
    uids, gids = st["Uid"].split(), st["Gid"].split()
    if len(set(uids)) != 1 or uids[0] == "0" or len(set(gids)) != 1 or gids[0] == "0":
        fail(f"worker {pid} runs as uid {uids} gid {gids}")
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(st[cap], 16) != 0:
            fail(f"worker {pid} has {cap} {st[cap]}")
    if st["NoNewPrivs"].strip() != "1":
        fail(f"worker {pid}: NoNewPrivs {st['NoNewPrivs']}")
    want = ("2", "2") if seccomp else ("0", "0")
    if (st["Seccomp"].strip(), st["Seccomp_filters"].strip()) != want:
        fail(f"worker {pid}: Seccomp {st['Seccomp']} with {st['Seccomp_filters']} filters, expected {want}")
    for ns in ("mnt", "net", "ipc"):
        if os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}"):
            fail(f"worker {pid} shares the host's {ns} namespace")
    if os.listdir(f"/proc/{pid}/root"):
        fail(f"worker {pid}'s root is not empty: {os.listdir(f'/proc/{pid}/root')}")
    return uids[0]


def main():
    modprobe("cuse", "evdev", "uinput", "vsock_loopback")
    ufd, ev = make_uinput_keyboard(b"devfwd-confine-kbd")
    policy = (f"[guest cid=1]\nallow-path = /dev/zero\nallow-path = {ev}\nallow-ioctl = {EVIOCGVERSION:#x}\n"
              f"[guest uid=0]\nallow-path = /dev/zero\nallow-path = {ev}\nallow-ioctl = E:*\n")
    backend = start_backend("confine", PORT, policy, os.path.join(TMP, "devfwd-confine.sock"),
                            {"IOVM_DEVFWD_TEST_HOOKS": "1"})
    nofilter = start_backend("nofilter", PORT_NOFILTER, policy, os.path.join(TMP, "devfwd-nofilter.sock"),
                             {"IOVM_DEVFWD_TEST_HOOKS": "1", "IOVM_DEVFWD_TEST_NO_SECCOMP": "1"})
    # The other guest: a CUSE frontend over UNIX (policy uid 0).
    frontend = Frontend(f"unix:{os.path.join(TMP, 'devfwd-confine.sock')}",
                        [("/dev/zero", "devfwd-cz"), (ev, "input/devfwd-cz")], name="confine")
    def other_guest_ok(after):
        reader.wait_more(f"the other guest's reads to go on after {after}")
        fd = os.open("/dev/input/devfwd-cz", os.O_RDONLY)
        try:
            name = fcntl.ioctl(fd, EVIOCGNAME, bytes(64)).split(b"\0")[0]
        finally:
            os.close(fd)
        if name != b"devfwd-confine-kbd":
            fail(f"the other guest's EVIOCGNAME gave {name!r} after {after}")

    reader = ZeroReader("/dev/devfwd-cz")
    try:
        reader.wait_first("the other guest's first read")
        victim = last_worker(backend, r"unix uid 0 pid \d+: opened /dev/zero")
        # Confinement as the kernel reports it, on a worker that has served.
        s = vsock_connect(1, PORT)
        if raw_open(s, 1, "/dev/zero") <= 0:
            fail("an allowed open failed on a confined worker")
        if call(s, OP_READ, 2, 1, struct.pack("<QII", 0, 8, 0)) != (8, bytes(8)):
            fail("a confined worker did not read /dev/zero")
        worker = last_worker(backend, "vsock cid 1: opened /dev/zero")
        uid = check_confined(worker, seccomp=True)
        print(f"worker {worker}: uid {uid}, no capabilities, no_new_privs, 2 seccomp filters, "
              f"own mount/net/ipc namespaces, empty root")

        # With the filter: each attempt kills its worker.
        for attack in KILLING:
            arg = f":{victim}" if attack == "ptrace" else ""
            a = vsock_connect(1, PORT)
            try:
                r = raw_open(a, 1, SUBVERT + attack + arg)
                fail(f"subverted worker survived {attack}: answered {r}")
            except (ConnectionResetError, BrokenPipeError):
                pass
            a.close()
            pid = last_worker(backend, f"test hook: subverted worker tries {attack}")
            wait_for(lambda: f"worker {pid} killed by signal 31 (SIGSYS" in backend.log(),
                     f"the backend to log worker {pid} killed by the filter ({attack})", 20)
            if f"test hook: {attack} " in backend.log():
                fail(f"worker {pid} returned from {attack} instead of being killed")
            os.kill(victim, 0)  # the ptraced worker lives on
            other_guest_ok(attack)
            print(f"{attack}: worker {pid} killed by the seccomp filter (SIGSYS)")

        # An ioctl outside the policy on an allowed file: EPERM, and the worker goes on.
        r = raw_open(s, 3, f"{SUBVERT}ioctl:{EVIOCGNAME:#x}:{ev}")
        if r != -errno.EPERM:
            fail(f"an ioctl outside the policy, past the worker's own check, gave {r}, expected -EPERM")
        if call(s, OP_READ, 4, 1, struct.pack("<QII", 0, 8, 0)) != (8, bytes(8)):
            fail("the worker stopped serving after its ioctl was refused")
        other_guest_ok("the ioctl")
        print("ioctl outside the policy: EPERM from the filter; the worker goes on serving")
        s.close()

        # Without the filter: what the other steps hold on their own.
        n = vsock_connect(1, PORT_NOFILTER)
        if raw_open(n, 1, "/dev/zero") <= 0:
            fail("an allowed open failed on the unfiltered worker")
        npid = last_worker(nofilter, "vsock cid 1: opened /dev/zero")
        check_confined(npid, seccomp=False)
        expect = {
            "shadow": {errno.ENOENT},           # empty root
            "mem": {errno.ENOENT},
            "exec": {errno.ENOENT},
            "inet": {errno.ENETUNREACH},        # empty network namespace
            "ptrace": {errno.EPERM},            # not dumpable, no CAP_SYS_PTRACE
            "setuid": {errno.EPERM},            # no CAP_SETUID
        }
        for rid, attack in enumerate(LAYERED, 2):
            arg = f":{victim}" if attack == "ptrace" else ""
            r = raw_open(n, rid, SUBVERT + attack + arg)
            if r >= 0 or -r not in expect[attack]:
                fail(f"without the filter, {attack} gave {r}, expected one of "
                     f"{[errno.errorcode[e] for e in expect[attack]]}")
            print(f"{attack} without the filter: {errno.errorcode[-r]}")
        r = raw_open(n, 20, f"{SUBVERT}ioctl:{EVIOCGNAME:#x}:{ev}")
        if r != SUCCEEDED:
            fail(f"without the filter the out-of-policy ioctl gave {r}: the control does not show the filter's part")
        print("ioctl outside the policy without the filter: goes through (only the filter stops it)")
        n.close()
        other_guest_ok("the unfiltered attacks")
        for needle in ("test hook: shadow refused", "test hook: ptrace refused", "test hook: ioctl SUCCEEDED"):
            if needle not in nofilter.log():
                fail(f"the unfiltered backend's log lacks {needle!r}:\n{nofilter.log()}")
        if "test hook: ioctl refused: Operation not permitted" not in backend.log():
            fail(f"the backend did not log the refused ioctl:\n{backend.log()}")
    finally:
        reader.stop()
        frontend.stop()
        backend.stop()
        nofilter.stop()
        os.close(ufd)
    reader.check("the other guest, at the end")
    print(f"PASS: every attempt of a subverted worker failed; the other guest did {reader.reads} reads throughout")


if __name__ == "__main__":
    main()
