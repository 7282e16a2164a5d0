#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: iovmd API throughput, latency and memory (docs/iovmd.md).

On this machine, no lab: iovmd on a fixture sysfs tree with 256 VFs
(bench/make-big-sysfs.sh), 1,000 VMs registered with vm-add (QMP sockets
that do not exist), then CLIENTS concurrent clients (one process and one
connection each) issuing vf-list then status in closed loops for SECONDS.
Prints requests/s and p50/p99 latency per command, and iovmd's VmRSS before
and after registering the VMs and after the load.

Baseline, same run: the same clients against a trivial server written here
in Python, speaking the same line protocol: greeting, then for each request
line the reply bytes iovmd itself gave for that command (captured before the
load, id patched in), from one selector loop as iovmd serves from one event
loop. It does no work but framing, so the ratio iovmd/baseline says what the
daemon's own work costs over the cost of moving the same bytes through the
same clients on the same machine.

usage: api-bench.py PATH-TO-IOVMD [--seconds N] [--clients N] [--vms N]
                    [--pfs N --vfs-per-pf N] [--keep]
"""
import argparse
import json
import multiprocessing
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CMDS = ("vf-list", "status")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_s(pid):
    """{tid: user+system CPU seconds} of each thread, and "children": reaped
    children's (the deadline workers the ops thread forks)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            v = f.read().rsplit(")", 1)[1].split()
        out[int(tid)] = (int(v[11]) + int(v[12])) / tick
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    out["children"] = (int(v[13]) + int(v[14])) / tick
    return out


def cpu_delta(before, after, pid):
    parts = []
    for k in after:
        name = "main" if k == pid else "children" if k == "children" else "thread %s" % k
        parts.append("%s %.1f s" % (name, after[k] - before.get(k, 0)))
    return ", ".join(parts)


def connect(path, deadline_s=60.0):
    end = time.monotonic() + deadline_s
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


class Conn:
    def __init__(self, path):
        self.s = connect(path)
        self.buf = bytearray()
        self.line()                      # greeting

    def line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + 1]
                return out
            chunk = self.s.recv(262144)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk

    def call(self, cmd, args=None, rid=1):
        msg = {"execute": cmd, "id": rid}
        if args is not None:
            msg["arguments"] = args
        self.s.sendall((json.dumps(msg) + "\n").encode())
        return json.loads(self.line())


# ---- the load -------------------------------------------------------------------

def client_proc(path, start_at, seconds, out):
    """One client: closed loop of vf-list, status; latencies in microseconds."""
    c = Conn(path)
    lat = {cmd: [] for cmd in CMDS}
    reqs = {cmd: ('{"execute":"%s","id":%%d}\n' % cmd) for cmd in CMDS}
    errors = 0
    rid = 0
    while time.monotonic() < start_at:
        time.sleep(0.001)
    end = start_at + seconds
    while True:
        for cmd in CMDS:
            rid += 1
            t0 = time.perf_counter_ns()
            c.s.sendall((reqs[cmd] % rid).encode())
            reply = c.line()
            lat[cmd].append((time.perf_counter_ns() - t0) // 1000)
            # Cheap checks only: the client must not be the bottleneck.
            if not reply.startswith(b'{"return":') or not reply.endswith(b',"id":%d}' % rid):
                errors += 1
        if time.monotonic() >= end:
            break
    out.send((lat, errors))
    out.close()


def pct(sorted_v, p):
    if not sorted_v:
        return 0
    return sorted_v[min(len(sorted_v) - 1, int(len(sorted_v) * p / 100))]


def run_load(path, clients, seconds):
    ctx = multiprocessing.get_context("fork")
    start_at = time.monotonic() + 1.0 + clients * 0.02
    procs, pipes = [], []
    for _ in range(clients):
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=client_proc, args=(path, start_at, seconds, w))
        p.start()
        w.close()
        procs.append(p)
        pipes.append(r)
    lat = {cmd: [] for cmd in CMDS}
    errors = 0
    for r in pipes:
        l, e = r.recv()
        errors += e
        for cmd in CMDS:
            lat[cmd] += l[cmd]
    for p in procs:
        p.join()
    res = {"errors": errors}
    for cmd in CMDS:
        v = sorted(lat[cmd])
        res[cmd] = {"n": len(v), "rps": len(v) / seconds, "p50_us": pct(v, 50),
                    "p99_us": pct(v, 99)}
    res["total_rps"] = sum(res[cmd]["rps"] for cmd in CMDS)
    return res


# ---- the baseline server ----------------------------------------------------------

def baseline_server(path, replies, ready):
    """Greets; answers each line with replies[cmd] (id patched in); one loop."""
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(128)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    greeting = b'{"iovm":{"version":"0.1.0","api":1}}\n'
    ready.send(True)
    state = {}

    def answer(line):
        try:
            m = json.loads(line)
            body = replies[m["execute"]]
            return body + b',"id":' + json.dumps(m.get("id")).encode() + b"}\n"
        except (ValueError, KeyError, TypeError):
            return b'{"error":{"class":"InvalidParameter","desc":"bad request","errno":"EINVAL"}}\n'

    def update(s):
        st = state[s]
        sel.modify(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if st["out"] else 0), 1)

    while True:
        for key, ev in sel.select():
            s = key.fileobj
            if key.data is None:
                try:
                    c, _ = ls.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                state[c] = {"in": bytearray(), "out": bytearray(greeting)}
                sel.register(c, selectors.EVENT_READ | selectors.EVENT_WRITE, 1)
                continue
            st = state[s]
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    sel.unregister(s)
                    s.close()
                    del state[s]
                    continue
                if data:
                    st["in"] += data
                    while True:
                        i = st["in"].find(b"\n")
                        if i < 0:
                            break
                        line = bytes(st["in"][:i])
                        del st["in"][:i + 1]
                        st["out"] += answer(line)
            if st["out"]:
                try:
                    n = s.send(st["out"])
                    del st["out"][:n]
                except BlockingIOError:
                    pass
                except OSError:
                    sel.unregister(s)
                    s.close()
                    del state[s]
                    continue
            update(s)


# ---- main ---------------------------------------------------------------------------

def fmt(res):
    lines = []
    for cmd in CMDS:
        r = res[cmd]
        lines.append("  %-8s %9.0f req/s   p50 %7.2f ms   p99 %7.2f ms   (%d requests)"
                     % (cmd, r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000, r["n"]))
    lines.append("  total    %9.0f req/s   errors %d" % (res["total_rps"], res["errors"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("iovmd")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--pfs", type=int, default=4)
    ap.add_argument("--vfs-per-pf", type=int, default=64)
    ap.add_argument("--refresh-interval", default=None,
                    help="passed to iovmd (default: iovmd's own, 2000 ms)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    a = ap.parse_args()

    # SIGTERM/SIGINT: stop iovmd and remove the temp dir on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    tmp = tempfile.mkdtemp(prefix="iovm-api-bench-")
    daemon = base = None
    try:
        subprocess.run(["bash", os.path.join(HERE, "make-big-sysfs.sh"), tmp, str(a.pfs),
                        str(a.vfs_per_pf)], check=True)
        conf = os.path.join(tmp, "empty.conf")
        open(conf, "w").close()
        sock = os.path.join(tmp, "iovm.sock")
        log = open(os.path.join(tmp, "iovmd.log"), "wb")
        daemon = subprocess.Popen([os.path.abspath(a.iovmd), "--config", conf,
                                   "--sysfs-root", os.path.join(tmp, "sys"), "--socket", sock,
                                   "--state", os.path.join(tmp, "iovm.db"),
                                   "--log-level", "error", "--max-clients", "1024"] +
                                  (["--refresh-interval", a.refresh_interval]
                                   if a.refresh_interval else []),
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        c = Conn(sock)
        st = c.call("status")["return"]
        print("machine: %d CPUs online (%s), load average %s" %
              (os.cpu_count(), os.uname().machine, " ".join(open("/proc/loadavg").read().split()[:3])))
        print("iovmd: %d PFs, %d VFs; %d clients, %.0f s per run; refresh interval %s ms" %
              (st["pfs"], st["vfs"], a.clients, a.seconds, a.refresh_interval or "2000"), flush=True)
        rss0 = rss_kib(daemon.pid)

        t0 = time.monotonic()
        for i in range(a.vms):
            r = c.call("vm-add", {"name": "vm%04d" % i,
                                  "qmp": os.path.join(tmp, "absent", "vm%04d.sock" % i)}, i)
            if "return" not in r:
                raise SystemExit("vm-add %d failed: %r" % (i, r))
            if (i + 1) % 100 == 0:
                print("  %d VMs registered, %.1f s" % (i + 1, time.monotonic() - t0), flush=True)
        t_add = time.monotonic() - t0
        st = c.call("status")["return"]
        if st["vms"] != a.vms:
            raise SystemExit("status says %d VMs, expected %d" % (st["vms"], a.vms))
        rss1 = rss_kib(daemon.pid)
        print("vm-add x%d: %.1f s (%.0f/s, each one at a time through the ops thread)"
              % (a.vms, t_add, a.vms / t_add))

        # What iovmd answers; the baseline sends exactly these bytes back.
        replies = {}
        for cmd in CMDS:
            c.s.sendall(('{"execute":"%s","id":0}\n' % cmd).encode())
            line = c.line()
            suffix = b',"id":0}'
            if not line.endswith(suffix):
                raise SystemExit("unexpected reply shape: %r" % line[-80:])
            replies[cmd] = line[:-len(suffix)]
        print("reply sizes: vf-list %d bytes, status %d bytes"
              % (len(replies["vf-list"]) + 9, len(replies["status"]) + 9))
        c.s.close()

        cpu0 = cpu_s(daemon.pid)
        res_d = run_load(sock, a.clients, a.seconds)
        cpu1 = cpu_s(daemon.pid)
        rss2 = rss_kib(daemon.pid)
        st = Conn(sock).call("status")["return"]

        bsock = os.path.join(tmp, "baseline.sock")
        ctx = multiprocessing.get_context("fork")
        r, w = ctx.Pipe(duplex=False)
        base = ctx.Process(target=baseline_server, args=(bsock, replies, w))
        base.start()
        r.recv()
        res_b = run_load(bsock, a.clients, a.seconds)

        print("\niovmd (%d VMs registered):" % st["vms"])
        print(fmt(res_d))
        print("baseline (python line server, same replies):")
        print(fmt(res_b))
        print("ratio iovmd/baseline: throughput %.2f; p50 vf-list %.2f, status %.2f; "
              "p99 vf-list %.2f, status %.2f" % (
                  res_d["total_rps"] / res_b["total_rps"],
                  res_d["vf-list"]["p50_us"] / max(1, res_b["vf-list"]["p50_us"]),
                  res_d["status"]["p50_us"] / max(1, res_b["status"]["p50_us"]),
                  res_d["vf-list"]["p99_us"] / max(1, res_b["vf-list"]["p99_us"]),
                  res_d["status"]["p99_us"] / max(1, res_b["status"]["p99_us"])))
        print("iovmd CPU during its %.0f s load: %s" % (a.seconds, cpu_delta(cpu0, cpu1, daemon.pid)))
        print("\niovmd VmRSS: %d KiB at start, %d KiB after %d vm-add (+%d), "
              "%d KiB after the load (+%d)" % (rss0, rss1, a.vms, rss1 - rss0, rss2, rss2 - rss1))
        if res_d["errors"] or res_b["errors"]:
            print("ERRORS in replies: iovmd %d, baseline %d" % (res_d["errors"], res_b["errors"]))
            return 1
        return 0
    finally:
        if base is not None:
            base.terminate()
            base.join()
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        if a.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
