#!/usr/bin/env python3
"""Benchmark: VF attach+detach round trip through iovm vs raw QMP.

Runs inside the lab (`lab/iovm-lab run -- bench/attach-detach.py`), with
IOVM_BUILD set. One guest, one VF on vfio-pci. Rounds alternate between
  raw:  a minimal QMP client: connect, qmp_capabilities, device_add vfio-pci,
        (guest sees the VF, not timed), device_del, wait for DEVICE_DELETED;
  rawq: the same client sending the QMP commands iovm sends: query-pci
        before device_add (iovm picks the port with it) and after (iovm
        verifies with it), then device_del and DEVICE_DELETED;
  iovm: `iovm-vm attach` and `iovm-vm detach` (each a whole process: connect,
        VF checks in sysfs, query-pci to pick the port and to verify,
        device_add / device_del + DEVICE_DELETED, release checks, pool file),
        with IOVM_VM_TRACE for a per-step breakdown;
  iovmd: `iovmctl attach` / `iovmctl detach` through a running iovmd, which
        keeps the QMP connection (stopped during the other rounds);
  api:  the same two requests sent to iovmd's socket from this process (the
        daemon's cost without starting iovmctl). iovmd runs at debug level:
        its log lines carry CLOCK_MONOTONIC, so its steps are timed too.
The timed part of both is the attach command and the detach command until
the VF is released; between them both wait (untimed) until the guest sees
the VF, so each unplug meets a guest in the same state. Prints per-round
times, the ratio of each variant's median to raw's (target <= 1.10) and
the median of every step.
"""
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

ROUNDS = int(os.environ.get("IOVM_BENCH_ROUNDS", "3"))
BUILD = os.environ.get("IOVM_BUILD")
if not BUILD or not os.path.isdir("/sys/bus/pci/devices/0000:01:00.0"):
    print("skip: needs the lab and IOVM_BUILD", file=sys.stderr)
    sys.exit(77)
VM = os.path.join(BUILD, "src/tools/iovm-vm/iovm-vm")
SR = os.path.join(BUILD, "src/tools/iovm-sriov/iovm-sriov")
IOVMD = os.path.join(BUILD, "src/iovmd/iovmd")
CTL = os.path.join(BUILD, "src/iovmctl/iovmctl")
DDIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "bench-iovmd")
DSOCK = os.path.join(DDIR, "iovm.sock")
GUEST = "lab/guest"
NAME = "bench1"
QMP = f"/run/iovm-lab/guests/{NAME}/qmp.sock"
POOL = os.path.join(os.environ.get("TMPDIR", "/tmp"), "bench-pool.json")


SHARE = "/run/iovm-lab/share"


def log(msg):
    """Progress on stderr and in the run's log directory on the host (the
    lab streams output only as it comes; a stuck step should be visible)."""
    line = f"[{time.monotonic():9.1f}] {msg}"
    print(line, file=sys.stderr, flush=True)
    try:
        with open(os.path.join(SHARE, "bench-attach-detach.log"), "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def sh(*args, check=True, env=None, stderr_to=None):
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    if stderr_to is not None:
        stderr_to.append(r.stderr)
    return r.stdout


TRACE_ENV = dict(os.environ, IOVM_VM_TRACE="1")
# Per-step durations of the iovm rounds: {phase: [seconds, ...]}
STEPS = {}


def record_steps(kind, stderr, total):
    """IOVM_VM_TRACE lines ('trace: MS ms STEP VF') into phase durations:
    from process start to the connection, between steps, and from the last
    step to the process's end."""
    marks = [(0.0, "start")]
    for line in stderr.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "trace:" and parts[2] == "ms":
            marks.append((float(parts[1]) / 1000, parts[3]))
    marks.append((total, "exit"))
    for (t0, a), (t1, b) in zip(marks, marks[1:]):
        STEPS.setdefault(f"{kind}: {a} -> {b}", []).append(max(0.0, t1 - t0))


def guest_vfs():
    out = subprocess.run([GUEST, "exec", NAME, "--", "sh", "-c",
                          "n=0; for d in /sys/bus/pci/devices/*; do "
                          "[ \"$(cat $d/vendor):$(cat $d/device)\" = 0x8086:0x10ca ] && n=$((n+1)); "
                          "done; echo $n"], capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() else -1


def wait_guest(n, timeout=180):
    log(f"waiting for the guest to see {n} VF(s)")
    deadline = time.monotonic() + timeout
    while guest_vfs() != n:
        if time.monotonic() > deadline:
            raise SystemExit(f"guest does not see {n} VF(s) after {timeout}s")
        time.sleep(0.5)


class Raw:
    """The minimal client: no checks, no port search (the port is given)."""

    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(180)    # a guest that never answers fails the run, not hangs it
        self.s.connect(QMP)
        self.f = self.s.makefile("rwb")
        self.f.readline()
        self.n = 0
        self.call("qmp_capabilities")

    def call(self, cmd, args=None):
        self.n += 1
        msg = {"execute": cmd, "id": self.n}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if r.get("id") == self.n:
                if "error" in r:
                    raise SystemExit(f"raw {cmd}: {r['error']}")
                return r

    def wait_deleted(self, path):
        while True:
            r = json.loads(self.f.readline())
            if r.get("event") == "DEVICE_DELETED" and r["data"].get("path") == path:
                return

    def close(self):
        # The file object keeps the socket open: close both, or QEMU still
        # sees this client and serves no other (one QMP client at a time).
        self.f.close()
        self.s.close()


def round_raw(vf, port, query=False):
    devid = "raw-" + vf.replace(":", "-")
    t0 = time.monotonic()
    c = Raw()
    if query:
        c.call("query-pci")
    c.call("device_add", {"driver": "vfio-pci", "host": vf, "id": devid, "bus": port})
    if query:
        c.call("query-pci")
    c.close()
    t_attach = time.monotonic() - t0
    wait_guest(1)
    t0 = time.monotonic()
    c = Raw()
    c.call("device_del", {"id": devid})
    c.wait_deleted(f"/machine/peripheral/{devid}")
    c.close()
    t_detach = time.monotonic() - t0
    parts = RAWQ_PARTS if query else RAW_PARTS
    parts["attach"].append(t_attach)
    parts["detach"].append(t_detach)
    return t_attach, t_detach


RAW_PARTS = {"attach": [], "detach": []}
RAWQ_PARTS = {"attach": [], "detach": []}


def lib_ms(out):
    for kv in out.split():
        if kv.startswith("lib_ms="):
            return float(kv[7:]) / 1000
    raise SystemExit(f"no lib_ms in {out!r}")


def round_iovm(vf):
    """Returns (attach, detach) wall times of the whole processes and the
    same two in libiovm only (connect, negotiation, the call)."""
    err = []
    t0 = time.monotonic()
    out = sh(VM, "--pool", POOL, "attach", "--qmp", QMP, "--vm", NAME, "--vf", vf, "--timeout-ms", "30000",
             env=TRACE_ENV, stderr_to=err)
    t_attach, l_attach = time.monotonic() - t0, lib_ms(out)
    # The trace's clock starts when libiovm starts (after process start-up).
    record_steps("attach", err[-1], l_attach)
    wait_guest(1)
    t0 = time.monotonic()
    out = sh(VM, "--pool", POOL, "detach", "--qmp", QMP, "--vm", NAME, "--vf", vf, "--timeout-ms", "60000",
             env=TRACE_ENV, stderr_to=err)
    t_detach, l_detach = time.monotonic() - t0, lib_ms(out)
    record_steps("detach", err[-1], l_detach)
    STEPS.setdefault("process start-up and exit (attach + detach)", []).append(
        t_attach + t_detach - l_attach - l_detach)
    return t_attach, t_detach, l_attach + l_detach


class Daemon:
    """iovmd holding the VM's QMP connection (QEMU serves one QMP client at
    a time, so the daemon is stopped for the raw rounds; its start and stop
    are not timed)."""

    def __init__(self):
        os.makedirs(DDIR, exist_ok=True)
        self.proc = None
        self.added = False

    def start(self):
        self.log = open(os.path.join(DDIR, "iovmd.log"), "a")
        self.proc = subprocess.Popen([IOVMD, "--socket", DSOCK, "--state", os.path.join(DDIR, "iovm.db"),
                                      "--log-level", "debug"], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 120
        while subprocess.run([CTL, "--socket", DSOCK, "status"], capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("iovmd did not start: see " + os.path.join(DDIR, "iovmd.log"))
            time.sleep(0.2)
        if not self.added:
            sh(CTL, "--socket", DSOCK, "vm", "add", NAME, "--qmp", QMP)
            self.added = True
        # Connected to the VM's QMP before the timed part.
        deadline = time.monotonic() + 60
        while not [v for v in json.loads(sh(CTL, "--socket", DSOCK, "--json", "vm", "list"))
                   if v["name"] == NAME and v["connected"]]:
            if time.monotonic() > deadline:
                raise SystemExit("iovmd did not connect to the guest's QMP socket")
            time.sleep(0.2)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.proc = None


IOVMD_LINE = re.compile(r"^iovmd: (\d+\.\d+) debug: (.*)$")


def iovmd_label(msg):
    """A debug line of iovmd without what changes between rounds."""
    msg = re.sub(r"client \d+", "client", msg)
    msg = re.sub(r" \(intent \d+\)", "", msg)
    msg = re.sub(r" \(pid \d+ uid \d+\)|: pid \d+ uid \d+", " connected", msg)
    msg = re.sub(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", "VF", msg)
    return msg


def record_iovmd_steps(kind, t0, t1):
    """iovmd's debug lines (stamped with CLOCK_MONOTONIC, the clock of
    time.monotonic()) between t0 and t1 into phase durations, like
    record_steps: the iovmctl process start, the daemon's steps, the reply
    and the process exit."""
    marks = [(t0, "iovmctl start")]
    with open(os.path.join(DDIR, "iovmd.log")) as f:
        for line in f:
            m = IOVMD_LINE.match(line.rstrip("\n"))
            if m and t0 <= float(m.group(1)) <= t1:
                marks.append((float(m.group(1)), iovmd_label(m.group(2))))
    marks.append((t1, "iovmctl exit"))
    for (a_t, a), (b_t, b) in zip(marks, marks[1:]):
        STEPS.setdefault(f"iovmd {kind}: {a} -> {b}", []).append(max(0.0, b_t - a_t))


def round_iovmd(d, vf):
    """iovmctl attach / detach through a running iovmd: the product's path."""
    d.start()
    t0 = time.monotonic()
    sh(CTL, "--socket", DSOCK, "attach", NAME, "--vf", vf, "--mode", "exclusive")
    t1 = time.monotonic()
    wait_guest(1)
    t2 = time.monotonic()
    sh(CTL, "--socket", DSOCK, "detach", NAME, "--vf", vf)
    t3 = time.monotonic()
    d.stop()
    record_iovmd_steps("attach", t0, t1)
    record_iovmd_steps("detach", t2, t3)
    return t1 - t0, t3 - t2


def api_call(cmd, args):
    """A minimal client of iovmd's API, in this process like the raw QMP
    client: connect, greeting, one request, its reply (events skipped)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(180)
    s.connect(DSOCK)
    f = s.makefile("rwb")
    f.readline()
    f.write(json.dumps({"execute": cmd, "arguments": args, "id": 1}).encode() + b"\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if r.get("id") == 1:
            break
    f.close()
    s.close()
    if "error" in r:
        raise SystemExit(f"iovmd {cmd}: {r['error']}")
    return r["return"]


def round_api(d, vf):
    """The same through iovmd's socket from this process: the daemon's own
    cost, without starting iovmctl."""
    d.start()
    t0 = time.monotonic()
    api_call("attach", {"vm": NAME, "vf": vf, "mode": "exclusive"})
    t1 = time.monotonic()
    wait_guest(1)
    t2 = time.monotonic()
    api_call("detach", {"vm": NAME, "vf": vf})
    t3 = time.monotonic()
    d.stop()
    record_iovmd_steps("api attach", t0, t1)
    record_iovmd_steps("api detach", t2, t3)
    return t1 - t0, t3 - t2


def main():
    sh("modprobe", "vfio-pci")
    sh(SR, "set-vfs", "eth0", "1", "vfio")
    pf = os.path.basename(os.readlink("/sys/class/net/eth0/device"))
    vf = os.path.basename(os.readlink(f"/sys/bus/pci/devices/{pf}/virtfn0"))
    log(f"VF {vf}; starting guest {NAME}")
    sh(GUEST, "start", NAME)
    log("guest up")
    daemon = Daemon()
    try:
        wait_guest(0, 60)
        raw, rawq, iovm, iovm_lib, iovmd, api = [], [], [], [], [], []
        for i in range(ROUNDS):
            # Alternate so that drift in the emulated machine hits all.
            for kind in (("raw", "rawq", "iovm", "iovmd", "api") if i % 2 == 0
                         else ("api", "iovmd", "iovm", "rawq", "raw")):
                log(f"round {i} {kind}")
                if kind == "raw":
                    a, d = round_raw(vf, "hp1")
                    raw.append(a + d)
                    extra = ""
                elif kind == "rawq":
                    a, d = round_raw(vf, "hp1", query=True)
                    rawq.append(a + d)
                    extra = " (raw with iovm's two query-pci)"
                elif kind == "api":
                    a, d = round_api(daemon, vf)
                    api.append(a + d)
                    extra = " (iovmd's API from this process)"
                elif kind == "iovmd":
                    a, d = round_iovmd(daemon, vf)
                    iovmd.append(a + d)
                    extra = " (iovmctl through iovmd)"
                else:
                    a, d, lib = round_iovm(vf)
                    iovm.append(a + d)
                    iovm_lib.append(lib)
                    extra = f" (in libiovm {lib:.3f}s)"
                msg = f"round {i} {kind:4s}: attach {a:.3f}s detach {d:.3f}s total {a + d:.3f}s{extra}"
                log(msg)
                print(msg, flush=True)
                wait_guest(0)
        mr, mi, ml = statistics.median(raw), statistics.median(iovm), statistics.median(iovm_lib)
        print(f"raw       median {mr:.3f}s  all {' '.join(f'{x:.3f}' for x in raw)}")
        print(f"iovm      median {mi:.3f}s  all {' '.join(f'{x:.3f}' for x in iovm)}")
        print(f"iovm lib  median {ml:.3f}s  all {' '.join(f'{x:.3f}' for x in iovm_lib)}")
        mq = statistics.median(rawq)
        print(f"rawq      median {mq:.3f}s  all {' '.join(f'{x:.3f}' for x in rawq)}")
        md = statistics.median(iovmd)
        print(f"iovmd     median {md:.3f}s  all {' '.join(f'{x:.3f}' for x in iovmd)}")
        ma = statistics.median(api)
        print(f"api       median {ma:.3f}s  all {' '.join(f'{x:.3f}' for x in api)}")
        print(f"ratio iovm/raw = {mi / mr:.3f} (whole iovm-vm processes; target <= 1.10)")
        print(f"ratio iovm-lib/raw = {ml / mr:.3f} (libiovm calls only, like the raw client's timing)")
        print(f"ratio iovmd/raw = {md / mr:.3f} (iovmctl processes through a running iovmd)")
        print(f"ratio api/raw = {ma / mr:.3f} (iovmd's API from this process, like the raw client)")
        print(f"against rawq (the same QMP commands as iovm): iovm {mi / mq:.3f}, iovm-lib {ml / mq:.3f}, "
              f"iovmd {md / mq:.3f}, api {ma / mq:.3f}")
        print("iovm per step (median s over rounds):")
        for k, v in STEPS.items():
            print(f"  {statistics.median(v):7.3f}  {k}  (all {' '.join(f'{x:.3f}' for x in v)})")
        for name, parts in (("raw", RAW_PARTS), ("rawq", RAWQ_PARTS)):
            for k in ("attach", "detach"):
                v = parts[k]
                print(f"  {statistics.median(v):7.3f}  {name} {k} (all {' '.join(f'{x:.3f}' for x in v)})")
    finally:
        daemon.stop()
        subprocess.run([GUEST, "stop", NAME])


if __name__ == "__main__":
    main()
