#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Who can reach iovmd's and devfwd-backend's sockets and iovmd's files.

iovmd on the fixture sysfs tree (tests/unit/fixtures/make-sysfs.sh), and
devfwd-backend, each started under umask 0 (the worst a caller can give
them), with a group for their socket. Checked: the modes and owners of the
API socket, the runtime directory iovmd creates, the state directory, the
database and its -wal and -shm files, and of the backend's UNIX socket; a
member of the socket's group connects; a uid outside it (4242, in no
group) is refused at connect() with EACCES; a database left world-readable
is tightened at start, its -wal and -shm following it.

Needs root (clients run as other uids); skips otherwise.

usage: test-access.py IOVMD DEVFWD-BACKEND MAKE-SYSFS.SH
"""
import errno
import grp
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

from iovmtest import DEADLINE_S, IO_TIMEOUT_S, Cases, Daemon, check, run_cases, write

BACKEND = None
GROUP_GID = 65534                  # nogroup on Debian: nobody's primary group
MEMBER = (65534, 65534)            # uid, gid
STRANGER = (4242, 4242)            # no passwd entry, no group


def group_name():
    return grp.getgrgid(GROUP_GID).gr_name


def owner_mode(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def expect(path, uid, gid, mode, kind=None):
    got = owner_mode(path)
    check(got == (uid, gid, mode), "%s: uid %d gid %d mode %04o, want uid %d gid %d mode %04o"
          % ((path,) + got + (uid, gid, mode)))
    if kind:
        check(kind(os.lstat(path).st_mode), "%s is not a %s" % (path, kind.__name__[2:].lower()))


def connect_as(ids, path, say=None):
    """Connects to path as uid/gid ids (no supplementary groups) in a forked
    child. Returns ("ok", first line received) or ("errno", errno name)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(ids[1])
            os.setuid(ids[0])
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(IO_TIMEOUT_S)
            try:
                s.connect(path)
            except OSError as e:
                os.write(wfd, json.dumps(["errno", errno.errorcode.get(e.errno, str(e.errno))]).encode())
                os._exit(0)
            line = b""
            if say is None:
                while not line.endswith(b"\n"):
                    x = s.recv(4096)
                    if not x:
                        break
                    line += x
            else:
                s.sendall(say)
            os.write(wfd, json.dumps(["ok", line.decode(errors="replace")]).encode())
            os._exit(0)
        except BaseException as e:
            os.write(wfd, json.dumps(["child", repr(e)]).encode())
            os._exit(1)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        out = f.read()
    os.waitpid(pid, 0)
    return tuple(json.loads(out.decode()))


class Umask0Daemon(Daemon):
    """iovmd with its socket and state in directories it must create
    itself, started under umask 0, with a socket group."""

    def __init__(self):
        super().__init__()
        os.chmod(self.tmp, 0o755)     # others may walk to the socket
        os.mkdir(os.path.join(self.tmp, "run"), 0o755)   # stands for /run
        self.rundir = os.path.join(self.tmp, "run", "iovm")
        self.statedir = os.path.join(self.tmp, "lib", "iovm")
        self.sock = os.path.join(self.rundir, "iovm.sock")
        self.state = os.path.join(self.statedir, "iovm.db")
        self.extra += ["--group", group_name(), "--socket-mode", "0660"]

    umask = 0

    def start(self, argv=None, wait=True):
        old = os.umask(self.umask)
        try:
            return super().start(argv, wait)
        finally:
            os.umask(old)


case = Cases()


@case
def iovmd_socket_dirs_and_database(d):
    expect(d.rundir, 0, 0, 0o755, stat.S_ISDIR)
    expect(d.sock, 0, GROUP_GID, 0o660, stat.S_ISSOCK)
    expect(d.statedir, 0, 0, 0o750, stat.S_ISDIR)
    d.client().ret("vm-add", {"name": "g1", "qmp": os.path.join(d.tmp, "q.sock")})
    for f in ("", "-wal", "-shm"):
        expect(d.state + f, 0, 0, 0o640, stat.S_ISREG)
    check(not any(n.startswith("iovm.db") and n not in ("iovm.db", "iovm.db-wal", "iovm.db-shm")
                  for n in os.listdir(d.statedir)),
          "unexpected files beside the database: %r" % os.listdir(d.statedir))


@case
def iovmd_member_served_stranger_refused(d):
    r = connect_as(MEMBER, d.sock)
    check(r[0] == "ok" and '"iovm"' in r[1], "member of %s: %r" % (group_name(), r))
    r = connect_as(STRANGER, d.sock)
    check(r == ("errno", "EACCES"), "uid %d (in no group): %r, want EACCES" % (STRANGER[0], r))


@case
def iovmd_tightens_a_loose_database(d):
    d.stop()
    for f in ("", "-wal", "-shm"):
        check(not os.path.exists(d.state + f) or f == "", "%s left after a clean stop" % (d.state + f))
    os.chmod(d.state, 0o666)
    d.start()
    d.client().ret("vm-add", {"name": "g2", "qmp": os.path.join(d.tmp, "q.sock")})
    for f in ("", "-wal", "-shm"):
        expect(d.state + f, 0, 0, 0o640, stat.S_ISREG)


@case
def iovmd_under_the_units_umask(d):
    """The unit's UMask=0077 must not shut the group out of a runtime
    directory iovmd makes, nor widen anything."""
    d.stop()
    for f in (d.sock, d.state + "-wal", d.state + "-shm"):
        check(not os.path.exists(f), "%s left after a clean stop" % f)
    os.rmdir(d.rundir)
    d.umask = 0o077
    d.start()
    expect(d.rundir, 0, 0, 0o755, stat.S_ISDIR)
    expect(d.sock, 0, GROUP_GID, 0o660, stat.S_ISSOCK)
    d.client().ret("vm-add", {"name": "g3", "qmp": os.path.join(d.tmp, "q.sock")})
    for f in ("", "-wal", "-shm"):
        expect(d.state + f, 0, 0, 0o640, stat.S_ISREG)
    r = connect_as(MEMBER, d.sock)
    check(r[0] == "ok" and '"iovm"' in r[1], "member of %s under umask 077: %r" % (group_name(), r))


class Backend:
    """devfwd-backend on a UNIX socket in a directory like its unit's
    RuntimeDirectory=, started under umask 0 with the given options."""

    def __init__(self, *opts):
        self.tmp = tempfile.mkdtemp(prefix="devfwd-test-")
        os.chmod(self.tmp, 0o755)
        self.sock = os.path.join(self.tmp, "backend.sock")
        policy = write(os.path.join(self.tmp, "policy.conf"),
                       "[guest uid=%d]\nallow-path = /dev/null\n" % MEMBER[0])
        rfd, wfd = os.pipe()
        self.log_path = os.path.join(self.tmp, "backend.log")
        old = os.umask(0)
        try:
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [BACKEND, "--policy", policy, "--listen", "unix:" + self.sock,
                     "--ready-fd", str(wfd)] + list(opts),
                    stdout=log, stderr=subprocess.STDOUT, pass_fds=(wfd,))
        finally:
            os.umask(old)
        os.close(wfd)
        with os.fdopen(rfd, "rb") as f:
            ready = f.read()
        check(ready == b"READY\n", "devfwd-backend did not get ready: %r\n%s" % (ready, self.log()))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(DEADLINE_S)
        shutil.rmtree(self.tmp, ignore_errors=True)


backend_cases = Cases()


@backend_cases
def backend_socket_for_its_group():
    b = Backend("--group", group_name())
    try:
        expect(b.sock, 0, GROUP_GID, 0o660, stat.S_ISSOCK)
        r = connect_as(MEMBER, b.sock, say=b"")
        check(r[0] == "ok", "member of %s: %r\n%s" % (group_name(), r, b.log()))
        r = connect_as(STRANGER, b.sock, say=b"")
        check(r == ("errno", "EACCES"), "uid %d (in no group): %r, want EACCES" % (STRANGER[0], r))
    finally:
        b.stop()


@backend_cases
def backend_socket_default_is_root_only():
    b = Backend()
    try:
        expect(b.sock, 0, 0, 0o660, stat.S_ISSOCK)
        r = connect_as(MEMBER, b.sock, say=b"")
        check(r == ("errno", "EACCES"), "uid %d without --group: %r, want EACCES" % (MEMBER[0], r))
    finally:
        b.stop()


@backend_cases
def backend_refuses_a_bad_mode_or_group():
    tmp = tempfile.mkdtemp(prefix="devfwd-test-")
    try:
        policy = write(os.path.join(tmp, "policy.conf"), "")
        sock = os.path.join(tmp, "backend.sock")
        for opts, words in ((["--socket-mode", "0888"], "--socket-mode 0888: not an octal mode"),
                            (["--group", "no-such-group-iovm"], "group no-such-group-iovm does not exist")):
            p = subprocess.run([BACKEND, "--policy", policy, "--listen", "unix:" + sock] + opts,
                               capture_output=True, text=True, timeout=DEADLINE_S)
            check(p.returncode != 0 and words in p.stderr,
                  "%r: exit %d %r" % (opts, p.returncode, p.stderr))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    global BACKEND
    if len(sys.argv) < 4:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    iovmd, BACKEND, make_sysfs = (os.path.abspath(a) for a in sys.argv[1:4])
    Daemon.iovmd, Daemon.make_sysfs = iovmd, make_sysfs
    if os.geteuid() != 0:
        print("1..0 # SKIP access tests need root (clients run as uid %d and %d)"
              % (MEMBER[0], STRANGER[0]))
        return 77
    only = sys.argv[4:]
    rc = run_cases(case, only, fixture=Umask0Daemon)
    return run_cases(backend_cases, only) or rc


if __name__ == "__main__":
    sys.exit(main())
