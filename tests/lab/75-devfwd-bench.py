#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""devfwd benchmark in one lab run (vsock loopback, CID 1): /dev/zero read
throughput native vs forwarded at 4 and 64 KiB, EVIOCGVERSION round trip
native vs forwarded on a uinput evdev node, the raw transport round
trip, and the same reads and ioctl on cuse-null (a CUSE device that forwards
nothing: the floor of any CUSE frontend). Then what worker confinement
costs: a stream's start-up and an ioctl round trip through the protocol on
the confined backend against a second backend whose workers run unconfined
(a test-build hook, IOVM_DEVFWD_TEST_UNCONFINED). Prints the tables; fails
only if the benchmark cannot run."""
import os
import subprocess

from devfwd_lab import BUILD, Backend, Frontend, binary, fail, make_uinput_keyboard, modprobe, skip, stop_process, TMP, wait_for

PORT = 7075
PORT_UNCONFINED = 7085


def main():
    bench = os.path.join(BUILD, "src/devfwd/devfwd-bench")
    if not os.access(bench, os.X_OK):
        skip(f"{bench} not built")
    modprobe("cuse", "evdev", "uinput", "vsock_loopback")
    ufd, ev = make_uinput_keyboard(b"devfwd-bench-kbd")
    # IOVM_BENCH_CPU=N runs every process on one CPU: under TCG a wakeup on
    # another vCPU waits for the emulator's round robin, which would swamp
    # what is being measured.
    cpu = os.environ.get("IOVM_BENCH_CPU")
    wrap = ("taskset", "-c", cpu) if cpu else ()
    # IOVM_BENCH_TRANSPORT=unix compares with a UNIX socket (same host only).
    unix = os.environ.get("IOVM_BENCH_TRANSPORT") == "unix"
    sock = os.path.join(TMP, "devfwd-bench.sock")
    listen, addr = (f"unix:{sock}", f"unix:{sock}") if unix else (f"vsock:{PORT}", f"vsock:1:{PORT}")
    who = "uid=0" if unix else "cid=1"
    backend = Backend(f"[guest {who}]\nallow-path = /dev/zero\nallow-path = {ev}\nallow-ioctl = E:*\n",
                      [listen], name="bench", wrap=wrap, verbose=bool(os.environ.get("IOVM_DEVFWD_DEBUG")))
    frontend = Frontend(addr, [("/dev/zero", "devfwd-zero"), (ev, "input/devfwd-bench")],
                        name="bench", wrap=wrap)
    null_log = open(os.path.join(TMP, "cuse-null.log"), "w")
    null = subprocess.Popen([*wrap, binary("cuse-null"), "devfwd-null"], stderr=null_log)
    try:
        wait_for(lambda: os.path.exists("/dev/devfwd-null") or null.poll() is not None, "/dev/devfwd-null")
        if null.poll() is not None:
            fail(f"cuse-null exited ({null.returncode})")
        r = subprocess.run([*wrap, bench, "--read", "/dev/zero", "/dev/devfwd-zero",
                            "--ioctl", ev, "/dev/input/devfwd-bench",
                            "--connect", addr, "--floor", "/dev/devfwd-null", "--seconds", os.environ.get("IOVM_BENCH_SECONDS", "3")],
                           capture_output=True, text=True, timeout=300)
        print(f"devfwd benchmark ({'all on CPU ' + cpu if cpu else 'unpinned'}, "
              f"{'UNIX socket' if unix else 'vsock loopback'}):")
        print(r.stdout, end="")
        if r.returncode:
            fail(f"devfwd-bench failed: {r.stderr}\nfrontend: {frontend.log()}\nbackend: {backend.log()[-1500:]}")
        confine_cost(bench, backend, ev, wrap, unix, who)
    finally:
        stop_process(null)
        null_log.close()
        frontend.stop()
        backend.stop()
        os.close(ufd)


def confine_cost(bench, backend, ev, wrap, unix, who):
    """Confined (the backend above) against unconfined workers, same run."""
    sock = os.path.join(TMP, "devfwd-bench-unconfined.sock")
    listen, addr = (f"unix:{sock}", f"unix:{sock}") if unix else (f"vsock:{PORT_UNCONFINED}",
                                                                   f"vsock:1:{PORT_UNCONFINED}")
    os.environ.update(IOVM_DEVFWD_TEST_HOOKS="1", IOVM_DEVFWD_TEST_UNCONFINED="1")
    try:
        plain = Backend(f"[guest {who}]\nallow-path = {ev}\nallow-ioctl = E:*\n", [listen], name="bench-unconfined",
                        wrap=wrap, verbose=False)
    finally:
        del os.environ["IOVM_DEVFWD_TEST_HOOKS"], os.environ["IOVM_DEVFWD_TEST_UNCONFINED"]
    try:
        if "workers run UNCONFINED" not in plain.log():
            print("confinement cost: not measured (the build has no test hooks: -Dtest-hooks=true)")
            return
        confined = f"unix:{os.path.join(TMP, 'devfwd-bench.sock')}" if unix else f"vsock:1:{PORT}"
        r = subprocess.run([*wrap, bench, "--confine-cost", confined, addr, ev,
                            "--seconds", os.environ.get("IOVM_BENCH_SECONDS", "3")],
                           capture_output=True, text=True, timeout=300)
        print("worker confinement (same run, alternating):")
        print(r.stdout, end="")
        if r.returncode:
            fail(f"devfwd-bench --confine-cost failed: {r.stderr}\nbackend: {backend.log()[-1500:]}\n"
                 f"unconfined backend: {plain.log()[-1500:]}")
    finally:
        plain.stop()


if __name__ == "__main__":
    main()
