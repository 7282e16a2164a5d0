#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Tests of iovmd itself, on this machine, against the fixture sysfs tree.

Each case builds a fresh fixture (tests/unit/fixtures/make-sysfs.sh) in its
own temp dir, starts its own iovmd on a socket there, talks the line
protocol to it (or runs iovmctl), and stops it. Covered: the greeting, the
shape of every read command's return, error classes and errno names, order
and ids of replies, pipelining, over-long lines, garbage input, a client
that never reads, --max-clients, access by uid/group, persistence of VMs
across a restart, the config file, a second daemon on the same socket,
SIGTERM, and iovmctl against the real daemon.

Nothing here asserts on wall-clock time: waits poll with generous deadlines
that only bound how long a failure takes to report.

usage: test-iovmd.py PATH-TO-IOVMD PATH-TO-IOVMCTL PATH-TO-MAKE-SYSFS.SH
"""
import grp
import json
import os
import pwd
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

from iovmtest import (DEADLINE_S, GREETING, IO_TIMEOUT_S, Cases, Client, Daemon, Failure,
                      check, expect_closed, expect_error, run_cases, run_iovmctl, wait_for,
                      write)

IOVMD = IOVMCTL = MAKE_SYSFS = None
NOBODY = 65534

PF_KEYS = {"pf", "netdev", "driver", "vendor", "device", "total_vfs", "num_vfs", "numa_node",
           "link", "desired_vfs", "desired_driver"}
VF_KEYS = {"vf", "pf", "pf_netdev", "index", "driver", "iommu_group", "netdev", "state", "vm",
           "mode", "users", "config", "throughput_bps"}
VM_KEYS = {"name", "qmp", "priority", "numa_node", "connected", "vfs"}
STATUS_KEYS = {"version", "api", "uptime_s", "pfs", "vfs", "vfs_free", "vms", "assignments",
               "clients", "open_intents", "state"}
COMMANDS = ["query-commands", "status", "pf-list", "pf-show", "pf-set-vfs", "vf-list",
            "vf-show", "vf-set", "vm-add", "vm-list", "vm-remove", "attach", "detach",
            "migrate-prepare", "migrate-abort"]
# The fixture (make-sysfs.sh): eth0 = 0000:01:00.0 with 3 VFs, eth1 = 0000:02:00.0 with none.
ETH0 = "0000:01:00.0"
ETH1 = "0000:02:00.0"
ETH0_VFS = ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"]


def status_ok(d):
    """A new client gets a status reply and the process is alive."""
    check(d.alive(), "iovmd is not running (exit %s):\n%s"
          % (d.proc.returncode if d.proc else None, d.log_text()[-3000:]))
    c = d.client()
    try:
        st = c.ret("status")
        check(set(st) >= STATUS_KEYS, "status lacks %s" % (STATUS_KEYS - set(st)))
        return st
    finally:
        c.close()


def check_pf(p):
    check(set(p) >= PF_KEYS, "PF lacks %s: %r" % (PF_KEYS - set(p), p))
    check(p["link"] in ("up", "down", "unknown"), "PF link %r" % p["link"])
    for k in ("total_vfs", "num_vfs", "numa_node"):
        check(type(p[k]) is int, "PF %s is not an integer: %r" % (k, p))
    check(p["desired_vfs"] is None or type(p["desired_vfs"]) is int, "desired_vfs %r" % p)
    check(p["desired_driver"] in (None, "vfio-pci", "host"), "desired_driver %r" % p)


def check_vf(v):
    check(set(v) >= VF_KEYS, "VF lacks %s: %r" % (VF_KEYS - set(v), v))
    check(v["state"] in ("free", "reserved", "attaching", "attached", "detaching",
                         "release-pending"), "VF state %r" % v["state"])
    check(v["mode"] in ("", "exclusive", "shared"), "VF mode %r" % v["mode"])
    check(isinstance(v["config"], dict), "VF config %r" % v["config"])
    for k in ("index", "iommu_group", "users", "throughput_bps"):
        check(type(v[k]) is int, "VF %s is not an integer: %r" % (k, v))


def check_vm(v):
    check(set(v) >= VM_KEYS, "VM lacks %s: %r" % (VM_KEYS - set(v), v))
    check(v["priority"] in ("high", "normal", "low"), "VM priority %r" % v)
    check(type(v["connected"]) is bool and isinstance(v["vfs"], list), "VM %r" % v)


# ---- cases ------------------------------------------------------------------------

case = Cases()   # @case appends a case


@case
def greeting(d):
    c = d.client()
    check(c.greeting == GREETING, "greeting %r" % c.greeting)


@case
def status_shape(d):
    c = d.client()
    st = c.ret("status")
    check(set(st) >= STATUS_KEYS, "status lacks %s" % (STATUS_KEYS - set(st)))
    check(st["version"] == "0.1.0" and st["api"] == 1, "status version %r" % st)
    check(st["state"] == d.state, "status state %r, expected %r" % (st["state"], d.state))
    check(st["pfs"] >= 2 and st["vfs"] == 3 and st["vfs_free"] == 3, "status counts %r" % st)
    check(st["vms"] == 0 and st["assignments"] == 0 and st["open_intents"] == 0,
          "status on a fresh state %r" % st)
    check(st["clients"] >= 1, "status clients %r" % st)
    for k in STATUS_KEYS - {"version", "state"}:
        check(type(st[k]) is int and st[k] >= 0, "status %s %r" % (k, st[k]))


@case
def pf_list_shape(d):
    pfs = d.client().ret("pf-list")
    check(isinstance(pfs, list), "pf-list %r" % pfs)
    for p in pfs:
        check_pf(p)
        check("vfs" not in p, "pf-list entries carry no vfs: %r" % p)
    by = {p["pf"]: p for p in pfs}
    check(ETH0 in by and ETH1 in by, "pf-list lacks the fixture PFs: %r" % list(by))
    e0, e1 = by[ETH0], by[ETH1]
    check((e0["netdev"], e0["driver"], e0["vendor"], e0["device"], e0["total_vfs"],
           e0["num_vfs"], e0["link"]) == ("eth0", "igb", "8086", "10c9", 7, 3, "up"),
          "eth0 %r" % e0)
    check((e1["netdev"], e1["num_vfs"], e1["link"]) == ("eth1", 0, "down"), "eth1 %r" % e1)


@case
def pf_show_by_netdev_and_address(d):
    c = d.client()
    a = c.ret("pf-show", {"pf": "eth0"})
    b = c.ret("pf-show", {"pf": ETH0})
    check_pf(a)
    check(a["pf"] == ETH0 and a["netdev"] == "eth0", "pf-show eth0 %r" % a)
    check([v["vf"] for v in a["vfs"]] == ETH0_VFS, "pf-show eth0 vfs %r" % a["vfs"])
    for v in a["vfs"]:
        check_vf(v)
    check(a == b, "pf-show by netdev and by address differ")
    e1 = c.ret("pf-show", {"pf": "eth1"})
    check(e1["pf"] == ETH1 and e1["vfs"] == [], "pf-show eth1 %r" % e1)


@case
def vf_list_with_and_without_pf(d):
    c = d.client()
    all_vfs = c.ret("vf-list")
    check([v["vf"] for v in all_vfs] == ETH0_VFS, "vf-list %r" % all_vfs)
    for v in all_vfs:
        check_vf(v)
        check(v["pf"] == ETH0 and v["pf_netdev"] == "eth0", "vf-list pf %r" % v)
    check([v["index"] for v in all_vfs] == [0, 1, 2], "vf indexes %r" % all_vfs)
    check(c.ret("vf-list", {"pf": "eth0"}) == all_vfs, "vf-list --pf eth0")
    check(c.ret("vf-list", {"pf": ETH0}) == all_vfs, "vf-list --pf " + ETH0)
    check(c.ret("vf-list", {"pf": "eth1"}) == [], "vf-list --pf eth1")


@case
def vf_show_by_address_and_index(d):
    c = d.client()
    a = c.ret("vf-show", {"vf": "0000:01:10.2"})
    check_vf(a)
    check((a["vf"], a["index"], a["driver"], a["netdev"], a["iommu_group"]) ==
          ("0000:01:10.2", 1, "igbvf", "eth2", 4), "vf-show %r" % a)
    check(c.ret("vf-show", {"vf": "eth0/1"}) == a, "vf-show eth0/1 differs")
    check(c.ret("vf-show", {"vf": ETH0 + "/1"}) == a, "vf-show %s/1 differs" % ETH0)
    z = c.ret("vf-show", {"vf": "eth0/0"})
    check((z["vf"], z["driver"]) == ("0000:01:10.0", "vfio-pci"), "vf-show eth0/0 %r" % z)


@case
def vm_list_and_query_commands(d):
    c = d.client()
    check(c.ret("vm-list") == [], "vm-list on a fresh state")
    qmp = os.path.join(d.tmp, "absent-qmp.sock")
    vm = c.ret("vm-add", {"name": "g1", "qmp": qmp, "priority": "high", "numa_node": 0})
    check_vm(vm)
    check((vm["name"], vm["qmp"], vm["priority"], vm["numa_node"], vm["connected"], vm["vfs"]) ==
          ("g1", qmp, "high", 0, False, []), "vm-add %r" % vm)
    vms = c.ret("vm-list")
    check(len(vms) == 1 and vms[0] == vm, "vm-list after vm-add %r" % vms)
    check(c.ret("status")["vms"] == 1, "status vms after vm-add")
    check(vm["qga"] == "", "no guest agent given %r" % vm)
    qga = os.path.join(d.tmp, "absent-qga.sock")
    vm2 = c.ret("vm-add", {"name": "g2", "qmp": qmp + "2", "qga": qga})
    check(vm2["qga"] == qga, "vm-add with a guest agent %r" % vm2)
    check([v["qga"] for v in c.ret("vm-list") if v["name"] == "g2"] == [qga], "vm-list keeps qga")
    c.ret("vm-remove", {"name": "g2"})
    names = c.ret("query-commands")
    check(isinstance(names, list) and all(set(n) == {"name"} for n in names),
          "query-commands shape %r" % names)
    check(sorted(n["name"] for n in names) == sorted(COMMANDS), "query-commands %r" % names)


@case
def errors_class_and_errno(d):
    c = d.client()
    expect_error(c.request("pf-show", {"pf": "eth9"}), "NotFound", "ENODEV")
    expect_error(c.request("pf-show", {"pf": "0000:09:00.0"}), "NotFound", "ENODEV")
    expect_error(c.request("vf-list", {"pf": "eth9"}), "NotFound", "ENODEV")
    expect_error(c.request("vf-show", {"vf": "0000:01:10.6"}), "NotFound", "ENODEV")
    expect_error(c.request("vf-show", {"vf": "eth0/5"}), "NotFound", "ENODEV")
    expect_error(c.request("vf-show", {"vf": "eth9/0"}), "NotFound", "ENODEV")
    expect_error(c.request("no-such-command"), "CommandNotFound", "ENOSYS")
    expect_error(c.request("pf-show"), "InvalidParameter", "EINVAL")
    expect_error(c.request("vf-show", {}), "InvalidParameter", "EINVAL")
    expect_error(c.request("vm-add", {"name": "g1"}), "InvalidParameter", "EINVAL")
    expect_error(c.request("pf-show", {"pf": 5}), "InvalidParameter", "EINVAL")
    expect_error(c.request("vf-list", {"pf": ["eth0"]}), "InvalidParameter", "EINVAL")
    expect_error(c.request("vm-add", {"name": "g1", "qmp": "/x", "numa_node": "0"}),
                 "InvalidParameter", "EINVAL")
    expect_error(c.request("status", {"bogus": 1}), "InvalidParameter", "EINVAL")
    c.send_raw(b"this is not json\n")
    expect_error(c.read_reply(), "InvalidParameter", "EBADMSG")
    # Still usable after every refusal.
    check(c.ret("pf-show", {"pf": "eth0"})["pf"] == ETH0, "pf-show after the errors")


@case
def replies_in_order_with_ids(d):
    c = d.client()
    qmp = os.path.join(d.tmp, "q.sock")
    # Reads and mutating commands (run by the ops thread) interleaved, ids of
    # both kinds, all sent at once: replies must come back in request order.
    reqs = [("status", None, 7), ("vm-add", {"name": "a", "qmp": qmp}, "s-1"),
            ("vm-list", None, 0), ("vf-show", {"vf": "eth0/2"}, 123456789),
            ("vm-remove", {"name": "a"}, "x"), ("vm-list", None, -3),
            ("no-such", None, "err"), ("pf-show", {"pf": "eth1"}, 8)]
    data = b"".join((json.dumps({"execute": cmd, "arguments": a, "id": i} if a else
                                {"execute": cmd, "id": i}) + "\n").encode()
                    for cmd, a, i in reqs)
    c.send_raw(data)
    replies = [c.read_reply() for _ in reqs]
    check([r.get("id") for r in replies] == [i for _, _, i in reqs],
          "ids out of order: %r" % [r.get("id") for r in replies])
    check(replies[2]["return"][0]["name"] == "a", "vm-list after vm-add %r" % replies[2])
    check(replies[3]["return"]["vf"] == "0000:01:10.4", "vf-show eth0/2 %r" % replies[3])
    check(replies[4]["return"] == {} and replies[5]["return"] == [], "vm-remove %r" % replies[4:6])
    expect_error(replies[6], "CommandNotFound", "ENOSYS")
    # A request without an id gets a reply without one.
    c.send_raw(b'{"execute":"status"}\n')
    r = c.read_reply()
    check("return" in r and "id" not in r, "reply to an id-less request %r" % r)
    # Every reply path (cached lists, status, the general one) echoes the id
    # in the same bytes: json-c's plain form, "/" not escaped.
    for cmd in ("vf-list", "status", "vm-list", "pf-show"):
        args = ',"arguments":{"pf":"eth0"}' if cmd == "pf-show" else ""
        c.send_raw(b'{"execute":"%s"%s,"id":"a/b"}\n' % (cmd.encode(), args.encode()))
        line = c.read_line()
        check(line.endswith(b',"id":"a/b"}'), "%s: id echoed as %r" % (cmd, line[-24:]))


@case
def read_after_job_sees_its_change(d):
    # iovmd replies to a job before it publishes the job's snapshot; reads
    # in between wait for that snapshot. Each pf-set-vfs writes the
    # fixture's sriov_numvfs (the fixture kernel never makes the VFs, so
    # the job fails, but num_vfs changes); the pf-show pipelined right
    # behind it must show the new count every time.
    c = d.client()
    for i in range(20):
        n = 1 + i % 3
        c.send_raw((json.dumps({"execute": "pf-set-vfs", "arguments": {"pf": "eth1", "count": n},
                                "id": 2 * i}) + "\n" +
                    json.dumps({"execute": "pf-show", "arguments": {"pf": "eth1"}, "id": 2 * i + 1})
                    + "\n").encode())
        r1, r2 = c.read_reply(), c.read_reply()
        check(r1.get("id") == 2 * i and r2.get("id") == 2 * i + 1, "ids %r %r" % (r1, r2))
        check(r2["return"]["num_vfs"] == n, "pf-show after pf-set-vfs %d: %r" % (n, r2))
    check("replied; publishing" in d.log_text(), "the reply did not go before the snapshot")
    status_ok(d)


@case
def journal_pruned_on_tick(d):
    # Each pf-set-vfs journals an intent (rolled back: the fixture kernel
    # makes no VFs); the refresh tick keeps the newest --journal-keep
    # finished ones.
    d.stop()
    d.extra = ["--journal-keep", "3"]
    d.start()
    c = d.client()
    for i in range(10):
        c.request("pf-set-vfs", {"pf": "eth1", "count": 1 + i % 3})

    def rows():
        db = sqlite3.connect(d.state)
        try:
            return db.execute("SELECT count(*), min(id), sum(status = 'open') FROM intent").fetchone()
        finally:
            db.close()
    wait_for(lambda: rows()[0] == 3, "the tick to prune the journal to 3 intents")
    check(rows() == (3, 8, 0), "journal after pruning (count, oldest id, open) %r" % (rows(),))
    pruned = [int(w) for w in re.findall(r"journal: pruned (\d+) finished intents", d.log_text())]
    check(sum(pruned) == 7, "prunes in the log %r" % pruned)


@case
def many_requests_pipelined(d):
    c = d.client()
    n = 2000
    cmds = ["status", "vf-list", "pf-list", "vm-list", "query-commands"]
    data = "".join(json.dumps({"execute": cmds[i % len(cmds)], "id": i}) + "\n"
                   for i in range(n)).encode()
    c.send_raw(data)
    for i in range(n):
        r = c.read_reply()
        check(r.get("id") == i and "return" in r, "reply %d: %r" % (i, r))
    check(c.ret("status")["clients"] >= 1, "status after the burst")


@case
def half_close_gets_every_reply(d):
    # A client that sends its requests and then shuts down its writing side
    # (as `printf ... | socat - UNIX-CONNECT:...` does) is owed every reply,
    # including those still queued in the daemon when it sees the EOF.
    c = d.client()
    n = 400        # about 700 KiB of replies: more than the socket buffers, under 1 MiB
    c.send_raw(b"".join(b'{"execute":"pf-show","arguments":{"pf":"eth0"},"id":%d}\n' % i
                        for i in range(n)))
    c.s.shutdown(socket.SHUT_WR)
    # Give the daemon time to read the EOF while most replies still wait for
    # us: until it logs the client gone (a broken daemon) or 2 s (a correct
    # one keeps the replies; either way the count below decides).
    end = time.monotonic() + 2.0
    while "gone" not in d.log_text() and time.monotonic() < end:
        time.sleep(0.02)
    got = 0
    while True:
        line = c.read_line()
        if line is None:
            break
        r = json.loads(line)
        check(r.get("id") == got and r["return"]["pf"] == ETH0, "reply %d: %r" % (got, line[:80]))
        got += 1
    check(got == n, "a half-closed client got %d of %d replies" % (got, n))
    status_ok(d)


@case
def line_over_64k_closes(d):
    # 70 KiB with its newline, sent at once: refused, then the connection closes.
    c = d.client()
    c.send_raw(b'{"execute":"status","id":"' + b"x" * (70 * 1024) + b'"}\n')
    expect_error(c.read_reply(), "InvalidParameter", "EMSGSIZE")
    expect_closed(c, "a 70 KiB line")
    status_ok(d)


@case
def line_over_64k_without_newline_closes(d):
    c = d.client()
    try:
        c.send_raw(b"{" + b" " * (200 * 1024))
    except (BrokenPipeError, ConnectionResetError):
        pass    # closed before all of it was read: also correct
    expect_error(c.read_reply(), "InvalidParameter", "EMSGSIZE")
    expect_closed(c, "200 KiB without a newline")
    status_ok(d)


@case
def garbage_does_not_hurt(d):
    payloads = [
        bytes(range(256)) * 4 + b"\n",                                # binary, NULs, bad UTF-8
        b'{"execute":"\xff\xfe","id":1}\n',                           # invalid UTF-8 in a string
        b'{"execute":"pf-show","arguments":{"pf":"\xc3\x28"},"id":2}\n',
        b'{"execute":"status",\x00"id":3}\n',                        # NUL inside the object
        b'{"execute":"status","id":"\x00x"}\n',
        b'{"execute":"status","id":4}\x00\n',
        b'{"execute":"status","id":5}{}\n',                           # trailing data
        b'[1,2,3]\n', b'"status"\n', b'{}\n', b'{"execute":null}\n',
        b'{"execute":"status","id":{"a":1}}\n', b'{"execute":"status","id":1.5}\n',
        b'{"execute":"vm-add","arguments":{"name":"' + "é".encode() * 40 + b'","qmp":"/q"}}\n',
        b"\r\n\n\n",                                                  # empty lines: ignored
    ]
    for p in payloads:
        c = d.client()
        c.send_raw(p)
        if p.strip(b"\r\n"):
            r = c.read_reply()
            check("error" in r, "garbage %r answered %r" % (p[:40], r))
            check(r["error"].get("class") in ("InvalidParameter", "CommandNotFound"),
                  "garbage %r: class %r" % (p[:40], r["error"]))
        c.close()
    # A half line, then the client goes away; and one that shuts down writing.
    c = d.client()
    c.send_raw(b'{"execute":"sta')
    c.close()
    c = d.client()
    c.send_raw(b'{"execute":"status","id":1}\n{"execute":"pf-li')
    c.s.shutdown(socket.SHUT_WR)
    check(c.read_reply().get("id") == 1, "reply before the half line")
    expect_closed(c, "half line then EOF")
    # Connect and leave without a byte, many times.
    for _ in range(50):
        Client(d.sock, greet=False).close()
    st = status_ok(d)
    check(st["vms"] == 0, "garbage registered a VM: %r" % st)
    wait_for(lambda: status_ok(d)["clients"] == 1, "the closed clients to be forgotten")


@case
def slow_reader_dropped(d):
    slow = d.client()
    slow.s.settimeout(None)
    req = b'{"execute":"status","id":1}\n' * 100
    state = {"sent": 0, "error": None}

    def flood():
        try:
            # Thousands of requests, never reading a reply; bounded so a
            # daemon that never drops us ends the loop.
            while state["sent"] < 400000:
                slow.s.sendall(req)
                state["sent"] += 100
        except OSError as e:
            state["error"] = e
    t = threading.Thread(target=flood, daemon=True)
    t.start()
    other = d.client()
    answered = 0
    while t.is_alive() or answered == 0:
        check(other.ret("status")["version"] == "0.1.0", "status during the flood")
        answered += 1
    t.join(DEADLINE_S)
    check(state["error"] is not None,
          "the daemon never dropped a client that sent %d requests and read none" % state["sent"])
    check(state["sent"] >= 1000, "dropped after only %d requests" % state["sent"])
    # Its socket is closed by the daemon: POLLHUP on our end.
    p = select.poll()
    p.register(slow.s, select.POLLHUP)
    wait_for(lambda: p.poll(0), "POLLHUP on the dropped client's socket")
    check(answered >= 1, "no status answered during the flood")
    check("dropping it" in d.log_text(), "no log line about dropping the client")
    status_ok(d)


@case
def max_clients(d):
    d.stop()
    d.extra += ["--max-clients", "4"]
    d.start()
    cs = [d.client() for _ in range(4)]
    for c in cs:
        check(c.greeting.get("iovm", {}).get("api") == 1, "greeting %r" % c.greeting)
    fifth = Client(d.sock, greet=False)
    e = fifth.read_json()
    check("error" in e and "id" not in e and "too many" in e["error"]["desc"],
          "5th client got %r" % e)
    expect_closed(fifth, "the 5th client")
    check(cs[0].ret("status")["clients"] == 4, "status clients with 4 connected")
    cs[3].close()

    def again():
        c = Client(d.sock, greet=False)
        first = c.read_json()
        if "iovm" in first:
            return c
        c.close()
        return None
    c = wait_for(again, "a slot to free after one client left")
    check(c.ret("status")["clients"] == 4, "status clients after one left and one came")


def run_as_nobody(sock):
    """Connects as uid/gid 65534 (no supplementary groups) in a forked child;
    returns the lines it received: the greeting and a status reply, or the
    refusal."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(IO_TIMEOUT_S)
            s.connect(sock)
            buf = b""
            while True:
                x = s.recv(65536)
                if not x:
                    break
                buf += x
                if buf.count(b"\n") == 1 and b'"iovm"' in buf:
                    s.sendall(b'{"execute":"status","id":1}\n')
                if buf.count(b"\n") == 2:
                    break
            os.write(wfd, buf)
            code = 0
        except BaseException as e:
            os.write(wfd, ("child: %r" % e).encode())
        os._exit(code)
    os.close(wfd)
    out = b""
    with os.fdopen(rfd, "rb") as f:
        out = f.read()
    _, st = os.waitpid(pid, 0)
    check(os.waitstatus_to_exitcode(st) == 0, "client as uid %d failed: %r" % (NOBODY, out))
    return [json.loads(x) for x in out.decode().splitlines() if x]


def nobody_name():
    try:
        return pwd.getpwuid(NOBODY).pw_name
    except KeyError:
        return None


@case
def access_denied_for_non_member(d):
    # The socket is open to all (0666), the group is root's: uid 65534 is
    # not in it, so the daemon itself must refuse.
    name = nobody_name()
    check(name is None or 0 not in os.getgrouplist(name, NOBODY), "nobody is in group root")
    d.stop()
    os.chmod(d.tmp, 0o755)
    d.extra += ["--socket-mode", "0666", "--group", "root"]
    d.start()
    check(os.stat(d.sock).st_mode & 0o777 == 0o666, "socket mode %o" % os.stat(d.sock).st_mode)
    lines = run_as_nobody(d.sock)
    check(len(lines) == 1, "a refused client got %r" % lines)
    e = lines[0].get("error", {})
    check(e.get("class") == "PermissionDenied" and e.get("errno") == "EACCES"
          and "access denied" in e.get("desc", ""), "refusal %r" % lines[0])
    # Root is always let in.
    st = status_ok(d)
    check(st["clients"] == 1, "the refused client is counted: %r" % st)


@case
def access_for_group_member(d):
    d.stop()
    os.chmod(d.tmp, 0o755)
    group = grp.getgrgid(NOBODY).gr_name
    d.extra += ["--socket-mode", "0660", "--group", group]
    d.start()
    check(os.stat(d.sock).st_gid == NOBODY, "socket group %d" % os.stat(d.sock).st_gid)
    lines = run_as_nobody(d.sock)
    check(len(lines) == 2 and lines[0].get("iovm") and lines[1].get("id") == 1
          and "return" in lines[1], "member of group %s got %r" % (group, lines))


@case
def vms_persist_across_restart(d):
    c = d.client()
    qmp = os.path.join(d.tmp, "g1-qmp.sock")
    added = c.ret("vm-add", {"name": "g1", "qmp": qmp, "priority": "low"})
    c.ret("vm-add", {"name": "g2", "qmp": qmp + "2"})
    c.ret("vm-remove", {"name": "g2"})
    c.close()
    check(d.stop() == 0, "iovmd did not exit 0 on SIGTERM")
    d.start()
    vms = d.client().ret("vm-list")
    check([v["name"] for v in vms] == ["g1"], "vm-list after restart %r" % vms)
    check((vms[0]["qmp"], vms[0]["priority"], vms[0]["connected"]) == (qmp, "low", False),
          "g1 after restart %r (added as %r)" % (vms[0], added))


@case
def vm_add_duplicate_and_remove_unknown(d):
    c = d.client()
    qmp = os.path.join(d.tmp, "q.sock")
    c.ret("vm-add", {"name": "g1", "qmp": qmp})
    expect_error(c.request("vm-add", {"name": "g1", "qmp": qmp + "x"}), "Busy", "EEXIST")
    expect_error(c.request("vm-remove", {"name": "nope"}), "NotFound", "ENOENT")
    check(c.ret("vm-list")[0]["qmp"] == qmp, "the duplicate changed the VM")
    check(c.ret("vm-remove", {"name": "g1"}) == {}, "vm-remove")
    expect_error(c.request("vm-remove", {"name": "g1"}), "NotFound", "ENOENT")
    check(c.ret("vm-list") == [], "vm-list after vm-remove")


@case
def migrate_prepare_and_abort_refused(d):
    c = d.client()
    expect_error(c.request("migrate-prepare", {"vm": "nope"}), "NotFound", "ENOENT")
    expect_error(c.request("migrate-abort", {"vm": "nope"}), "NotFound", "ENOENT")
    c.ret("vm-add", {"name": "g1", "qmp": os.path.join(d.tmp, "absent.sock")})
    r = c.request("migrate-abort", {"vm": "g1"})
    expect_error(r, "NotFound", "ENOENT")
    check("no VFs out" in r["error"]["desc"], "migrate-abort without a prepare: %r" % r)
    # A QEMU that cannot be reached: refused before anything is written.
    r = c.request("migrate-prepare", {"vm": "g1", "timeout_ms": 1000})
    check("error" in r and "vm g1" in r["error"]["desc"], "migrate-prepare, QEMU unreachable: %r" % r)
    expect_error(c.request("migrate-abort", {"vm": "g1"}), "NotFound", "ENOENT")
    check(c.ret("vm-remove", {"name": "g1"}) == {}, "vm-remove after the refusals")


@case
def config_file(d):
    d.stop()
    sock = os.path.join(d.tmp, "from-conf.sock")
    conf = write(os.path.join(d.tmp, "iovm.conf"),
                 "# iovmd test config\n\n"
                 "socket = %s   # a comment after the value\n"
                 "  state=%s\n"
                 "sysfs-root = %s\n"
                 "refresh-interval = 500\n"
                 "max-clients = 2\n"
                 % (sock, os.path.join(d.tmp, "conf.db"), os.path.join(d.tmp, "sys")))
    d.start([IOVMD, "--config", conf], wait=False)
    d.wait_ready(sock)
    c = Client(sock)
    check(c.ret("status")["state"] == os.path.join(d.tmp, "conf.db"), "state from the file")
    second = Client(sock)
    third = Client(sock, greet=False)
    check("error" in third.read_json(), "max-clients = 2 from the file not applied")
    c.close()
    second.close()
    check(d.stop() == 0, "iovmd with a config file did not exit 0")
    # A flag wins over the file.
    flag_sock = os.path.join(d.tmp, "flag.sock")
    d.start([IOVMD, "--config", conf, "--socket", flag_sock], wait=False)
    d.wait_ready(flag_sock)
    check(not os.path.exists(sock), "listening on the file's socket despite --socket")
    d.stop()


def bad_config(d, text, lineno, words):
    conf = write(os.path.join(d.tmp, "bad.conf"), text)
    p = subprocess.run([IOVMD, "--config", conf, "--sysfs-root", os.path.join(d.tmp, "sys"),
                        "--state", os.path.join(d.tmp, "bad.db")],
                       capture_output=True, timeout=DEADLINE_S)
    err = p.stderr.decode()
    check(p.returncode != 0, "iovmd accepted %r (exit 0)" % text)
    check("%s:%d" % (conf, lineno) in err, "the message does not name line %d: %r" % (lineno, err))
    for w in words:
        check(w in err, "the message lacks %r: %r" % (w, err))
    check(not os.path.exists(os.path.join(d.tmp, "bad.sock")), "listened despite a bad config")


@case
def config_file_errors(d):
    d.stop()
    sock = os.path.join(d.tmp, "bad.sock")
    bad_config(d, "socket = %s\n# fine so far\nbogus-key = 1\n" % sock, 3, ["bogus-key"])
    bad_config(d, "socket = %s\nmax-clients = many\n" % sock, 2, ["max-clients", "many"])
    bad_config(d, "socket = %s\nlog-level = loud\n" % sock, 2, ["loud"])
    bad_config(d, "socket = relative.sock\n", 1, ["relative.sock"])
    bad_config(d, "socket = %s\njust words\n" % sock, 2, [])
    p = subprocess.run([IOVMD, "--config", os.path.join(d.tmp, "missing.conf")],
                       capture_output=True, timeout=DEADLINE_S)
    check(p.returncode != 0 and "missing.conf" in p.stderr.decode(),
          "an explicit missing config file: exit %d %r" % (p.returncode, p.stderr))


def second_daemon(d, state):
    second = Daemon(tmp=d.tmp, socket_path=d.sock, state=state)
    second.runs = 100
    second.start(wait=False)
    try:
        rc = second.proc.wait(DEADLINE_S)
    except subprocess.TimeoutExpired:
        second.stop()
        raise Failure("a second iovmd on the same socket is still running")
    text = second.log_text()
    second.stop()
    check(rc != 0, "a second iovmd on the same socket exited 0:\n" + text)
    check("another iovmd" in text or "in use" in text, "no reason given:\n" + text)
    check(os.path.exists(d.sock), "the second iovmd removed the first one's socket")
    status_ok(d)


@case
def second_daemon_same_socket(d):
    second_daemon(d, os.path.join(d.tmp, "other.db"))


@case
def second_daemon_same_socket_and_state(d):
    c = d.client()
    c.ret("vm-add", {"name": "g1", "qmp": os.path.join(d.tmp, "q.sock")})
    second_daemon(d, d.state)
    check([v["name"] for v in c.ret("vm-list")] == ["g1"], "the first daemon's VMs")


@case
def stale_socket_replaced(d):
    # A daemon killed hard leaves its socket file; the next one takes its place.
    d.proc.kill()
    d.proc.wait(DEADLINE_S)
    d.stop()
    check(os.path.exists(d.sock), "no socket file left by SIGKILL (fixture assumption)")
    d.start()
    status_ok(d)


@case
def socket_path_not_a_socket_left_alone(d):
    # --socket naming a file that is not a socket: iovmd must refuse it, not
    # delete the file and listen in its place.
    d.stop()
    path = write(os.path.join(d.tmp, "precious.txt"), "keep me\n")
    d.sock = path
    d.start(wait=False)
    try:
        rc = d.proc.wait(DEADLINE_S)
    except subprocess.TimeoutExpired:
        rc = None
    check(os.path.isfile(path) and open(path).read() == "keep me\n",
          "iovmd deleted the regular file at its --socket path")
    check(rc not in (None, 0), "iovmd ran on a --socket path that is a regular file")
    check("not a socket" in d.log_text(), "no reason given:\n" + d.log_text())
    d.stop()


@case
def sigterm_exits_cleanly(d):
    c = d.client()
    c.ret("status")
    d.proc.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(DEADLINE_S)
    except subprocess.TimeoutExpired:
        raise Failure("iovmd did not exit on SIGTERM")
    check(d.stop() == rc == 0, "exit status %d on SIGTERM" % rc)
    check(not os.path.exists(d.sock), "socket file left behind")
    expect_closed(c, "a client at SIGTERM")


def ctl(d, *args):
    return run_iovmctl(IOVMCTL, ["--timeout", "30"] + list(args), sock=d.sock,
                       timeout=DEADLINE_S * 2)


@case
def iovmctl_against_the_daemon(d):
    rc, out, err = ctl(d, "status")
    check(rc == 0, "iovmctl status: exit %d %r" % (rc, err))
    check("0.1.0" in out and d.state in out, "iovmctl status output %r" % out)
    rc, out, err = ctl(d, "pf", "list")
    check(rc == 0 and ETH0 in out and "eth1" in out, "iovmctl pf list %r" % out)
    rc, out, err = ctl(d, "vf", "list", "--pf", "eth0")
    rows = [l.split()[0] for l in out.splitlines()[1:] if l.strip()]
    check(rc == 0 and rows == ETH0_VFS, "iovmctl vf list --pf eth0 %r" % rows)
    rc, out, err = ctl(d, "--json", "vf", "show", "eth0/1")
    check(rc == 0, "iovmctl --json vf show: exit %d %r" % (rc, err))
    shown = json.loads(out)
    check(shown == d.client().ret("vf-show", {"vf": "0000:01:10.2"}),
          "iovmctl --json vf show eth0/1 %r" % shown)
    rc, out, err = ctl(d, "vf", "show", "eth9/0")
    check(rc != 0, "iovmctl vf show eth9/0 exited 0")
    check(out == "" and "eth9/0" in err, "iovmctl vf show eth9/0: %r %r" % (out, err))


@case
def dot_names_refused_alike_by_iovmd_and_iovmctl(d):
    """iovmctl checks names with the daemon's code: the same refusal, the
    same words, before anything is sent."""
    c = d.client()
    for cmd, args, argv in (
            ("vm-add", {"name": ".", "qmp": "/x"}, ["vm", "add", ".", "--qmp", "/x"]),
            ("vm-add", {"name": "..", "qmp": "/x"}, ["vm", "add", "..", "--qmp", "/x"]),
            ("vm-remove", {"name": ".."}, ["vm", "remove", ".."]),
            ("attach", {"vm": ".."}, ["attach", ".."])):
        r = c.request(cmd, args)
        expect_error(r, "InvalidParameter", "EINVAL")
        desc = r["error"]["desc"]
        eq_text = "%s: argument '%s' must be 1..63 characters of A-Z a-z 0-9 _ . : -" % (
            cmd, "vm" if cmd == "attach" else "name")
        check(desc == eq_text, "iovmd's refusal of %r: %r" % (args, desc))
        rc, out, stderr = ctl(d, *argv)
        err = stderr.splitlines()
        check(rc == 2 and out == "", "iovmctl %s: exit %d %r" % (" ".join(argv), rc, out))
        check(err and err[0] == "iovmctl: " + desc, "iovmctl %s: %r, iovmd said %r"
              % (" ".join(argv), err, desc))
    check(c.ret("vm-list") == [], "no VM registered")


def main():
    global IOVMD, IOVMCTL, MAKE_SYSFS
    if len(sys.argv) < 4:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    IOVMD, IOVMCTL, MAKE_SYSFS = (os.path.abspath(a) for a in sys.argv[1:4])
    Daemon.iovmd, Daemon.make_sysfs = IOVMD, MAKE_SYSFS
    only = sys.argv[4:]
    if os.geteuid() != 0:
        print("1..0 # SKIP iovmd tests need root (access checks run a client as uid %d)"
              % NOBODY)
        return 77
    return run_cases(case, only, fixture=Daemon)


if __name__ == "__main__":
    sys.exit(main())