#!/usr/bin/env python3
# lab-seconds: 200 (typical on a CI machine; scripts/run-tests starts the longest first)
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A camera through devfwd.ko across a real VM boundary: the kernel's vivid
test driver on the emulated host, devfwd-backend there, devfwd.ko in a guest
of it (guest CID 45) and the guest's shared window hot-added over QMP as in
lab 78. One client (tests/lab/tools/devfwd-v4l2-capture.c, static) captures
on both sides with the same setup: input 0 (a webcam), YUYV 320x180, vivid's
OSD text off and no movement (its defaults), so every frame of the pattern
is the same, 4 MMAP buffers. In the guest the client overwrites every
buffer it dequeued before it queues it again (on the host it keeps them).

- The host's own capture: N frames from /dev/videoN, all identical.
- Before the window exists, REQBUFS works through the module and mmap of a
  buffer fails with ENODEV.
- What devfwd does not forward is refused by the guest's module, never
  sent (EINVAL: USERPTR and DMABUF REQBUFS, a USERPTR QBUF, a multi-planar
  REQBUFS, an overlay S_FMT; ENOTTY: EXPBUF); what vivid itself answers to
  the same calls on the host is printed beside it.
- With the window: the guest streams N frames with MMAP buffers and each is
  byte for byte the host's frame (the client compares them with the host's
  first frame, pushed in). The backend log shows the buffers mapped through
  the window and DQBUF forwarded.
- For comparison, a second backend whose V4L2 mappings follow the generic
  coherence rule (copies of every mapping around every ioctl; a test
  build's hook) serves the same capture as /dev/video1: how many of its
  frames are the host's is printed, not asserted (it depends on timing).
- The guest kernel logs no BUG, Oops or WARNING.

Frames per second on both sides are printed, never asserted."""
import os
import re
import subprocess
import sys

from devfwd_lab import BUILD, IOWR, TMP, Backend, add_window, fail, guest_dmesg_clean, guest_sh, kmod_guest, \
    kmod_tools, lab_guest, modprobe, skip, wait_for

GUEST, CID, PORT, GENERIC_PORT = "devfwd-camera", 45, 7080, 7081
WINDOW = f"/run/devfwd-window-{GUEST}"
WINDOW_SIZE = 1 << 20
FRAMES = 20
EINVAL, ENOTTY, ENODEV = os.strerror(22), os.strerror(25), os.strerror(19)
# node_types bit 0: one video capture node; one input, a webcam (input_types 0)
REQBUFS, QBUF, EXPBUF = IOWR("V", 8, 20), IOWR("V", 15, 88), IOWR("V", 16, 64)  # videodev2.h, x86_64
VIVID = ["vivid", "n_devs=1", "node_types=0x1", "num_inputs=1", "input_types=0x0", "no_error_inj=1"]

guest = lab_guest


def gexec(cmd, timeout=120, check=True):
    return guest_sh(GUEST, cmd, timeout=timeout, check=check)


def vivid_node():
    """/dev/videoN of vivid's capture node."""
    if not os.path.isdir("/sys/class/video4linux"):
        return None
    for d in sorted(os.listdir("/sys/class/video4linux")):
        with open(f"/sys/class/video4linux/{d}/name") as f:
            if f.read().strip() == "vivid-000-vid-cap":
                return f"/dev/{d}"
    return None


def fields(out):
    """key=value lines of the client, the last of each key."""
    return dict(m.groups() for m in re.finditer(r"^(\w+)=(.*)$", out, re.M))


def host_capture(client, dev):
    """The host's own capture: returns (frame bytes, fps line, output)."""
    raw = os.path.join(TMP, "devfwd-camera-host.raw")
    r = subprocess.run([client, "stream", "--keep", dev, str(FRAMES), raw], capture_output=True, text=True,
                       timeout=300)
    if r.returncode:
        fail(f"the host's own capture from {dev} failed: {r.stdout} {r.stderr}")
    f = fields(r.stdout)
    size = int(re.search(r"sizeimage=(\d+)", r.stdout).group(1))
    with open(raw, "rb") as fp:
        data = fp.read()
    os.unlink(raw)
    if len(data) != FRAMES * size:
        fail(f"the host captured {len(data)} bytes, not {FRAMES} frames of {size}")
    frames = [data[i * size:(i + 1) * size] for i in range(FRAMES)]
    if any(fr != frames[0] for fr in frames):
        fail("vivid's frames differ from one another on the host, the pattern is not still: "
             + ", ".join(l.split(" fnv=")[1] for l in r.stdout.splitlines() if " fnv=" in l))
    return frames[0], f.get("fps", "?"), r.stdout


def main():
    probe, frontend = kmod_tools()
    client = os.path.join(BUILD, "src/devfwd/devfwd-v4l2-capture")
    if not os.access(client, os.X_OK):
        skip(f"{client} not built")
    r = subprocess.run(["modprobe", *VIVID], capture_output=True, text=True)
    if r.returncode:
        skip(f"modprobe vivid failed: {r.stderr.strip()}")
    modprobe("vhost_vsock")
    dev = wait_for(vivid_node, "vivid's capture node in /sys/class/video4linux")
    wait_for(lambda: os.path.exists(dev), dev)

    # 1. the host's own capture of the pattern, and what vivid itself accepts
    ref, host_fps, out = host_capture(client, dev)
    print(f"host: {FRAMES} frames of {len(ref)} bytes from {dev}, all identical, {host_fps} frames/s\n"
          + "\n".join(l for l in out.splitlines() if not l.startswith("frame=")), file=sys.stderr)
    native = fields(subprocess.run([client, "refuse", dev], capture_output=True, text=True, timeout=60).stdout)
    refpath = os.path.join(TMP, "devfwd-camera-ref.raw")
    with open(refpath, "wb") as f:
        f.write(ref)

    with open(WINDOW, "wb") as f:
        f.truncate(WINDOW_SIZE)
    policy = f"[guest cid={CID}]\nallow-path = {dev}\nallow-ioctl = V:*\nwindow = {WINDOW}\n"
    backend = Backend(policy, [f"vsock:{PORT}"], name="camera")
    generic = Backend(policy, [f"vsock:{GENERIC_PORT}"], name="camera-generic",
                      wrap=("env", "IOVM_DEVFWD_TEST_HOOKS=1", "IOVM_DEVFWD_TEST_GENERIC_COHERENCE=1"))
    started = False
    try:
        started = True  # stopping a guest that did not start is harmless
        kmod_guest(GUEST, CID, probe, frontend)
        guest("push", GUEST, client, "/tmp/cap", "--mode", "755", timeout=600)
        guest("push", GUEST, refpath, "/tmp/ref.raw", "--mode", "644", timeout=600)
        r = gexec(f"/tmp/devfwd-frontend --kernel --connect vsock:2:{PORT} --connect-timeout 300 "
                  f"--device {dev}=video0 && /tmp/devfwd-frontend --kernel --connect vsock:2:{GENERIC_PORT} "
                  f"--device {dev}=video1 && cat /dev/devfwd-ctl", check=False, timeout=400)
        if r.returncode or f"video0 {dev}" not in r.stdout or f"video1 {dev}" not in r.stdout:
            fail(f"devfwd-frontend --kernel did not set up the camera: {r.stdout} {r.stderr}")

        # 2. no window yet: buffers can be requested, not mapped
        out = gexec("/tmp/cap nomap /dev/video0").stdout
        if "reqbufs=2" not in out or f"mmap=-1 errno={ENODEV}" not in out or "reqbufs0=0" not in out:
            fail(f"streaming without a window: {out!r}")
        print("no window: REQBUFS through the module, mmap of a buffer refused with ENODEV", file=sys.stderr)

        # 3. refused in the guest what vivid would accept or what carries
        # pointers: by the module, none of it reaches the backend
        sent = [backend.log().count(f"ioctl 0x{c:08x}") for c in (REQBUFS, QBUF, EXPBUF)]
        got = fields(gexec("/tmp/cap refuse /dev/video0").stdout)
        want = {"reqbufs_userptr": EINVAL, "reqbufs_dmabuf": EINVAL, "qbuf_userptr": EINVAL,
                "reqbufs_mplane": EINVAL, "s_fmt_overlay": EINVAL, "expbuf": ENOTTY}
        for k, e in want.items():
            if got.get(k) != f"-1 errno={e}":
                fail(f"guest {k}: {got.get(k)!r}, expected errno {e} (all: {got})")
        if got.get("g_fmt") != "0":
            fail(f"a plain VIDIOC_G_FMT after the refusals: {got.get('g_fmt')!r}")
        after = [backend.log().count(f"ioctl 0x{c:08x}") for c in (REQBUFS, QBUF, EXPBUF)]
        if after != sent:
            fail(f"REQBUFS, QBUF, EXPBUF the backend logged before and after the refusals: {sent}, {after}")
        names = {EINVAL: "EINVAL", ENOTTY: "ENOTTY"}
        print("refused by the guest's module: " + ", ".join(f"{k} ({names[e]})" for k, e in want.items())
              + f"; vivid itself on the host: reqbufs_userptr={native.get('reqbufs_userptr')}, "
              f"reqbufs_dmabuf={native.get('reqbufs_dmabuf')}", file=sys.stderr)

        # 4. the window, hot-added to the running guest (as in lab 78)
        add_window(GUEST, WINDOW, WINDOW_SIZE)
        print("window: ivshmem-plain hot-added, bound by devfwd.ko", file=sys.stderr)

        # 5. the guest streams with MMAP buffers; every frame is the host's
        r = gexec(f"/tmp/cap stream /dev/video0 {FRAMES} /tmp/guest.raw /tmp/ref.raw", check=False, timeout=900)
        got = fields(r.stdout)
        log = backend.log()
        if r.returncode or got.get("identical") != f"{FRAMES}/{FRAMES}":
            fail(f"guest capture ({r.returncode}): {r.stdout} {r.stderr}\nbackend (last lines):\n"
                 + "".join(log.splitlines(True)[-20:]))
        mapped = [l for l in log.splitlines() if f"mapped {dev} offset" in l]
        dqbufs = log.count("VIDIOC_DQBUF")
        if len(mapped) < 4 or dqbufs < FRAMES:
            fail(f"the backend log shows {len(mapped)} buffers mapped and {dqbufs} DQBUF: \n{log[-3000:]}")
        print(f"guest: {FRAMES} frames through devfwd.ko with MMAP buffers, each identical to the host's "
              f"({len(ref)} bytes); {len(mapped)} buffers mapped through the window "
              f"({mapped[0].split(': ', 1)[-1]})", file=sys.stderr)
        print(f"frames per second: host {host_fps}, guest through devfwd.ko {got.get('fps', '?')} "
              f"(vivid asked for 60; nested TCG, not asserted)", file=sys.stderr)

        # 6. the same capture with the generic rule, for comparison only
        if "GENERIC coherence rule" in generic.log():
            r = gexec(f"/tmp/cap stream /dev/video1 {FRAMES} /tmp/generic.raw /tmp/ref.raw", check=False, timeout=900)
            bad = [l.split(" ", 2)[2] for l in r.stdout.splitlines() if " differs=" in l]
            print(f"generic coherence rule (comparison, not asserted): "
                  f"{fields(r.stdout).get('identical', f'failed ({r.returncode}): {r.stderr.strip()}')} frames "
                  f"identical to the host's, {fields(r.stdout).get('fps', '?')} frames/s"
                  + ("; the others: " + "; ".join(bad[:4]) if bad else ""), file=sys.stderr)
        else:
            print("generic coherence rule: not compared (devfwd-backend built without test hooks)", file=sys.stderr)

        dmesg = guest_dmesg_clean(GUEST)
        print("\n".join(l for l in dmesg.splitlines() if "devfwd" in l)[-2000:], file=sys.stderr)
    finally:
        if started:
            guest("stop", GUEST, check=False)
        for b in (backend, generic):
            if b.proc.poll() is None:
                b.stop()
        for p in (WINDOW, refpath):
            if os.path.exists(p):
                os.unlink(p)
    print(f"PASS: a vivid camera streamed in a guest (vsock cid {CID}) with MMAP buffers through devfwd.ko: "
          f"{FRAMES} frames identical to the host's capture, ENODEV before the window, USERPTR/DMABUF/"
          "multi-planar/overlay/EXPBUF refused, no oops")


if __name__ == "__main__":
    main()
