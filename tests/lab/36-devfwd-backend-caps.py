#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# lab-seconds: 60
"""devfwd-backend with its unit's capabilities (contrib/systemd/
devfwd-backend.service.in, CapabilityBoundingSet=), applied as systemd
applies them to a root service (setpriv: that bounding set, no inheritable
or ambient capabilities, no_new_privs; the emulated host has no systemd).

 1. With the unit's set: /proc shows exactly that set; a worker takes
    every confinement step (the backend logs none it went without); a uinput keyboard
    (/dev/input/eventN, owned by root) is forwarded over
    vsock loopback to a CUSE device and a key event read through it; the
    UNIX socket is root:nogroup 0660 (--group nogroup).
 2. Each capability of the set dropped alone: CAP_CHOWN: the backend
    refuses to start, naming the socket and the group. CAP_SETUID,
    CAP_SETGID, CAP_SETPCAP, CAP_SYS_CHROOT, CAP_SYS_ADMIN are for the
    workers' confinement (switching user, emptying the bounding set, the
    empty root, unsharing namespaces):
    without one, the stream fails or the backend logs the confinement step
    the worker went without. A worker that served the stream without the
    capability and without a word (whatever its uid) would mean the unit
    grants one nothing needs: that fails.
 3. The forwarding again under strace: every system call the backend and
    its workers make is one the unit's SystemCallFilter= allows
    (tests/lab/lib/syscall_filter.py)."""
import os
import re
import select
import struct
import subprocess
import sys
import time

import devfwd_lab
from devfwd_lab import (TMP, Frontend, binary, fail, make_uinput_keyboard, modprobe, stop_process,
                        wait_for)

UNIT = "contrib/systemd/devfwd-backend.service.in"
PORT = 7036
GROUP, GROUP_GID = "nogroup", 65534
EV_KEY, KEY_A = 1, 30
WORKER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_SYS_CHROOT", "CAP_SYS_ADMIN")
CAP_BITS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_SETGID": 6, "CAP_SETUID": 7,
            "CAP_SETPCAP": 8, "CAP_NET_ADMIN": 12, "CAP_SYS_CHROOT": 18, "CAP_SYS_ADMIN": 21}
# What the backend logs when a worker's confinement lacks something
# (src/devfwd/confine.c): a refused stream, or a step it went without.
CONFINE_FAILED = ("could not be confined", "worker stays in the host's", "worker keeps the host's")
fails = 0


def ok(what):
    print("ok: " + what, flush=True)


def bad(what):
    global fails
    fails += 1
    print("FAIL: " + what, file=sys.stderr, flush=True)


def unit_caps():
    with open(UNIT) as f:
        m = re.search(r"^CapabilityBoundingSet=(.*)$", f.read(), re.M)
    if not m:
        fail(f"{UNIT} has no CapabilityBoundingSet=")
    return m.group(1).split()


def start(caps, sock, policy, name, wrap=()):
    """The backend under setpriv with caps as its bounding set (and under
    wrap, if given); returns (process, log path, ready)."""
    bset = ",".join(["-all"] + ["+" + c[4:].lower() for c in caps])
    log = os.path.join(TMP, f"devfwd-backend-{name}.log")
    rfd, wfd = os.pipe()
    with open(log, "w") as lf:
        p = subprocess.Popen(["setpriv", "--bounding-set", bset, "--inh-caps", "-all",
                              "--ambient-caps", "-all", "--no-new-privs", "--", *wrap,
                              binary("devfwd-backend"), "--policy", policy, "-v",
                              "--listen", f"vsock:{PORT}", "--listen", "unix:" + sock,
                              "--group", GROUP, "--ready-fd", str(wfd)],
                             pass_fds=(wfd,), stderr=lf)
    os.close(wfd)
    ready = os.read(rfd, 16) == b"READY\n"
    os.close(rfd)
    return p, log, ready


def text(path):
    with open(path) as f:
        return f.read()


def cap_set(pid, field):
    for line in text(f"/proc/{pid}/status").splitlines():
        if line.startswith(field + ":"):
            v = int(line.split()[1], 16)
            return sorted(n for n, b in CAP_BITS.items() if v >> b & 1) + \
                (["unknown bits"] if v & ~sum(1 << b for b in CAP_BITS.values()) else [])
    return None


def uid_of(pid):
    for line in text(f"/proc/{pid}/status").splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def press_and_read(ufd, fd, deadline_s=120):
    """Presses and releases A on the keyboard until the forwarded device
    shows a key event (an event sent before the worker opened the host
    device is not delivered; under strace and TCG that can take a while).
    Returns the first key code read, or None at the deadline."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for v in (1, 0):
            for t, c, val in ((EV_KEY, KEY_A, v), (0, 0, 0)):
                os.write(ufd, struct.pack("llHHi", 0, 0, t, c, val))
        if p.poll(2000):
            data = os.read(fd, 24 * 8)
            for i in range(0, len(data), 24):
                _, _, t, c, v = struct.unpack("llHHi", data[i:i + 24])
                if t == EV_KEY:
                    return c
    return None


def forward_once(ufd, host_path, name):
    """Forwards the keyboard through a frontend, presses A, reads it back.
    Returns (read back, the error if any)."""
    fe = Frontend(f"vsock:1:{PORT}", [(host_path, f"input/devfwd-{name}")], name=name)
    try:
        fd = os.open(f"/dev/input/devfwd-{name}", os.O_RDONLY)
        try:
            got = press_and_read(ufd, fd)
            return got == KEY_A, None if got == KEY_A else "no key event read back: %r" % (got,)
        finally:
            os.close(fd)
    except OSError as e:
        return False, str(e)
    finally:
        stop_process(fe.proc)


class FrontendDied(Exception):
    pass


def frontend_died(why):
    raise FrontendDied(why)


def confine_failures(log):
    """The backend's lines about confinement steps a worker went without."""
    return [l.strip() for l in text(log).splitlines() if any(w in l for w in CONFINE_FAILED)]


def worker_uids(backend_pid):
    kids = subprocess.run(["pgrep", "-P", str(backend_pid)], capture_output=True, text=True).stdout.split()
    return sorted({uid_of(int(k)) for k in kids})


def main():
    for tool in ("setpriv", "pgrep", "strace", "systemd-analyze"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            fail(f"{tool} missing")
    modprobe("cuse", "evdev", "uinput", "vsock_loopback")
    caps = unit_caps()
    ok(f"the unit's bounding set: {' '.join(caps)}")
    unknown = [c for c in caps if c not in CAP_BITS]
    if unknown:
        fail(f"this scenario does not know {unknown}: add their bits and a check")
    ufd, host_path = make_uinput_keyboard(b"devfwd-caps-kbd", (KEY_A,))
    policy = os.path.join(TMP, "devfwd-caps.conf")
    with open(policy, "w") as f:
        f.write(f"[guest cid=1]\nallow-path = {host_path}\nallow-ioctl = E:*\n")
    sock = os.path.join(TMP, "devfwd-caps.sock")

    # 1. the unit's set
    p, log, ready = start(caps, sock, policy, "caps")
    if not ready:
        fail(f"devfwd-backend with {caps} did not start: {text(log)}")
    try:
        eff, bnd = cap_set(p.pid, "CapEff"), cap_set(p.pid, "CapBnd")
        if eff == bnd == sorted(caps):
            ok(f"effective and bounding sets: {','.join(eff)}")
        else:
            bad(f"capabilities: effective {eff}, bounding {bnd}, want {sorted(caps)}")
        if "NoNewPrivs:\t1" in text(f"/proc/{p.pid}/status"):
            ok("no_new_privs set")
        else:
            bad("no_new_privs not set")
        st = os.stat(sock)
        if (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, GROUP_GID, 0o660):
            ok(f"UNIX socket root:{GROUP} 0660")
        else:
            bad(f"UNIX socket uid {st.st_uid} gid {st.st_gid} mode {st.st_mode & 0o7777:o}")
        good, why = forward_once(ufd, host_path, "caps")
        if good:
            ok(f"{host_path} forwarded, a key press read through /dev/input/devfwd-caps")
        else:
            bad(f"forwarding with the unit's set failed ({why}): {text(log)[-2000:]}")
        # The unit's set must let a worker take every confinement step.
        said = confine_failures(log)
        if said:
            bad("with the unit's set a worker went without a confinement step: " + " | ".join(said))
        else:
            ok("no confinement step missing in the backend's log")
    finally:
        stop_process(p)

    # 2. each capability dropped
    for cap in caps:
        rest = [c for c in caps if c != cap]
        p, log, ready = start(rest, sock, policy, "no-" + cap[4:].lower())
        try:
            if cap == "CAP_CHOWN":
                said = text(log)
                if not ready and f"cannot give it to group {GROUP}" in said and p.wait(10) != 0:
                    ok(f"without CAP_CHOWN: refuses to start: {said.strip().splitlines()[-1]}")
                else:
                    bad(f"without CAP_CHOWN: ready={ready}: {said}")
                continue
            if not ready:
                ok(f"without {cap}: does not start: {text(log).strip()}")
                continue
            if cap not in WORKER_CAPS:
                bad(f"{cap} is in the unit's set but nothing here shows what needs it")
                continue
            fe_ok, why, uids = None, None, []
            # Frontend() fails the scenario when the frontend dies first:
            # here that is the refused stream this step looks for.
            lab_fail = devfwd_lab.fail
            devfwd_lab.fail = frontend_died
            try:
                fe = Frontend(f"vsock:1:{PORT}", [(host_path, "input/devfwd-w")], name="w-" + cap[4:].lower())
            except FrontendDied as e:
                fe, fe_ok, why = None, False, str(e)
            finally:
                devfwd_lab.fail = lab_fail
            if fe:
                try:
                    uids = wait_for(lambda: worker_uids(p.pid) or None, "a worker")
                    try:
                        fd = os.open("/dev/input/devfwd-w", os.O_RDONLY)
                        os.close(fd)
                        fe_ok = True
                    except OSError as e:
                        fe_ok, why = False, str(e)
                finally:
                    stop_process(fe.proc)
            said = confine_failures(log)
            said.sort(key=lambda l: "could not be confined" not in l)   # the refusal first
            if not fe_ok or said:
                ok(f"without {cap}: " + (f"the stream fails ({why}); " if not fe_ok else "") +
                   (said[0] if said else text(log).strip().splitlines()[-1]))
            else:
                bad(f"without {cap}: a worker of uid {uids} served the stream: the unit grants {cap} "
                    f"and nothing needs it")
        finally:
            stop_process(p)
    # 3. the system calls of a forwarding, against the unit's filter
    trace = os.path.join(TMP, "devfwd-caps.strace")
    p, log, ready = start(caps, sock, policy, "traced", wrap=("strace", "-f", "-c", "-o", trace))
    if not ready:
        fail(f"devfwd-backend under strace did not start: {text(log)}")
    try:
        good, why = forward_once(ufd, host_path, "traced")
        if not good:
            bad(f"forwarding under strace failed ({why})")
    finally:
        # strace's child is the backend: stop it, strace then writes its summary.
        kids = subprocess.run(["pgrep", "-P", str(p.pid), "-x", "devfwd-backend"], capture_output=True,
                              text=True).stdout.split()
        for k in kids:
            os.kill(int(k), 15)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            stop_process(p)
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib",
                                                     "syscall_filter.py"), UNIT, trace],
                       capture_output=True, text=True)
    if r.returncode == 0:
        ok("the unit's system call filter: " + r.stdout.strip())
    else:
        bad("the unit's system call filter: " + (r.stdout + r.stderr).strip())
    os.close(ufd)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
