#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Tests of iovmctl against a fake iovmd on a UNIX socket in a temp dir.

The fake daemon greets, records every request line, and answers as the test
says: canned returns per command, error replies, PROGRESS events, a
connection closed mid-reply, no reply at all, a malformed line. Each test
checks what iovmctl sent (exact arguments and their JSON types), its stdout
(tables aligned, --json equal to the canned value), stderr and exit status.

usage: test-iovmctl.py PATH-TO-IOVMCTL
"""
import errno
import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import time

from iovmtest import Cases, FakeIovmd, check, check_type, eq, run_cases, run_iovmctl, send_json

IOVMCTL = None
TMP = None

PF0 = {"pf": "0000:01:00.0", "netdev": "eth0", "driver": "igb", "vendor": "8086",
       "device": "10c9", "total_vfs": 7, "num_vfs": 3, "numa_node": -1, "link": "up",
       "desired_vfs": 3, "desired_driver": "vfio-pci"}
PF1 = {"pf": "0000:02:00.0", "netdev": "", "driver": "ixgbe", "vendor": "8086",
       "device": "10fb", "total_vfs": 63, "num_vfs": 0, "numa_node": 1, "link": "unknown",
       "desired_vfs": None, "desired_driver": None}


def vf(index, state="free", vm="", mode="", users=0, bps=0, cfg=None, driver="vfio-pci"):
    return {"vf": "0000:01:10.%d" % index, "pf": "0000:01:00.0", "pf_netdev": "eth0",
            "index": index, "driver": driver, "iommu_group": 20 + index, "netdev": "",
            "state": state, "vm": vm, "mode": mode, "users": users,
            "config": cfg if cfg is not None else {}, "throughput_bps": bps}


VFS = [
    vf(0, bps=0, driver=""),
    vf(1, state="attached", vm="guest-long-name", mode="exclusive", users=1, bps=12345678,
       cfg={"mac": "02:00:00:00:00:01", "vlan": 100, "qos": 0, "rate": 500,
            "spoofchk": True, "trust": False, "link": "auto"}),
    vf(2, state="attached", vm="g2", mode="shared", users=2, bps=999,
       cfg={"mac": "02:00:00:00:00:02", "vlan": 0, "rate": 0}),
]
VMS = [
    {"name": "g1", "qmp": "/run/vms/g1/qmp.sock", "priority": "high", "numa_node": 0,
     "connected": True, "vfs": ["0000:01:10.1"]},
    {"name": "guest-two", "qmp": "/run/q2.sock", "priority": "normal", "numa_node": -1,
     "connected": False, "vfs": []},
]
STATUS = {"version": "0.1.0", "api": 1, "uptime_s": 90061, "pfs": 2, "vfs": 3, "vfs_free": 1,
          "vms": 2, "assignments": 2, "clients": 1, "open_intents": 0,
          "state": "/var/lib/iovm/iovm.db"}


def canned(cmd, args):
    """The return value of the fake daemon for a command."""
    args = args or {}
    if cmd == "status":
        return STATUS
    if cmd == "pf-list":
        return [PF0, PF1]
    if cmd == "pf-show":
        return dict(PF0, vfs=VFS)
    if cmd == "pf-set-vfs":
        return dict(PF0, num_vfs=args.get("count", 0), desired_vfs=args.get("count"),
                    desired_driver=args.get("driver"))
    if cmd == "vf-list":
        return VFS
    if cmd in ("vf-show", "vf-set"):
        return VFS[1]
    if cmd == "vm-add":
        return dict(VMS[0], name=args.get("name"), qmp=args.get("qmp"))
    if cmd == "vm-list":
        return VMS
    if cmd == "vm-remove":
        return {}
    if cmd == "attach":
        ret = {"vm": args.get("vm"), "vf": "0000:01:10.2", "devid": "iovm-0000-01-10.2",
               "port": "hp1", "mode": args.get("mode", "exclusive")}
        if args.get("mode") == "shared":
            ret.update(macvtap="iovmtap3", mac="02:00:00:00:00:33",
                       reason="shared: no free VF; lowest throughput 0 bit/s of 1 shareable VFs with room")
        return ret
    if cmd == "detach":
        return {"vm": args.get("vm"), "vf": "0000:01:10.2"}
    return {}


def event(name, data):
    return {"event": name, "data": data, "timestamp": {"seconds": 1, "microseconds": 0}}


def reply_canned(d, conn, req):
    send_json(conn, {"return": canned(req.get("execute"), req.get("arguments")), "id": req.get("id")})


class FakeDaemon(FakeIovmd):
    """A fake iovmd in the run's temp dir; answer(fake, conn, request)
    decides what each request gets (default: the canned return)."""

    def __init__(self, answer=None, greeting=None):
        super().__init__(TMP, answer or reply_canned, greeting)


def run(args, daemon=None, env=None, timeout=60, cwd=None):
    return run_iovmctl(IOVMCTL, args, sock=daemon.path if daemon is not None else None,
                       env=env, timeout=timeout, cwd=cwd)


test = Cases()   # @test appends a case


def parse_table(text):
    """Splits an aligned table into rows of cells by the header's column
    starts, checking every cell starts at its column (the column before it
    ends in spaces) -> (headers, rows)."""
    lines = [l for l in text.split("\n") if l]
    header = lines[0]
    starts = []
    for i, ch in enumerate(header):
        if ch != " " and (i == 0 or header[i - 1] == " "):
            starts.append(i)
    heads = header.split()
    eq(len(starts), len(heads), "header columns")
    rows = []
    for line in lines[1:]:
        cells = []
        for c, s in enumerate(starts):
            end = starts[c + 1] if c + 1 < len(starts) else len(line)
            check(len(line) > s, "row %r reaches column %s" % (line, heads[c]))
            check(line[s] != " ", "cell of column %s starts at its column in %r" % (heads[c], line))
            if c + 1 < len(starts):
                check(line[end - 1] == " " and line[end - 2] == " ",
                      "two spaces before column %s in %r" % (heads[c + 1], line))
            cells.append(line[s:end].rstrip())
        check(" ".join(cells).split() == line.split(), "cells rebuild row %r" % line)
        rows.append(dict(zip(heads, cells)))
    return heads, rows


def fmt_bps(bps):
    units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"]
    u = 0
    v = float(bps)
    while v >= 1000 and u + 1 < len(units):
        v /= 1000
        u += 1
    return "%.0f %s" % (v, units[u]) if u == 0 else "%.1f %s" % (v, units[u])


def one_request(d, cmd, args):
    """The daemon got exactly one request: cmd with exactly args."""
    eq(len(d.requests), 1, "number of requests")
    req = d.requests[0]
    eq(req.get("execute"), cmd, "execute")
    check_type(req.get("id"), int, "id")
    eq(set(req) - {"execute", "arguments", "id"}, set(), "top-level keys")
    eq(req.get("arguments", {}), args, "arguments of " + cmd)
    return req


def ok(rc, out, err):
    eq(rc, 0, "exit status (stderr %r)" % err)


# ---- commands -----------------------------------------------------------

@test
def status_text():
    with FakeDaemon() as d:
        rc, out, err = run(["status"], d)
    ok(rc, out, err)
    one_request(d, "status", {})
    lines = out.splitlines()
    check("version: 0.1.0" in lines, "version line")
    check("vfs_free: 1" in lines, "vfs_free line")
    check("state: /var/lib/iovm/iovm.db" in lines, "state line")
    # 90061 s = 1 day, 1 hour, 1 minute, 1 second
    check("uptime: 1d 01:01:01" in lines, "uptime line in %r" % lines)
    eq(err, "", "stderr")


@test
def status_json():
    with FakeDaemon() as d:
        rc, out, err = run(["--json", "status"], d)
    ok(rc, out, err)
    eq(json.loads(out), STATUS, "--json status")


@test
def json_equals_canned_for_every_listing():
    for argv, cmd in ((["pf", "list"], "pf-list"), (["vf", "list"], "vf-list"),
                      (["vm", "list"], "vm-list"), (["pf", "show", "eth0"], "pf-show"),
                      (["vf", "show", "eth0/1"], "vf-show")):
        with FakeDaemon() as d:
            rc, out, err = run(["--json"] + argv, d)
        ok(rc, out, err)
        req = d.requests[0]
        eq(json.loads(out), canned(cmd, req.get("arguments")), "--json " + " ".join(argv))


@test
def pf_list_table():
    with FakeDaemon() as d:
        rc, out, err = run(["pf", "list"], d)
    ok(rc, out, err)
    one_request(d, "pf-list", {})
    heads, rows = parse_table(out)
    eq(heads, ["PF", "NETDEV", "DRIVER", "ID", "VFS", "TOTAL", "NUMA", "LINK", "DESIRED"], "headers")
    eq(len(rows), 2, "rows")
    for pf, row in zip((PF0, PF1), rows):
        eq(row["PF"], pf["pf"], "PF")
        eq(row["NETDEV"], pf["netdev"] or "-", "NETDEV")
        eq(row["DRIVER"], pf["driver"], "DRIVER")
        eq(row["ID"], pf["vendor"] + ":" + pf["device"], "ID")
        eq(row["VFS"], str(pf["num_vfs"]), "VFS")
        eq(row["TOTAL"], str(pf["total_vfs"]), "TOTAL")
        eq(row["NUMA"], str(pf["numa_node"]), "NUMA")
        eq(row["LINK"], pf["link"], "LINK")
        want = "-" if pf["desired_vfs"] is None else "%d %s" % (pf["desired_vfs"], pf["desired_driver"])
        eq(row["DESIRED"], want, "DESIRED")


def check_vf_rows(rows, vfs):
    eq(len(rows), len(vfs), "VF rows")
    for v, row in zip(vfs, rows):
        cfg = v["config"]
        eq(row["VF"], v["vf"], "VF")
        eq(row["PF"], v["pf_netdev"], "PF")
        eq(row["IDX"], str(v["index"]), "IDX")
        eq(row["DRIVER"], v["driver"] or "-", "DRIVER")
        eq(row["STATE"], v["state"], "STATE")
        eq(row["VM"], v["vm"] or "-", "VM")
        eq(row["MODE"], v["mode"] or "-", "MODE")
        eq(row["USERS"], str(v["users"]), "USERS")
        eq(row["MAC"], cfg.get("mac", "-"), "MAC")
        eq(row["VLAN"], str(cfg["vlan"]) if cfg.get("vlan") else "-", "VLAN")
        eq(row["RATE"], "%d Mbit/s" % cfg["rate"] if cfg.get("rate") else "-", "RATE")
        eq(row["THROUGHPUT"], fmt_bps(v["throughput_bps"]), "THROUGHPUT")


VF_HEADS = ["VF", "PF", "IDX", "DRIVER", "STATE", "VM", "MODE", "USERS", "MAC", "VLAN", "RATE",
            "THROUGHPUT"]


@test
def vf_list_table():
    with FakeDaemon() as d:
        rc, out, err = run(["vf", "list"], d)
    ok(rc, out, err)
    one_request(d, "vf-list", {})
    heads, rows = parse_table(out)
    eq(heads, VF_HEADS, "headers")
    check_vf_rows(rows, VFS)
    eq(rows[1]["THROUGHPUT"], "12.3 Mbit/s", "human throughput")
    eq(rows[2]["THROUGHPUT"], "999 bit/s", "small throughput")


@test
def vf_list_pf():
    with FakeDaemon() as d:
        rc, out, err = run(["vf", "list", "--pf", "eth0"], d)
    ok(rc, out, err)
    one_request(d, "vf-list", {"pf": "eth0"})


@test
def pf_show():
    with FakeDaemon() as d:
        rc, out, err = run(["pf", "show", "0000:01:00.0"], d)
    ok(rc, out, err)
    one_request(d, "pf-show", {"pf": "0000:01:00.0"})
    head, _, table = out.partition("\n\n")
    lines = head.splitlines()
    for k in ("pf", "netdev", "driver", "vendor", "device", "link", "desired_driver"):
        check("%s: %s" % (k, PF0[k]) in lines, "line %s in %r" % (k, lines))
    check("total_vfs: 7" in lines, "total_vfs line")
    heads, rows = parse_table(table)
    eq(heads, VF_HEADS, "VF table headers")
    check_vf_rows(rows, VFS)


@test
def pf_set_vfs():
    with FakeDaemon() as d:
        rc, out, err = run(["pf", "set-vfs", "eth0", "7", "--driver", "vfio-pci"], d)
    ok(rc, out, err)
    req = one_request(d, "pf-set-vfs", {"pf": "eth0", "count": 7, "driver": "vfio-pci"})
    check_type(req["arguments"]["count"], int, "count")
    check("7 VFs" in out, "summary line %r" % out)
    with FakeDaemon() as d:
        rc, out, err = run(["pf", "set-vfs", "--driver", "host", "eth0", "0"], d)
    ok(rc, out, err)
    one_request(d, "pf-set-vfs", {"pf": "eth0", "count": 0, "driver": "host"})
    with FakeDaemon() as d:
        rc, out, err = run(["pf", "set-vfs", "0000:01:00.0", "3"], d)
    ok(rc, out, err)
    one_request(d, "pf-set-vfs", {"pf": "0000:01:00.0", "count": 3})
    with FakeDaemon() as d:
        rc, out, err = run(["pf", "set-vfs", "eth0", "4", "--live", "replug", "--timeout-ms", "60000"], d)
    ok(rc, out, err)
    one_request(d, "pf-set-vfs", {"pf": "eth0", "count": 4, "live": "replug", "timeout_ms": 60000})


@test
def vf_show():
    with FakeDaemon() as d:
        rc, out, err = run(["vf", "show", "eth0/1"], d)
    ok(rc, out, err)
    one_request(d, "vf-show", {"vf": "eth0/1"})
    lines = out.splitlines()
    for line in ("vf: 0000:01:10.1", "state: attached", "vm: guest-long-name", "mac: 02:00:00:00:00:01",
                 "vlan: 100", "trust: no", "spoofchk: yes", "throughput: 12.3 Mbit/s", "netdev: -"):
        check(line in lines, "line %r in %r" % (line, lines))


@test
def vf_set_every_option():
    argv = ["vf", "set", "0000:01:10.2", "--mac", "02:aa:bb:cc:dd:ee", "--vlan", "100", "--qos", "3",
            "--rate", "500", "--trust", "on", "--spoofchk", "off", "--link", "disable"]
    with FakeDaemon() as d:
        rc, out, err = run(argv, d)
    ok(rc, out, err)
    req = one_request(d, "vf-set", {"vf": "0000:01:10.2", "mac": "02:aa:bb:cc:dd:ee", "vlan": 100,
                                    "qos": 3, "rate": 500, "trust": True, "spoofchk": False,
                                    "link": "disable"})
    a = req["arguments"]
    for k, t in (("vlan", int), ("qos", int), ("rate", int), ("trust", bool), ("spoofchk", bool),
                 ("link", str), ("mac", str)):
        check_type(a[k], t, k)
    check("vf: 0000:01:10.1" in out.splitlines(), "shows the returned VF")


@test
def vf_set_single_options():
    for opt, val, key, want in (("--trust", "off", "trust", False), ("--spoofchk", "on", "spoofchk", True),
                                ("--link", "auto", "link", "auto"), ("--link", "enable", "link", "enable"),
                                ("--vlan", "0", "vlan", 0), ("--rate", "0", "rate", 0)):
        with FakeDaemon() as d:
            rc, out, err = run(["vf", "set", "eth0/3", opt, val], d)
        ok(rc, out, err)
        req = one_request(d, "vf-set", {"vf": "eth0/3", key: want})
        check_type(req["arguments"][key], type(want), key)


@test
def vm_add():
    with FakeDaemon() as d:
        rc, out, err = run(["vm", "add", "g1", "--qmp", "/run/vms/g1/qmp.sock", "--priority", "high",
                            "--numa-node", "1"], d)
    ok(rc, out, err)
    req = one_request(d, "vm-add", {"name": "g1", "qmp": "/run/vms/g1/qmp.sock", "priority": "high",
                                    "numa_node": 1})
    check_type(req["arguments"]["numa_node"], int, "numa_node")
    check("name: g1" in out.splitlines(), "shows the VM")
    with FakeDaemon() as d:
        rc, out, err = run(["vm", "add", "g2", "--qmp", "/q.sock"], d)
    ok(rc, out, err)
    one_request(d, "vm-add", {"name": "g2", "qmp": "/q.sock"})
    with FakeDaemon() as d:
        rc, out, err = run(["vm", "add", "g4", "--qmp", "/q.sock", "--qga", "/run/vms/g4/qga.sock"], d)
    ok(rc, out, err)
    one_request(d, "vm-add", {"name": "g4", "qmp": "/q.sock", "qga": "/run/vms/g4/qga.sock"})


@test
def vm_add_relative_qmp_made_absolute():
    with FakeDaemon() as d:
        rc, out, err = run(["vm", "add", "g3", "--qmp", "sub/qmp.sock"], d, cwd=TMP)
    ok(rc, out, err)
    one_request(d, "vm-add", {"name": "g3", "qmp": os.path.join(os.path.realpath(TMP), "sub/qmp.sock")})


@test
def vm_list_table():
    with FakeDaemon() as d:
        rc, out, err = run(["vm", "list"], d)
    ok(rc, out, err)
    one_request(d, "vm-list", {})
    heads, rows = parse_table(out)
    eq(heads, ["NAME", "PRIORITY", "NUMA", "CONNECTED", "VFS", "QMP"], "headers")
    for vm, row in zip(VMS, rows):
        eq(row["NAME"], vm["name"], "NAME")
        eq(row["PRIORITY"], vm["priority"], "PRIORITY")
        eq(row["NUMA"], str(vm["numa_node"]), "NUMA")
        eq(row["CONNECTED"], "yes" if vm["connected"] else "no", "CONNECTED")
        eq(row["VFS"], ", ".join(vm["vfs"]) or "-", "VFS")
        eq(row["QMP"], vm["qmp"], "QMP")


@test
def vm_remove():
    with FakeDaemon() as d:
        rc, out, err = run(["vm", "remove", "g1"], d)
    ok(rc, out, err)
    one_request(d, "vm-remove", {"name": "g1"})
    eq(out, "", "vm remove prints nothing")
    with FakeDaemon() as d:
        rc, out, err = run(["--json", "vm", "remove", "g1"], d)
    ok(rc, out, err)
    eq(json.loads(out), {}, "--json vm remove")


@test
def attach_every_option():
    with FakeDaemon() as d:
        rc, out, err = run(["attach", "g1", "--vf", "eth0/2", "--mode", "exclusive", "--mac",
                            "02:00:00:00:00:09", "--vlan", "10", "--failover-pair-id", "net0",
                            "--timeout-ms", "5000"], d)
    ok(rc, out, err)
    req = one_request(d, "attach", {"vm": "g1", "vf": "eth0/2", "mode": "exclusive",
                                    "mac": "02:00:00:00:00:09", "vlan": 10, "failover_pair_id": "net0",
                                    "timeout_ms": 5000})
    check_type(req["arguments"]["vlan"], int, "vlan")
    check_type(req["arguments"]["timeout_ms"], int, "timeout_ms")
    check("0000:01:10.2" in out and "iovm-0000-01-10.2" in out and "g1" in out, "confirmation %r" % out)
    with FakeDaemon() as d:
        rc, out, err = run(["attach", "g1", "--pf", "eth0", "--mode", "shared"], d)
    ok(rc, out, err)
    one_request(d, "attach", {"vm": "g1", "pf": "eth0", "mode": "shared"})
    want = canned("attach", {"vm": "g1", "mode": "shared"})
    lines = out.splitlines()
    check("shared" in lines[0] and want["macvtap"] in lines[0], "shared attach summary %r" % lines)
    eq(lines[1:], ["reason: " + want["reason"]], "the policy's reason")
    with FakeDaemon() as d:
        rc, out, err = run(["--json", "attach", "g1"], d)
    ok(rc, out, err)
    one_request(d, "attach", {"vm": "g1"})
    eq(json.loads(out), canned("attach", {"vm": "g1"}), "--json attach")


@test
def detach():
    with FakeDaemon() as d:
        rc, out, err = run(["detach", "g1", "--vf", "0000:01:10.2", "--timeout-ms", "1000"], d)
    ok(rc, out, err)
    one_request(d, "detach", {"vm": "g1", "vf": "0000:01:10.2", "timeout_ms": 1000})
    check("detached 0000:01:10.2 from g1" in out, "confirmation %r" % out)
    with FakeDaemon() as d:
        rc, out, err = run(["detach", "g1"], d)
    ok(rc, out, err)
    one_request(d, "detach", {"vm": "g1"})


def by_throughput(vfs):
    return sorted(vfs, key=lambda v: (-v["throughput_bps"], v["vf"]))


@test
def top_text():
    with FakeDaemon() as d:
        rc, out, err = run(["top", "--count", "2", "--interval", "0.1"], d)
    ok(rc, out, err)
    eq([r["execute"] for r in d.requests], ["vf-list", "vf-list"], "one vf-list per refresh")
    eq(len({r["id"] for r in d.requests}), 2, "distinct ids")
    eq(d.connections, 1, "one connection")
    frames = [f for f in out.split("iovmctl top") if f.strip()]
    eq(len(frames), 2, "refreshes")
    for f in frames:
        _, _, table = f.partition("\n\n")
        heads, rows = parse_table(table)
        eq(heads, ["VF", "PF", "IDX", "STATE", "VM", "MODE", "THROUGHPUT"], "headers")
        eq([r["VF"] for r in rows], [v["vf"] for v in by_throughput(VFS)], "sorted by throughput")
        eq([r["THROUGHPUT"] for r in rows], [fmt_bps(v["throughput_bps"]) for v in by_throughput(VFS)],
           "throughput column")


@test
def top_json():
    with FakeDaemon() as d:
        rc, out, err = run(["--json", "top", "--count", "3", "--interval", "0.1", "--pf", "eth0"], d)
    ok(rc, out, err)
    eq([r.get("arguments") for r in d.requests], [{"pf": "eth0"}] * 3, "vf-list arguments")
    lines = out.splitlines()
    eq(len(lines), 3, "one JSON array per refresh")
    for line in lines:
        eq(json.loads(line), by_throughput(VFS), "sorted array")


@test
def raw_command():
    with FakeDaemon() as d:
        rc, out, err = run(["raw", "vf-show", '{"vf":"eth0/2"}'], d)
    ok(rc, out, err)
    one_request(d, "vf-show", {"vf": "eth0/2"})
    eq(json.loads(out), VFS[1], "raw prints JSON")
    with FakeDaemon() as d:
        rc, out, err = run(["raw", "query-commands"], d)
    ok(rc, out, err)
    eq(d.requests[0]["execute"], "query-commands", "raw without arguments")
    check("arguments" not in d.requests[0], "no arguments member")


@test
def socket_from_environment():
    with FakeDaemon() as d:
        rc, out, err = run(["status"], env={"IOVM_SOCKET": d.path})
    ok(rc, out, err)
    one_request(d, "status", {})


@test
def request_is_one_line_per_request():
    with FakeDaemon() as d:
        rc, out, err = run(["vf", "show", "eth0/2"], d)
    ok(rc, out, err)
    eq(len(d.raw_lines), 1, "lines sent")
    check(d.raw_lines[0].endswith(b"\n") and d.raw_lines[0].count(b"\n") == 1, "newline-terminated")


# ---- errors and events --------------------------------------------------

def error_answer(errno_name, desc, cls="Busy"):
    def answer(d, conn, req):
        err = {"class": cls, "desc": desc}
        if errno_name is not None:
            err["errno"] = errno_name
        send_json(conn, {"error": err, "id": req["id"]})
    return answer


@test
def error_reply_exit_status_is_errno():
    for name in ("EINVAL", "ENOENT", "ENODEV", "EBUSY", "EEXIST", "ETIMEDOUT", "EOPNOTSUPP", "EACCES",
                 "EPERM", "ENOSYS", "ECONNRESET", "ECONNREFUSED", "EIO"):
        num = getattr(errno, name)
        desc = "vf 0000:01:10.2: something failed (%s)" % name
        with FakeDaemon(error_answer(name, desc)) as d:
            rc, out, err = run(["vf", "show", "eth0/2"], d)
        eq(rc, num, "exit status for " + name)
        eq(err, "iovmctl: %s\n" % desc, "stderr for " + name)
        eq(out, "", "stdout for " + name)


@test
def error_reply_unknown_errno_exits_1():
    for name in ("EWHATEVER", None):
        with FakeDaemon(error_answer(name, "it broke", "GenericError")) as d:
            rc, out, err = run(["--json", "status"], d)
        eq(rc, 1, "exit status for %r" % name)
        eq(err, "iovmctl: it broke\n", "stderr")
        eq(out, "", "nothing on stdout with --json")


def progress_answer(d, conn, req):
    me = req["id"]
    send_json(conn, event("PROGRESS", {"command": req["execute"], "id": me, "step": "unbinding VF 1 of 3",
                                  "done": 1, "total": 3}))
    time.sleep(1.5)
    send_json(conn, event("PROGRESS", {"command": "attach", "id": me + 1000, "step": "someone else's step",
                                  "done": 1, "total": 2}))
    send_json(conn, event("VFS_CHANGED", {"pf": "0000:01:00.0", "num_vfs": 3, "driver": "vfio-pci"}))
    send_json(conn, event("PROGRESS", {"command": req["execute"], "id": me, "step": "binding VF 3 of 3",
                                  "done": 3, "total": 3}))
    send_json(conn, {"return": canned(req["execute"], req.get("arguments")), "id": req["id"]})


@test
def progress_events_after_a_second():
    with FakeDaemon(progress_answer) as d:
        rc, out, err = run(["pf", "set-vfs", "eth0", "3"], d)
    ok(rc, out, err)
    lines = err.splitlines()
    # the server waited 1.5 s after the request before this step, so it is due
    check("iovmctl: binding VF 3 of 3 (3/3)" in lines, "progress line in %r" % lines)
    check("someone else" not in err, "another request's progress ignored")
    check("VFS_CHANGED" not in err and "VFS_CHANGED" not in out, "other events ignored")
    check("3 VFs" in out, "reply printed after the events")
    with FakeDaemon(progress_answer) as d:
        rc, out, err = run(["--json", "pf", "set-vfs", "eth0", "3"], d)
    ok(rc, out, err)
    eq(json.loads(out), canned("pf-set-vfs", {"count": 3}), "--json after progress")


def run_on_tty(args, daemon, stream):
    """Runs iovmctl with stdout or stderr (stream) on a pseudo-terminal;
    returns (exit status, what the terminal got, the other stream)."""
    master, slave = pty.openpty()
    kw = {"stdout": slave, "stderr": subprocess.PIPE} if stream == "stdout" else \
        {"stdout": subprocess.PIPE, "stderr": slave}
    p = subprocess.Popen([IOVMCTL, "--socket", daemon.path] + args, **kw)
    os.close(slave)
    got = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:   # EIO: the child closed the terminal
            break
        if not chunk:
            break
        got += chunk
    other = (p.stderr or p.stdout).read().decode()
    rc = p.wait(timeout=60)
    os.close(master)
    return rc, got.decode(), other


@test
def progress_on_a_terminal_updates_one_line():
    with FakeDaemon(progress_answer) as d:
        rc, tty, out = run_on_tty(["pf", "set-vfs", "eth0", "3"], d, "stderr")
    eq(rc, 0, "exit status")
    check("\r\x1b[Kiovmctl: binding VF 3 of 3 (3/3)" in tty, "progress in place in %r" % tty)
    check(tty.endswith("\r\x1b[K"), "progress line cleared before the reply: %r" % tty)
    check("\n" not in tty, "no new lines on the terminal: %r" % tty)
    check("3 VFs" in out, "reply on stdout")


@test
def top_on_a_terminal_redraws():
    with FakeDaemon() as d:
        rc, tty, err = run_on_tty(["top", "--count", "2", "--interval", "0.1"], d, "stdout")
    eq(rc, 0, "exit status (stderr %r)" % err)
    eq(tty.count("\x1b[H\x1b[2J"), 2, "screen cleared once per refresh")
    frame = tty.split("\x1b[H\x1b[2J")[-1].replace("\r\n", "\n")
    _, _, table = frame.partition("\n\n")
    heads, rows = parse_table(table)
    eq([r["VF"] for r in rows], [v["vf"] for v in by_throughput(VFS)], "sorted by throughput")


@test
def replies_for_other_ids_are_skipped():
    def answer(d, conn, req):
        send_json(conn, {"return": {"not": "mine"}, "id": req["id"] + 7})
        send_json(conn, {"error": {"class": "Busy", "desc": "not mine", "errno": "EBUSY"}, "id": "x"})
        send_json(conn, {"return": STATUS, "id": req["id"]})
    with FakeDaemon(answer) as d:
        rc, out, err = run(["--json", "status"], d)
    ok(rc, out, err)
    eq(json.loads(out), STATUS, "the reply with our id")


@test
def closed_mid_reply():
    def answer(d, conn, req):
        conn.sendall(b'{"return":{"version":"0.1.0","up')
        return "close"
    with FakeDaemon(answer) as d:
        rc, out, err = run(["status"], d)
    check(rc != 0, "non-zero exit")
    eq(err, "iovmctl: the daemon closed the connection before replying to 'status'\n", "stderr")
    eq(out, "", "stdout")


@test
def closed_before_greeting():
    with FakeDaemon(greeting="") as d:
        # a server that accepts and closes at once
        d.client = lambda conn: conn.close()
        rc, out, err = run(["status"], d)
    check(rc != 0, "non-zero exit")
    check("closed the connection before its greeting" in err, "stderr %r" % err)


@test
def no_reply_times_out():
    with FakeDaemon(lambda d, conn, req: time.sleep(5)) as d:
        rc, out, err = run(["--timeout", "1", "vf", "list"], d)
    eq(rc, 1, "exit status")
    eq(err, "iovmctl: no reply from the daemon to 'vf-list' within 1 s\n", "stderr")
    eq(out, "", "stdout")


@test
def malformed_reply():
    def answer(d, conn, req):
        conn.sendall(b"this is not json\n")
    with FakeDaemon(answer) as d:
        rc, out, err = run(["status"], d)
    eq(rc, 1, "exit status")
    eq(err, "iovmctl: malformed reply from the daemon: this is not json\n", "stderr")
    eq(out, "", "stdout")
    # valid JSON, but neither a return nor an error
    with FakeDaemon(lambda d, conn, req: send_json(conn, {"id": req["id"], "huh": 1})) as d:
        rc, out, err = run(["status"], d)
    eq(rc, 1, "exit status for a reply without return")
    check(err.startswith("iovmctl: malformed reply from the daemon"), "stderr %r" % err)


@test
def bad_greeting():
    with FakeDaemon(greeting='{"QMP":{"version":{}}}\n') as d:
        rc, out, err = run(["status"], d)
    eq(rc, 1, "exit status")
    eq(err, "iovmctl: %s: unexpected greeting, is this an iovmd socket?\n" % d.path, "stderr")
    eq(d.requests, [], "nothing sent to a server that is not iovmd")


@test
def refused_instead_of_greeted():
    for name, desc in (("EACCES", "access denied: uid 1000 is neither root nor in group iovm"),
                       ("EUSERS", "too many clients (128); try again later")):
        num = getattr(errno, name)
        line = json.dumps({"error": {"class": "GenericError", "desc": desc, "errno": name}}) + "\n"
        with FakeDaemon(greeting=line) as d:
            d.client = lambda conn, line=line: (conn.sendall(line.encode()), conn.close())
            rc, out, err = run(["status"], d)
        eq(rc, num, "exit status for " + name)
        eq(err, "iovmctl: %s: %s\n" % (d.path, desc), "stderr for " + name)


@test
def cannot_connect():
    path = os.path.join(TMP, "absent.sock")
    rc, out, err = run(["--socket", path, "status"])
    eq(rc, 1, "exit status")
    eq(err, "iovmctl: cannot connect to %s: No such file or directory (is iovmd running?)\n" % path,
       "stderr")
    rc, out, err = run(["status"], env={"IOVM_SOCKET": path})
    check(path in err, "socket from the environment named in %r" % err)


# ---- usage errors -------------------------------------------------------

USAGE_ERRORS = [
    [],
    ["frobnicate"],
    ["pf"],
    ["pf", "frob"],
    ["status", "extra"],
    ["--timeout", "soon", "status"],
    ["--bogus", "status"],
    ["pf", "show"],
    ["pf", "show", "bad/name"],
    ["pf", "set-vfs", "eth0"],
    ["pf", "set-vfs", "eth0", "many"],
    ["pf", "set-vfs", "eth0", "-1"],
    ["pf", "set-vfs", "eth0", "65536"],
    ["pf", "set-vfs", "eth0", "2", "--driver", "igbvf"],
    ["pf", "set-vfs", "eth0", "2", "--live", "sideways"],
    ["vf", "show"],
    ["vf", "show", "eth0"],
    ["vf", "show", "eth0/x"],
    ["vf", "show", "0000:01:10"],
    ["vf", "list", "--pf"],
    ["vf", "list", "extra"],
    ["vf", "set", "eth0/2"],
    ["vf", "set", "eth0/2", "--vlan", "4095"],
    ["vf", "set", "eth0/2", "--vlan", "ten"],
    ["vf", "set", "eth0/2", "--vlan", "1", "--qos", "8"],
    ["vf", "set", "eth0/2", "--qos", "3"],
    ["vf", "set", "eth0/2", "--rate", "-5"],
    ["vf", "set", "eth0/2", "--trust", "yes"],
    ["vf", "set", "eth0/2", "--spoofchk", "1"],
    ["vf", "set", "eth0/2", "--link", "up"],
    ["vf", "set", "eth0/2", "--mac", "02:00:00:00:00"],
    ["vf", "set", "eth0/2", "--mac", "01:00:00:00:00:01"],
    ["vf", "set", "eth0/2", "--mac", "zz:00:00:00:00:01"],
    ["vf", "set", "eth0/2", "--color", "red"],
    ["vm", "add", "g1"],
    ["vm", "add", "--qmp", "/q.sock"],
    ["vm", "add", "bad name", "--qmp", "/q.sock"],
    ["vm", "add", "g1", "--qmp", "/q.sock", "--priority", "urgent"],
    ["vm", "add", "g1", "--qmp", "/q.sock", "--numa-node", "x"],
    ["vm", "add", "g1", "--qmp", "/" + "q" * 120],
    ["vm", "remove"],
    ["vm", "remove", "a", "b"],
    ["attach"],
    ["attach", "g1", "--vf", "eth0/1", "--pf", "eth0"],
    ["attach", "g1", "--mode", "greedy"],
    ["attach", "g1", "--vlan", "5000"],
    ["attach", "g1", "--timeout-ms", "10"],
    ["attach", "g1", "--failover-pair-id", "has space"],
    ["detach"],
    ["detach", "g1", "--vf", "nope"],
    ["detach", "g1", "--timeout-ms", "0"],
    ["top", "--count", "0"],
    ["top", "--interval", "fast"],
    ["raw"],
    ["raw", "status", "[1,2]"],
    ["raw", "status", "{}", "extra"],
]


@test
def usage_errors_exit_2_and_send_nothing():
    with FakeDaemon() as d:
        for argv in USAGE_ERRORS:
            rc, out, err = run(argv, d)
            eq(rc, 2, "exit status for %r (stderr %r)" % (argv, err))
            check(err.startswith("iovmctl: "), "message for %r: %r" % (argv, err))
            check("usage: iovmctl" in err or "Try 'iovmctl --help'" in err, "usage text for %r" % argv)
            eq(out, "", "stdout for %r" % argv)
        eq(d.connections, 0, "connections made")
        eq(d.requests, [], "requests sent")


# What iovmd answers for a name it refuses (src/lib/api/validate.c; the same
# text is checked against the parser in tests/unit/test-api.c and against
# the running daemon in tests/daemon/test-iovmd.py).
NAME_REFUSED = "%s: argument '%s' must be 1..63 characters of A-Z a-z 0-9 _ . : -"

DOT_NAMES = [
    (["vm", "add", ".", "--qmp", "/x"], "vm-add", "name", "vm add NAME --qmp SOCKET [--qga SOCKET] "
     "[--priority high|normal|low] [--numa-node N] [--incoming SRC-VM]"),
    (["vm", "add", "..", "--qmp", "/x"], "vm-add", "name", None),
    (["vm", "remove", "."], "vm-remove", "name", "vm remove NAME"),
    (["vm", "remove", ".."], "vm-remove", "name", None),
    (["attach", ".."], "attach", "vm", None),
    (["detach", "."], "detach", "vm", None),
    (["pf", "show", ".."], "pf-show", "pf", "pf show PF"),
    (["vf", "list", "--pf", "."], "vf-list", "pf", None),
    (["top", "--pf", ".."], "vf-list", "pf", None),
    (["attach", "g1", "--failover-pair-id", ".."], "attach", "failover_pair_id", None),
]


@test
def dot_names_refused_locally_with_the_daemons_message():
    with FakeDaemon() as d:
        for argv, cmd, arg, usage in DOT_NAMES:
            rc, out, err = run(argv, d)
            eq(rc, 2, "exit status for %r" % argv)
            eq(out, "", "stdout for %r" % argv)
            lines = err.splitlines()
            eq(lines[0], "iovmctl: " + NAME_REFUSED % (cmd, arg), "message for %r" % argv)
            if usage:
                eq(lines[1:], ["usage: iovmctl " + usage, "Try 'iovmctl --help' for more information."],
                   "usage lines for %r" % argv)
        eq(d.connections, 0, "connections made")
        eq(d.requests, [], "requests sent")
        # "..." and ".hidden" are names; ".." as a VF's PF part is not.
        rc, out, err = run(["vm", "remove", "..."], d)
        eq(rc, 0, "vm remove ... (stderr %r)" % err)
        rc, out, err = run(["vf", "show", "../1"], d)
        eq((rc, err.splitlines()[0]), (2, "iovmctl: vf-show: argument 'vf' must be a VF's PCI address "
                                          "(0000:01:10.2) or PF/INDEX (eth0/2)"), "vf show ../1")
        eq([r["execute"] for r in d.requests], ["vm-remove"], "requests sent")


@test
def help_and_version():
    rc, out, err = run(["--help"])
    eq(rc, 0, "--help exit status")
    for word in ("status", "pf list", "pf set-vfs", "vf set", "vm add", "attach", "detach", "top"):
        check(word in out, "%r in --help" % word)
    rc, out, err = run(["vf", "set", "--help"])
    eq(rc, 0, "vf set --help exit status")
    check(out.startswith("usage: iovmctl vf set VF"), "per-command usage %r" % out)
    rc, out, err = run(["--version"])
    eq(rc, 0, "--version exit status")
    check(out.startswith("iovmctl "), "version %r" % out)


SOURCE_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


@test
def man_pages_render_cleanly_and_cover_every_command():
    pages = [os.path.join(SOURCE_ROOT, "docs", "man", p) for p in ("iovmctl.8", "iovmd.8")]
    for page in pages:
        check(os.path.isfile(page), "%s exists" % page)
    rc, out, _ = run(["--help"])
    names = []
    for line in out.splitlines():
        if line.startswith("  ") and not line.startswith("  -"):
            words = []
            for w in line.split():
                if not w.islower() or w.startswith("["):
                    break
                words.append(w)
            names.append(" ".join(words))
    check(len(names) >= 10, "commands in --help: %r" % names)
    sections = [l[4:].strip('"').split("\\f")[0].strip().replace("\\-", "-")
                for l in open(pages[0]).read().splitlines() if l.startswith(".SS ")]
    for name in names:
        check(name in sections, "iovmctl.8 has a section for %r (sections %r)" % (name, sections))
    if subprocess.run(["sh", "-c", "command -v groff"], stdout=subprocess.DEVNULL).returncode != 0:
        print("  (groff not found: rendering not checked)")
        return
    for page in pages:
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        eq(p.returncode, 0, "groff exit status for " + page)
        eq(p.stderr.decode(), "", "groff warnings for " + page)


@test
def bash_completion():
    comp = os.path.join(SOURCE_ROOT, "contrib", "bash-completion", "iovmctl")
    check(os.path.isfile(comp), "completion file exists")
    script = r'''
source "$1"; shift
PATH="$1:$PATH"; shift
comp() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _iovmctl; echo "${COMPREPLY[*]}"; }
comp iovmctl ''
comp iovmctl --socket "$1" pf ''
comp iovmctl --socket "$1" pf show ''
comp iovmctl --socket "$1" vf set eth0/1 --
comp iovmctl --socket "$1" vf set --vlan 10 ''
comp iovmctl --socket "$1" attach g1 --mode ''
comp iovmctl --socket "$1" vm remove g
comp iovmctl --socket "$1/absent" vm remove ''
'''
    bindir = os.path.join(TMP, "bin")   # the completion runs "iovmctl" from PATH
    if not os.path.exists(bindir):
        os.mkdir(bindir)
        os.symlink(IOVMCTL, os.path.join(bindir, "iovmctl"))
    with FakeDaemon() as d:
        p = subprocess.run(["bash", "-c", script, "bash", comp, bindir, d.path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    eq(p.stderr.decode(), "", "bash stderr")
    got = [l.split() for l in p.stdout.decode().split("\n")[:-1]]
    eq(len(got), 8, "completions")
    eq(got[0], "status pf vf vm attach detach top raw".split(), "commands")
    eq(got[1], ["list", "show", "set-vfs"], "pf subcommands")
    eq(sorted(got[2]), sorted([PF0["pf"], PF1["pf"], PF0["netdev"]]), "PF names from the daemon")
    eq(got[3], "--mac --vlan --qos --rate --trust --spoofchk --link --help".split(), "vf set options")
    eq(got[4], [v["vf"] for v in VFS], "VF names after an option's value")
    eq(got[5], ["auto", "exclusive", "shared"], "--mode values")
    eq(sorted(got[6]), sorted(v["name"] for v in VMS if v["name"].startswith("g")), "VM names")
    eq(got[7], [], "nothing when the daemon does not answer")


def main():
    global IOVMCTL, TMP
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    IOVMCTL = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="iovmctl-test-") as tmp:
        TMP = tmp
        return run_cases(test)


if __name__ == "__main__":
    sys.exit(main())
