#!/usr/bin/env python3
"""Lab: the QMP client against a misbehaving QEMU.

A fake QMP server on a UNIX socket answers `iovm-vm qmp` and `iovm-vm attach`
with truncated, malformed, oversized or missing replies, or hangs up in the
middle of a command. Each case must end in a clean error with the right errno
as exit status (never a signal), and a failed attach must leave the VF pool
empty. Needs no kernel feature: it also runs outside the lab.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

BUILD = os.environ.get("IOVM_BUILD")
if not BUILD:
    print("skip: IOVM_BUILD not set", file=sys.stderr)
    sys.exit(77)
TOOL = os.path.join(BUILD, "src/tools/iovm-vm/iovm-vm")
if not os.access(TOOL, os.X_OK):
    print(f"skip: {TOOL} not built", file=sys.stderr)
    sys.exit(77)

GREETING = b'{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": ""}, "capabilities": ["oob"]}}\r\n'
TMP = tempfile.mkdtemp(prefix="iovm-qmp-fake-", dir=os.environ.get("TMPDIR", "/tmp"))
failures = 0


def fail(msg):
    global failures
    failures += 1
    print(f"FAIL: {msg}", file=sys.stderr)


class Fake:
    """Serves one client: greeting, capabilities, then answer(cmd, id, sock)
    for each command until it returns False."""

    def __init__(self, answer, greeting=GREETING):
        self.path = os.path.join(TMP, "qmp.sock")
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(1)
        self.answer, self.greeting = answer, greeting
        self.commands = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        c, _ = self.srv.accept()
        f = c.makefile("rb")
        try:
            c.sendall(self.greeting)
            while True:
                line = f.readline()
                if not line:
                    break
                req = json.loads(line)
                self.commands.append(req["execute"])
                if req["execute"] == "qmp_capabilities":
                    c.sendall(b'{"return": {}, "id": %d}\r\n' % req["id"])
                    continue
                if self.answer(req["execute"], req["id"], c) is False:
                    break
        except OSError:
            pass    # the client gave up first: that is what some cases test
        finally:
            c.close()
            self.srv.close()

    def join(self):
        self.t.join(10)


def run(args, timeout=60):
    r = subprocess.run([TOOL, "--no-host"] + args, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def case(name, answer, want_rc, want_msg, args=None, greeting=GREETING):
    fake = Fake(answer, greeting)
    rc, out, err = run((args or ["qmp", "--timeout-ms", "2000"]) + ["--qmp", fake.path] +
                       ([] if args else ["query-pci"]))
    fake.join()
    if rc < 0:
        fail(f"{name}: iovm-vm killed by signal {-rc}: {err}")
    elif rc != want_rc:
        fail(f"{name}: exit {rc}, want {want_rc}: {err.strip()}")
    elif want_msg not in err + out:
        fail(f"{name}: output lacks '{want_msg}': {err.strip()}")
    else:
        print(f"ok: {name}: exit {rc}: {(err or out).strip()[:160]}")
    return fake


def send(data, then_close=False):
    def answer(cmd, cid, c):
        c.sendall(data.replace(b"$ID", str(cid).encode()))
        return not then_close
    return answer


def hang(cmd, cid, c):
    threading.Event().wait(5)
    return False


case("good reply", send(b'{"return": [{"bus": 0, "devices": []}], "id": $ID}\r\n'), 0, '"devices":[]')
case("error reply", send(b'{"id": $ID, "error": {"class": "GenericError", "desc": "nope"}}\r\n'),
     121, "GenericError: nope")
case("close mid-command", send(b"", then_close=True), 104, "QEMU went away (connection closed)")
case("truncated reply, then close", send(b'{"return": [{"bus": 0, "dev', then_close=True),
     104, "connection closed inside a message")
case("truncated line", send(b'{"return": [{"bus": 0, "dev\r\n'), 71, "malformed message")
case("garbage", send(b"\x00\xff garbage \x1b[2J\r\n"), 71, "malformed message")
case("two objects on a line", send(b'{"return": {}, "id": $ID}{"return": {}}\r\n'), 71, "trailing data")
case("reply for another id", send(b'{"return": {}, "id": 99999}\r\n'), 71, "matches no command")
case("oversized line", send(b"x" * (2 << 20)), 90, "larger than")
case("oversized valid JSON", send(b'{"return": "' + b"a" * (2 << 20) + b'", "id": $ID}\r\n'), 90,
     "larger than")
case("no reply", hang, 110, "timed out")
case("bad greeting", send(b""), 71, "expected the QMP greeting", greeting=b'{"hello": 1}\r\n')

# A failed attach leaves nothing behind in the pool.
pool = os.path.join(TMP, "pool.json")
fake = case("attach, QEMU dies during device_add",
            lambda cmd, cid, c: (c.sendall(b'{"return": [{"bus": 0, "devices": [{"bus": 0, "slot": 2, '
                                           b'"function": 0, "qdev_id": "hp1", "pci_bridge": {"bus": '
                                           b'{"secondary": 1}, "devices": []}}]}], "id": %d}\r\n' % cid)
                                if cmd == "query-pci" else False),
            104, "QEMU went away",
            args=["--pool", pool, "attach", "--vm", "g1", "--vf", "0000:01:10.0", "--no-prepare",
                  "--timeout-ms", "5000"])
if fake.commands != ["qmp_capabilities", "query-pci", "device_add"]:
    fail(f"attach sent {fake.commands}")
rc, out, err = run(["--pool", pool, "pool"])
if rc != 0 or out.strip():
    fail(f"pool not empty after a failed attach: rc={rc} {out!r} {err!r}")
else:
    print("ok: pool empty after the failed attach")

shutil.rmtree(TMP, ignore_errors=True)
sys.exit(1 if failures else 0)
