# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the iovmd and iovmctl suites (tests/daemon, tests/cli) have in common:
checks that raise Failure, waits with deadlines, the case runner and its
report, the API's line protocol from both ends (Client talks to an iovmd,
FakeIovmd stands in for one), an iovmd on a fixture sysfs tree (Daemon) and
running iovmctl.

Found through PYTHONPATH (tests/pylib), which meson's test() sets; standard
library only.

The runner prints one line per case, "ok   NAME" or "FAIL NAME: WHY", and
closes with "N passed, N failed"; its return value is the exit status.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

DEADLINE_S = 20.0          # bounds a wait for something that should happen
IO_TIMEOUT_S = 20.0        # bounds a blocking socket read
GREETING = {"iovm": {"version": "0.1.0", "api": 1}}


# ---- checks -----------------------------------------------------------------

class Failure(Exception):
    """A check that did not hold; the runner reports its text."""


def check(cond, what):
    if not cond:
        raise Failure(what)


def eq(got, want, what):
    if got != want:
        raise Failure("%s: got %r, want %r" % (what, got, want))


def check_type(value, typ, what):
    # bool is an int in Python: check it exactly
    if type(value) is not typ:
        raise Failure("%s: %r is a %s, want %s" % (what, value, type(value).__name__, typ.__name__))


def wait_for(pred, what, deadline_s=DEADLINE_S):
    """Polls pred() until it returns a true value, which it returns; fails
    after the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise Failure("timed out waiting for " + what)
        time.sleep(0.02)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


# ---- the runner -------------------------------------------------------------

class Cases(list):
    """The cases of a suite in their order; use an instance as a decorator."""

    def __call__(self, fn):
        self.append(fn)
        return fn


def run_cases(cases, only=(), fixture=None):
    """Runs every case (or those named in only), each with a fresh fixture()
    if one is given: the case gets fixture().begin() as its argument,
    .end() runs after it (its last check), .report() after a failure,
    .cleanup() in any case. Returns the exit status."""
    passed = failed = 0
    for fn in cases:
        if only and fn.__name__ not in only:
            continue
        fx = fixture() if fixture else None
        try:
            if fx is None:
                fn()
            else:
                fn(fx.begin())
                fx.end()
            passed += 1
            print("ok   %s" % fn.__name__, flush=True)
        except Exception as e:
            failed += 1
            if isinstance(e, Failure):
                print("FAIL %s: %s" % (fn.__name__, e), flush=True)
            else:
                print("FAIL %s: exception %s: %s" % (fn.__name__, type(e).__name__, e), flush=True)
                traceback.print_exc(file=sys.stdout)
                sys.stdout.flush()
            if fx is not None:
                fx.report()
        finally:
            if fx is not None:
                fx.cleanup()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


# ---- the line protocol --------------------------------------------------------

def send_json(sock, obj):
    """One message: its JSON and a newline."""
    sock.sendall((json.dumps(obj) + "\n").encode())


class Client:
    """One connection to an iovmd; reads the greeting unless told not to."""

    def __init__(self, path, greet=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(IO_TIMEOUT_S)
        try:
            self.s.connect(path)
        except OSError:
            self.s.close()
            raise
        self.buf = b""
        self.greeting = self.read_json() if greet else None
        self.next_id = 1

    def close(self):
        self.s.close()

    def send_raw(self, data):
        self.s.sendall(data)

    def read_line(self):
        """One line (without the newline), or None at EOF."""
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def read_json(self):
        line = self.read_line()
        check(line is not None, "connection closed; expected a line")
        try:
            return json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise Failure("reply is not UTF-8 JSON (%s): %r" % (e, line[:200]))

    def read_reply(self):
        """The next reply, skipping events."""
        while True:
            m = self.read_json()
            if "event" not in m:
                return m

    def request(self, cmd, args=None, rid=None):
        if rid is None:
            rid = self.next_id
            self.next_id += 1
        msg = {"execute": cmd, "id": rid}
        if args is not None:
            msg["arguments"] = args
        send_json(self.s, msg)
        r = self.read_reply()
        check(r.get("id") == rid, "reply id %r, expected %r: %r" % (r.get("id"), rid, r))
        return r

    def ret(self, cmd, args=None):
        r = self.request(cmd, args)
        check("return" in r, "%s %s: expected a return, got %r" % (cmd, args, r))
        return r["return"]

    def at_eof(self):
        """True once the daemon closed the connection (reads what is left)."""
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


def expect_error(r, cls, err):
    """r is an error reply of class cls with errno name err and a desc."""
    check("error" in r, "expected an error %s/%s, got %r" % (cls, err, r))
    e = r["error"]
    check(e.get("class") == cls and e.get("errno") == err,
          "expected %s/%s, got %r" % (cls, err, e))
    check(isinstance(e.get("desc"), str) and e["desc"], "error without a desc: %r" % e)


def expect_closed(c, what):
    c.s.settimeout(DEADLINE_S)
    check(c.at_eof(), what + ": the daemon did not close the connection")


class FakeIovmd:
    """A stand-in for iovmd on a socket in dir: greets every client, records
    every request line, and lets answer(fake, conn, request) reply; an
    answer that returns "close" ends that connection."""

    def __init__(self, dir, answer, greeting=None):
        self.path = os.path.join(dir, "iovm-%d.sock" % id(self))
        self.answer = answer
        self.greeting = greeting if greeting is not None else json.dumps(GREETING) + "\n"
        self.requests = []
        self.raw_lines = []
        self.connections = 0
        self.stop = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.client, args=(conn,), daemon=True).start()

    def client(self, conn):
        with conn:
            try:
                conn.sendall(self.greeting.encode())
                f = conn.makefile("rb")
                for line in f:
                    self.raw_lines.append(line)
                    req = json.loads(line)
                    self.requests.append(req)
                    if self.answer(self, conn, req) == "close":
                        conn.shutdown(socket.SHUT_RDWR)
                        return
            except (OSError, ValueError):
                pass

    def close(self):
        self.stop = True
        self.sock.close()
        self.thread.join()
        os.unlink(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- the programs -------------------------------------------------------------

def run_iovmctl(iovmctl, args, sock=None, env=None, timeout=60, cwd=None):
    """iovmctl [--socket SOCK] ARGS, with IOVM_SOCKET only if env sets it;
    returns (exit status, stdout, stderr)."""
    cmd = [iovmctl]
    if sock is not None:
        cmd += ["--socket", sock]
    cmd += list(args)
    e = dict(os.environ)
    e.pop("IOVM_SOCKET", None)
    e.update(env or {})
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                       timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Daemon:
    """A fixture tree (made by Daemon.make_sysfs, tests/unit/fixtures/
    make-sysfs.sh) and an iovmd (Daemon.iovmd) on it; the tree and the
    state outlive stop() for the next start(). As a fixture of run_cases:
    begin() starts it, end() checks that it is still running, report()
    prints its last log lines."""

    iovmd = None
    make_sysfs = None

    def __init__(self, *extra, tmp=None, socket_path=None, state=None, config=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="iovmd-test-")
        self.own_tmp = tmp is None
        if not os.path.isdir(os.path.join(self.tmp, "sys")):
            subprocess.run(["bash", self.make_sysfs, self.tmp], check=True)
        self.sock = socket_path or os.path.join(self.tmp, "iovm.sock")
        self.state = state or os.path.join(self.tmp, "iovm.db")
        self.config = config
        if self.config is None:
            # Never the machine's /etc/iovm/iovm.conf.
            self.config = write(os.path.join(self.tmp, "empty.conf"), "")
        self.extra = list(extra)
        self.proc = None
        self.log_path = None
        self.runs = 0

    def argv(self):
        return [self.iovmd, "--config", self.config, "--sysfs-root", os.path.join(self.tmp, "sys"),
                "--socket", self.sock, "--state", self.state, "--refresh-interval", "500",
                "--log-level", "debug"] + self.extra

    def start(self, argv=None, wait=True):
        self.runs += 1
        self.log_path = os.path.join(self.tmp, "iovmd-%d.log" % self.runs)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv or self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, sock=None):
        sock = sock or self.sock

        def ready():
            if self.proc.poll() is not None:
                raise Failure("iovmd exited with %s before listening:\n%s"
                              % (self.proc.returncode, self.log_text()))
            try:
                c = Client(sock)
            except OSError:
                return False
            c.close()
            return True
        wait_for(ready, "iovmd to listen on " + sock)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def client(self):
        return Client(self.sock)

    def cleanup(self):
        self.stop()
        if self.own_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def begin(self):
        return self.start()

    def end(self):
        if self.proc is not None:
            check(self.alive(), "iovmd died during the case:\n" + self.log_text()[-3000:])

    def report(self):
        if self.log_path:
            print("  --- iovmd log (last lines) ---\n  " +
                  "\n  ".join(self.log_text().splitlines()[-15:]), flush=True)
