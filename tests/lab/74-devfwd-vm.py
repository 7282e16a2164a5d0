#!/usr/bin/env python3
# lab-seconds: 240 (typical on a CI machine; scripts/run-tests starts the longest first)
# SPDX-License-Identifier: LGPL-2.1-or-later
"""devfwd across a real VM boundary: devfwd-backend on the emulated host,
devfwd-frontend inside a guest of it (lab/guest, busybox userland, the
static frontend pushed in), over virtio-vsock (vhost-vsock, guest CID 42).
Unmodified busybox tools in the guest read the host's uinput keyboard events
and /dev/zero through CUSE devices; /dev/full, not in the guest's policy,
is refused; the backend sees the guest by its CID."""
import os
import struct
import subprocess
import sys
import time

from devfwd_lab import BUILD, LAB_GUEST, Backend, fail, guest_sh, lab_guest, make_uinput_keyboard, modprobe, \
    skip, wait_for

GUEST, CID, PORT = "devfwd", 42, 7074


guest = lab_guest


def gexec(cmd, timeout=120, check=True):
    return guest_sh(GUEST, cmd, timeout=timeout, check=check)


def main():
    static = os.path.join(BUILD, "src/devfwd/devfwd-frontend-static")
    if not os.access(static, os.X_OK):
        skip(f"{static} not built (needs libfuse3's static library)")
    if not os.access(LAB_GUEST, os.X_OK):
        skip("lab/guest is missing")
    modprobe("evdev", "uinput", "vhost_vsock")
    ufd, ev = make_uinput_keyboard(b"devfwd-vm-kbd")
    backend = Backend(f"[guest cid={CID}]\nallow-path = {ev}\nallow-path = /dev/zero\nallow-ioctl = E:*\n",
                      [f"vsock:{PORT}"], name="vm")
    started = False
    try:
        t0 = time.monotonic()
        guest("start", GUEST, "--cid", str(CID), timeout=1200)
        started = True
        print(f"guest up in {time.monotonic() - t0:.0f}s", file=sys.stderr)
        guest("push", GUEST, static, "/tmp/devfwd-frontend", "--mode", "755", timeout=600)
        # The guest's own vsock transport and CUSE come from its initramfs.
        gexec("modprobe cuse 2>/dev/null; modprobe vmw_vsock_virtio_transport 2>/dev/null; "
              f"/tmp/devfwd-frontend --connect vsock:2:{PORT} --connect-timeout 300 --device {ev}=input/event0 "
              "--device /dev/zero=devfwd-zero --device /dev/full=devfwd-full "
              "</dev/null >/tmp/frontend.log 2>&1 &")
        try:
            # Each probe is a guest-agent round trip, seconds on a loaded machine.
            wait_for(lambda: gexec("test -e /dev/input/event0 && test -e /dev/devfwd-zero",
                                   check=False).returncode == 0,
                     "the forwarded devices in the guest", timeout=360, interval=2)
        except SystemExit:
            diag = gexec("cat /tmp/frontend.log; ls -l /dev/input /dev/devfwd-* /dev/cuse; lsmod | grep -e cuse -e vsock; "
                         "dmesg | tail -n 20", check=False, timeout=60)
            print(f"guest side:\n{diag.stdout}{diag.stderr}\nbackend log:\n{backend.log()}", file=sys.stderr)
            raise

        # /dev/zero through the VM boundary, with busybox dd.
        t0 = time.monotonic()
        out = gexec("dd if=/dev/devfwd-zero bs=65536 count=16 2>/dev/null | wc -c").stdout.strip()
        dt = time.monotonic() - t0
        if out != str(16 * 65536):
            fail(f"reading the forwarded /dev/zero in the guest gave {out!r} bytes")
        print(f"guest read 1 MiB of the host's /dev/zero in {dt:.1f}s including lab/guest exec overhead",
              file=sys.stderr)

        # Key events from the host's uinput device, read by dd in the guest.
        reader = subprocess.Popen([LAB_GUEST, "exec", "--timeout", "120", GUEST, "--", "sh", "-c",
                                   "dd if=/dev/input/event0 bs=24 count=4 2>/dev/null | od -An -tx1 -v"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 150
        while reader.poll() is None and time.monotonic() < deadline:
            # evdev delivers only what happens after open: keep typing 'a'.
            for t, c, v in ((1, 30, 1), (0, 0, 0), (1, 30, 0), (0, 0, 0)):
                os.write(ufd, struct.pack("llHHi", 0, 0, t, c, v))
            time.sleep(0.5)
        if reader.poll() is None:
            reader.kill()
            fail("the guest never read key events through devfwd")
        out, err = reader.communicate()
        data = bytes(int(x, 16) for x in out.split())
        keys = [struct.unpack("HHi", data[i + 16:i + 24]) for i in range(0, len(data) - 23, 24)]
        if (1, 30, 1) not in keys and (1, 30, 0) not in keys:
            fail(f"guest read {len(data)} bytes without a KEY_A event: {keys} {err}")

        # Not in the policy: refused at open, and the backend logged it.
        r = gexec("cat /dev/devfwd-full", check=False)
        if r.returncode == 0 or "ermission denied" not in r.stdout + r.stderr:
            fail(f"opening /dev/full through devfwd was not refused: {r.returncode} {r.stdout} {r.stderr}")
        wait_for(lambda: f"vsock cid {CID} (cid {CID}): open /dev/full refused" in backend.log(),
                 "the backend to log the refusal", timeout=10)
    finally:
        if started:
            guest("stop", GUEST, check=False)
        backend.stop()
        os.close(ufd)
    print(f"PASS: devfwd across a VM boundary (vhost-vsock, guest cid {CID}): input events, /dev/zero, "
          "policy refusal")


if __name__ == "__main__":
    main()
