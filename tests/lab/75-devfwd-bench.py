#!/usr/bin/env python3
# lab-seconds: 500 (475 s in its first passing run, 2026-12-07; a benchmark, run by name only)
# SPDX-License-Identifier: LGPL-2.1-or-later
"""devfwd benchmark in one lab run (vsock loopback, CID 1): /dev/zero read
throughput at 4, 16, 64 KiB and 1 MiB and an EVIOCGVERSION round trip on a
uinput evdev node, each native, on cuse-null (a CUSE device that forwards
nothing: the floor of any CUSE frontend), through the CUSE frontend, through
the kernel frontend (devfwd.ko loaded into the emulated host, configured by
`devfwd-frontend --kernel`, connecting to the backend over vsock loopback)
and through the protocol alone; the raw transport round trip; the kernel
frontend's ratios to the CUSE frontend, native and the transport. Then what
worker confinement costs: a stream's start-up and an ioctl round trip
through the protocol on the confined backend against a second backend whose
workers run unconfined (a test-build hook, IOVM_DEVFWD_TEST_UNCONFINED).
Then the same figures across a real VM boundary: a guest of the emulated
host (lab/guest, guest CID 46, virtio-vsock) runs devfwd-bench itself
against its own /dev/zero, cuse-null, the CUSE frontend and devfwd.ko, plus
mmap of the kernel frontend's /dev/zero through the guest's shared window
(hot-added ivshmem) against a native mapping, and counts the xruns of 60 s
of 48 kHz stereo that an unmodified `aplay -M` in the guest plays through
devfwd.ko and the window into snd-aloop on this host (IOVM_BENCH_GUEST=0
leaves the guest out). Prints the tables; fails only if the benchmark
cannot run."""
import os
import subprocess
import sys
import time

from devfwd_lab import BUILD, KO, LAB_GUEST, Backend, Frontend, add_window, binary, fail, guest_dmesg_clean, guest_sh, \
    kmod_guest, lab_guest, loopback_card, make_uinput_keyboard, modprobe, push_alsa, skip, stop_process, TMP, \
    wait_for

PORT = 7075
PORT_UNCONFINED = 7085
KZERO, KEV = "devfwd-kzero", "input/devfwd-kbench"
GUEST, GUEST_CID = "devfwd-bench", 46
WINDOW, WINDOW_SIZE = f"/run/devfwd-window-{GUEST}", 1 << 20  # as lab 78 (a 4 MiB one was not bound within 300 s)
ALSA_CARD, ALSA_SECONDS = 7, 60  # the guest's name for the loopback card; seconds played


def kernel_frontend(addr, ev, wrap):
    """Loads devfwd.ko (built for this kernel by scripts/run-tests) and
    forwards /dev/zero and ev through it. Returns the two /dev paths, or
    None (with the reason printed) when the module is not built or the
    transport is not vsock."""
    if not addr.startswith("vsock:"):
        print("kernel frontend: not measured (it connects over vsock only)")
        return None
    if not os.access(KO, os.R_OK):
        print(f"kernel frontend: not measured ({KO} not built; scripts/run-tests builds it)")
        return None
    vermagic = subprocess.run(["modinfo", "-F", "vermagic", KO], capture_output=True, text=True).stdout.split()
    if not vermagic or vermagic[0] != os.uname().release:
        fail(f"{KO} is built for {vermagic[:1]}, the emulated host runs {os.uname().release}")
    r = subprocess.run(["insmod", KO], capture_output=True, text=True)
    if r.returncode:
        fail(f"insmod {KO} failed: {r.stderr.strip()}")
    r = subprocess.run([*wrap, binary("devfwd-frontend"), "--kernel", "--connect", addr, "--connect-timeout", "60",
                        "--device", f"/dev/zero={KZERO}", "--device", f"{ev}={KEV}"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode:
        fail(f"devfwd-frontend --kernel failed ({r.returncode}): {r.stderr.strip()}")
    paths = ("/dev/" + KZERO, "/dev/" + KEV)
    for p in paths:
        wait_for(lambda: os.path.exists(p), p)
    with open("/dev/devfwd-ctl") as f:
        print("kernel frontend (/dev/devfwd-ctl):\n" + f.read(), end="")
    return paths


def unload_kernel_frontend():
    r = subprocess.run(["rmmod", "devfwd"], capture_output=True, text=True)
    if r.returncode:
        fail(f"rmmod devfwd failed: {r.stderr.strip()}")


def main():
    bench = os.path.join(BUILD, "src/devfwd/devfwd-bench")
    if not os.access(bench, os.X_OK):
        skip(f"{bench} not built")
    sys.stdout.reconfigure(line_buffering=True)  # the log shows each table as it comes
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
    with open(WINDOW, "wb") as f:
        f.truncate(WINDOW_SIZE)
    card = None
    if not unix and os.environ.get("IOVM_BENCH_GUEST", "1") != "0":
        modprobe("snd-aloop")
        card = loopback_card()
    alsa = (f"allow-path = /dev/snd/controlC{card}\nallow-path = /dev/snd/pcmC{card}D0p\nallow-ioctl = U:*\n"
            "allow-ioctl = A:*\n") if card is not None else ""
    backend = Backend(f"[guest {who}]\nallow-path = /dev/zero\nallow-path = {ev}\nallow-ioctl = E:*\n"
                      f"[guest cid={GUEST_CID}]\nallow-path = /dev/zero\nallow-path = {ev}\nallow-ioctl = E:*\n"
                      f"{alsa}window = {WINDOW}\n",
                      [listen], name="bench", wrap=wrap, verbose=bool(os.environ.get("IOVM_DEVFWD_DEBUG")))
    frontend = Frontend(addr, [("/dev/zero", "devfwd-zero"), (ev, "input/devfwd-bench")],
                        name="bench", wrap=wrap)
    null_log = open(os.path.join(TMP, "cuse-null.log"), "w")
    null = subprocess.Popen([*wrap, binary("cuse-null"), "devfwd-null"], stderr=null_log)
    kern = None
    try:
        wait_for(lambda: os.path.exists("/dev/devfwd-null") or null.poll() is not None, "/dev/devfwd-null")
        if null.poll() is not None:
            fail(f"cuse-null exited ({null.returncode})")
        kern = kernel_frontend(addr, ev, wrap)
        r = subprocess.run([*wrap, bench, "--read", "/dev/zero", "/dev/devfwd-zero",
                            "--ioctl", ev, "/dev/input/devfwd-bench",
                            *(("--kernel", *kern) if kern else ()),
                            "--connect", addr, "--floor", "/dev/devfwd-null", "--seconds", os.environ.get("IOVM_BENCH_SECONDS", "3")],
                           capture_output=True, text=True, timeout=900)
        print(f"devfwd benchmark ({'all on CPU ' + cpu if cpu else 'unpinned'}, "
              f"{'UNIX socket' if unix else 'vsock loopback'}):")
        print(r.stdout, end="")
        if r.returncode:
            fail(f"devfwd-bench failed: {r.stderr}\nfrontend: {frontend.log()}\nbackend: {backend.log()[-1500:]}")
        if kern:
            unload_kernel_frontend()
            kern = None
        confine_cost(bench, backend, ev, wrap, unix, who)
        if not unix:
            across_vm(bench, ev, backend, card)
    finally:
        if kern:
            subprocess.run(["rmmod", "devfwd"], capture_output=True)
        stop_process(null)
        null_log.close()
        frontend.stop()
        backend.stop()
        os.close(ufd)
        os.unlink(WINDOW)


def across_vm(bench, ev, backend, card):
    """The same figures measured by devfwd-bench inside a guest, against the
    backend on this host over virtio-vsock, and mmap through the window."""
    if os.environ.get("IOVM_BENCH_GUEST", "1") == "0":
        print("across the VM boundary: not measured (IOVM_BENCH_GUEST=0)")
        return
    static = os.path.join(BUILD, "src/devfwd/devfwd-frontend-static")
    probe = os.path.join(BUILD, "src/devfwd/devfwd-kmod-probe")
    missing = [p for p in (static, probe, KO, LAB_GUEST) if not os.access(p, os.R_OK)]
    if missing:
        print(f"across the VM boundary: not measured ({', '.join(missing)} missing)")
        return
    modprobe("vhost_vsock")
    addr = f"vsock:2:{PORT}"
    try:
        kmod_guest(GUEST, GUEST_CID, probe, static)  # starts the guest, loads devfwd.ko
        lab_guest("push", GUEST, bench, "/tmp/devfwd-bench", "--mode", "755", timeout=600)
        null = binary("cuse-null")
        lab_guest("push", GUEST, null, "/tmp/cuse-null", "--mode", "755", timeout=600)
        libs = subprocess.run(["ldd", null], capture_output=True, text=True, check=True).stdout
        fuse = [l.split("=> ")[1].split()[0] for l in libs.splitlines() if "libfuse3" in l]
        guest_sh(GUEST, "mkdir -p /tmp/alib")
        for lib in fuse:
            lab_guest("push", GUEST, lib, f"/tmp/alib/{os.path.basename(lib)}", "--mode", "644", timeout=600)
        add_window(GUEST, WINDOW, WINDOW_SIZE)
        devs = f"/dev/devfwd-zero /dev/input/devfwd-bench /dev/devfwd-null /dev/{KZERO} /dev/{KEV}"
        r = guest_sh(GUEST, "modprobe cuse 2>/dev/null; "
                     f"/tmp/devfwd-frontend --connect {addr} --connect-timeout 300 --device /dev/zero=devfwd-zero "
                     f"--device {ev}=input/devfwd-bench </dev/null >/tmp/frontend.log 2>&1 & "
                     "LD_LIBRARY_PATH=/tmp/alib /tmp/cuse-null devfwd-null </dev/null >/tmp/cuse-null.log 2>&1 & "
                     f"/tmp/devfwd-frontend --kernel --connect {addr} --connect-timeout 300 "
                     f"--device /dev/zero={KZERO} --device {ev}={KEV} && "
                     f"for i in $(seq 300); do ls {devs} >/dev/null 2>&1 && break; sleep 1; done; ls {devs}",
                     timeout=400, check=False)
        if r.returncode:
            logs = guest_sh(GUEST, "cat /tmp/frontend.log /tmp/cuse-null.log; dmesg | tail -n 20", check=False)
            fail(f"the guest's devices did not appear: {r.stdout} {r.stderr}\n{logs.stdout}")
        secs = os.environ.get("IOVM_BENCH_GUEST_SECONDS", "2")
        r = guest_sh(GUEST, f"/tmp/devfwd-bench --read /dev/zero /dev/devfwd-zero --ioctl - /dev/input/devfwd-bench "
                     f"--kernel /dev/{KZERO} /dev/{KEV} --backend-evdev {ev} --floor /dev/devfwd-null "
                     f"--mmap /dev/zero /dev/{KZERO} --connect {addr} --seconds {secs}", timeout=2400, check=False)
        print(f"devfwd benchmark across the VM boundary (in guest CID {GUEST_CID}, virtio-vsock to this host; "
              "its native EVIOCGVERSION is this host's above):")
        print(r.stdout, end="")
        if r.returncode:
            fail(f"devfwd-bench in the guest failed: {r.stderr}\nbackend: {backend.log()[-1500:]}")
        alsa_xruns(addr, card, backend)
        guest_dmesg_clean(GUEST)
    finally:
        lab_guest("stop", GUEST, check=False)  # harmless when it did not start


def alsa_xruns(addr, card, backend):
    """ALSA_SECONDS of 48 kHz stereo S16 (silence from /dev/zero) played by
    `aplay -M` in the guest through devfwd.ko and the window into the
    host's snd-aloop; counts the xruns aplay reports ("underrun!!!")."""
    if subprocess.run(["sh", "-c", "command -v aplay"], capture_output=True).returncode:
        print("ALSA xruns: not measured (aplay not installed: alsa-utils)")
        return
    ctl, pcm = f"/dev/snd/controlC{card}", f"/dev/snd/pcmC{card}D0p"
    push_alsa(GUEST)
    r = guest_sh(GUEST, f"/tmp/devfwd-frontend --kernel --connect {addr} --connect-timeout 300 "
                 f"--device {ctl}=snd/controlC{ALSA_CARD} --device {pcm}=snd/pcmC{ALSA_CARD}D0p", timeout=400,
                 check=False)
    if r.returncode:
        fail(f"devfwd-frontend --kernel for the loopback card failed: {r.stdout} {r.stderr}")
    t0 = time.monotonic()
    r = guest_sh(GUEST, f"LD_LIBRARY_PATH=/tmp/alib /tmp/aplay -M -t raw -f S16_LE -c 2 -r 48000 "
                 f"-d {ALSA_SECONDS} -D hw:{ALSA_CARD},0 /dev/zero 2>&1; echo status=$?", timeout=1800, check=False)
    wall = time.monotonic() - t0
    out = r.stdout + r.stderr
    if "status=0" not in out:
        fail(f"aplay -M in the guest failed: {out.strip()}\nbackend: {backend.log()[-1500:]}")
    # aplay -M exits with an error when the buffer cannot be mapped: it
    # played through the window
    print(f"ALSA, aplay -M in the guest, {ALSA_SECONDS} s of 48 kHz stereo S16 through devfwd.ko into snd-aloop: "
          f"{out.count('underrun!!!')} xruns (aplay's underrun reports); {wall:.0f} s of wall time including the "
          "guest agent")
    print("  aplay said: " + " | ".join(l for l in out.splitlines() if l.strip())[-1200:])


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
