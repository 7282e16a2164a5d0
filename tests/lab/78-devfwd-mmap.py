#!/usr/bin/env python3
# lab-seconds: 540 (typical on a CI machine; scripts/run-tests starts the longest first)
# SPDX-License-Identifier: LGPL-2.1-or-later
"""mmap on a forwarded device through the guest's shared window, across a
real VM boundary: devfwd-backend on the emulated host, devfwd.ko in a guest
of it (guest CID 44), and a window hot-added to the running guest over QMP
(object-add memory-backend-file share=on on a file under /run, device_add
ivshmem-plain) that the backend maps too (policy key `window`).

- Before the window exists, mmap on a forwarded file fails with ENODEV.
- Once the guest's module has bound the ivshmem device, an unmodified
  `aplay -M -D hw:7,0` in the guest (alsa-lib pushed in with its config)
  plays a known sample pattern in mmap mode into snd-aloop on the emulated
  host, and `arecord` on the loopback's capture side records exactly those
  samples. The backend log shows the data buffer mapped through the window
  and the status/control pages refused (alsa-lib then uses SYNC_PTR, the
  coherence point).
- A fake backend that answers MMAP with a window range other than the one
  asked for (beyond the window, a longer length, a short reply) makes the
  mmap fail with EIO, and the guest kernel logs the cause, no oops."""
import os
import random
import re
import struct
import subprocess
import sys

from devfwd_lab import TMP, VERSION, Backend, FakeBackend, add_window, capture_running, fail, guest_dmesg_clean, \
    guest_sh, kmod_guest, kmod_tools, lab_guest, loopback_card, modprobe, push_alsa, reply_hdr, skip, wait_for, wav

GUEST, CID, PORT, FAKE_PORT = "devfwd-mmap", 44, 7078, 7079
WINDOW = f"/run/devfwd-window-{GUEST}"
WINDOW_SIZE = 1 << 20
FAKE_CARD = 7
RATE, CHANNELS, SECONDS = 48000, 2, 1
EIO, ENODEV, EINVAL = os.strerror(5), os.strerror(19), os.strerror(22)


guest = lab_guest


def gexec(cmd, timeout=120, check=True):
    return guest_sh(GUEST, cmd, timeout=timeout, check=check)


# ---- a fake backend: HELLO and OPEN honest, MMAP answered with a wrong range

HELLO, OPEN, RELEASE, MMAP = 1, 2, 3, 10
MODES = ("beyond-window", "longer", "short-reply")


class WrongRangeBackend(FakeBackend):
    def __init__(self, port):
        self.asked = []
        super().__init__(port, MODES)

    def answer(self, c, mode, op, rid, payload):
        if op == HELLO:
            c.sendall(reply_hdr(HELLO, rid, length=8) + struct.pack("<II", VERSION, 1 << 20))
        elif op == OPEN:
            c.sendall(reply_hdr(OPEN, rid, result=1))
        elif op == RELEASE:
            c.sendall(reply_hdr(RELEASE, rid, fh=1))
        elif op == MMAP:
            offset, win_off, ln, prot = struct.unpack("<QQII", payload)
            self.asked.append((mode, win_off, ln))
            if mode == "beyond-window":
                rep = struct.pack("<QII", win_off + WINDOW_SIZE, ln, 0)
            elif mode == "longer":
                rep = struct.pack("<QII", win_off, ln * 2, 0)
            else:
                rep = struct.pack("<Q", win_off)
            c.sendall(reply_hdr(MMAP, rid, fh=1, length=len(rep)) + rep)
        else:
            c.sendall(reply_hdr(op, rid, fh=1, result=-22))


def main():
    probe, frontend = kmod_tools()
    for tool in ("aplay", "arecord"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            skip(f"{tool} not installed (alsa-utils)")
    modprobe("snd-aloop", "vhost_vsock")
    card = loopback_card()
    ctl, pcm = f"/dev/snd/controlC{card}", f"/dev/snd/pcmC{card}D0p"
    with open(WINDOW, "wb") as f:
        f.truncate(WINDOW_SIZE)
    backend = Backend(f"[guest cid={CID}]\nallow-path = {ctl}\nallow-path = {pcm}\nallow-path = /dev/zero\nallow-ioctl = U:*\n"
                      f"allow-ioctl = A:*\nwindow = {WINDOW}\n", [f"vsock:{PORT}"], name="mmap")
    fake = WrongRangeBackend(FAKE_PORT)
    started, rec = False, None
    try:
        started = True  # stopping a guest that did not start is harmless
        kmod_guest(GUEST, CID, probe, frontend)
        push_alsa(GUEST)
        r = gexec(f"/tmp/devfwd-frontend --kernel --connect vsock:2:{PORT} --connect-timeout 300 "
                  f"--device {ctl}=snd/controlC{FAKE_CARD} --device {pcm}=snd/pcmC{FAKE_CARD}D0p --device /dev/zero=zerofwd && "
                  f"echo 'add 2 {FAKE_PORT} /dev/snd/pcmC0D0p fake0' > /dev/devfwd-ctl && cat /dev/devfwd-ctl",
                  check=False, timeout=400)
        if r.returncode or f"snd/pcmC{FAKE_CARD}D0p {pcm}" not in r.stdout:
            fail(f"devfwd-frontend --kernel did not set up the devices: {r.stdout} {r.stderr}")

        # 1. no window yet: mmap is refused as on the CUSE frontend.
        out = gexec(f"/tmp/probe mmap /dev/snd/pcmC{FAKE_CARD}D0p 4096").stdout
        if f"mmap=-1 errno={ENODEV}" not in out:
            fail(f"mmap without a window: {out!r}")
        print("no window: mmap refused with ENODEV", file=sys.stderr)

        # 2. the window, hot-added to the running guest.
        add_window(GUEST, WINDOW, WINDOW_SIZE)
        print("window: ivshmem-plain hot-added, bound by devfwd.ko", file=sys.stderr)

        # 3. what a guest process writes into a mapping lands in the host's window file
        out = gexec("/tmp/probe fill /dev/zerofwd 8192 171").stdout
        with open(WINDOW, "rb") as f:
            win = f.read()
        if "fill=0" not in out or win.count(bytes([171]) * 8192) != 1:
            fail(f"a guest mapping's bytes did not reach the window file: probe {out!r}, "
                 f"{win.count(171)} bytes 0xab in the window")
        print("fill: 8 KiB written through a guest mapping are in the host's window file", file=sys.stderr)

        # 3b. a file opened read-only maps MAP_SHARED (the kernel clears
        # VM_SHARED for it, not VM_MAYSHARE); MAP_PRIVATE stays refused.
        out = gexec("/tmp/probe romap /dev/zerofwd 8192").stdout
        if not re.search(r"romap=0 first=\d+ munmap=0", out) or f"private=-1 errno={EINVAL}" not in out:
            fail(f"mmap of a file opened read-only: {out!r}")
        print("read-only file: MAP_SHARED maps, MAP_PRIVATE refused with EINVAL", file=sys.stderr)

        # 4. a fake backend's MMAP replies naming another range: EIO.
        out = gexec("for i in 1 2 3; do /tmp/probe mmap /dev/fake0 8192; echo ---; done", timeout=300).stdout
        runs = out.split("---")[:3]
        if fake.seen != list(MODES):
            fail(f"the fake backend served {fake.seen}, expected {list(MODES)}; guest: {out}")
        for mode, r in zip(MODES, runs):
            if f"mmap=-1 errno={EIO}" not in r or f"again=-1 errno={EIO}" not in r:
                fail(f"fake backend '{mode}': the guest got {r!r}")
        print(f"malicious MMAP replies ({', '.join(MODES)}): mmap failed with EIO; asked {fake.asked}",
              file=sys.stderr)
        dmesg = guest_dmesg_clean(GUEST)
        if "another window range" not in dmesg or "does not fit its request" not in dmesg:
            fail(f"the guest's kernel log does not name the causes:\n{dmesg[-3000:]}")
        print("guest kernel: the causes logged, no BUG, Oops or WARNING", file=sys.stderr)

        # 5. aplay -M in the guest, arecord on the host's capture side.
        rnd = random.Random(78)
        samples = b"".join(struct.pack("<h", rnd.choice([-1, 1]) * rnd.randint(1, 32000))
                           for _ in range(RATE * CHANNELS * SECONDS))
        # alsa-lib's drain fills silence near the end (lab 72): a filler tail
        filler = b"".join(struct.pack("<h", rnd.randint(1, 32000)) for _ in range(RATE * CHANNELS // 2))
        src = os.path.join(TMP, "devfwd-mmap-pattern.wav")
        wav(src, samples + filler, RATE, CHANNELS)
        guest("push", GUEST, src, "/tmp/pattern.wav", "--mode", "644", timeout=600)
        out = os.path.join(TMP, "devfwd-mmap-captured.raw")
        # Long enough for a slow guest; stopped once aplay is done.
        rec = subprocess.Popen(["arecord", "-q", "-D", f"hw:{card},1,0", "-B", "4000000", "-t", "raw", "-f", "S16_LE",
                                "-c", str(CHANNELS), "-r", str(RATE), "-d", "600", out],
                               stderr=subprocess.PIPE, text=True)
        wait_for(lambda: capture_running(card) or rec.poll() is not None, "arecord to start capturing")
        if rec.poll() is not None:
            fail(f"arecord exited early: {rec.stderr.read()}")
        # The whole pattern fits the 4-s buffer: aplay fills it through the
        # window and drain plays it, so a slow nested guest cannot underrun.
        play = gexec(f"LD_LIBRARY_PATH=/tmp/alib /tmp/aplay -M -B 4000000 -D hw:{FAKE_CARD},0 /tmp/pattern.wav",
                     check=False, timeout=600)
        if play.returncode:
            fail(f"aplay -M in the guest failed ({play.returncode}): {play.stderr.strip()} {play.stdout.strip()}\n"
                 f"backend (last lines): {''.join(backend.log().splitlines(True)[-15:])}")
        # drain returned: the pattern has been played, and its filler tail
        # keeps arecord's last period clear of it
        rec.terminate()
        rec.wait(timeout=60)
        with open(out, "rb") as f:
            got = f.read()
        os.unlink(out)
        log = backend.log()
        if samples not in got:
            where = [got.find(samples[i:i + 4096]) for i in range(0, len(samples), 4096)]
            with open(WINDOW, "rb") as f:
                win = f.read()
            nz = len(got) - got.count(0)
            wanted = ("mmap", "mapped", "0x00004142", "0x00004144", "refused", "error")
            first_nz = next((i for i, b in enumerate(got) if b), -1)
            blocks64 = [got.find(samples[i:i + 64]) for i in range(0, len(samples), 16384)]
            print(f"capture from its first non-zero byte {first_nz}: {got[first_nz:first_nz + 48].hex()}\n"
                  f"pattern: {samples[:48].hex()}\n64-byte blocks every 16 KiB found at {blocks64}", file=sys.stderr)
            fail(f"captured {len(got)} bytes ({nz} non-zero) do not contain the {len(samples)} played bytes "
                 f"contiguously; 4 KiB blocks found at {where[:8]}...; pattern's first 4 KiB in the window file at "
                 f"{win.find(samples[:4096])}\naplay: {play.stderr.strip()}\nbackend:\n"
                 + "\n".join(l for l in log.splitlines() if any(w in l for w in wanted))
                 + f"\nSYNC_PTRs: {log.count('0xc0884123')}")
        mapped = [l for l in log.splitlines() if f"mapped {pcm} offset 0x0," in l]
        refused = [l for l in log.splitlines() if f"mmap of {pcm} (offset 0x80000000" in l]
        if not mapped or not refused:
            fail(f"the backend did not map the data buffer through the window and refuse the status page:\n{log[-3000:]}")
        if "SNDRV_PCM_IOCTL_WRITEI_FRAMES" in log:
            fail("aplay -M moved samples with WRITEI_FRAMES, not through the mapping")
        print(f"aplay -M: {len(samples)} bytes captured identically; {mapped[0].split(': ', 1)[-1]}", file=sys.stderr)

        dmesg = guest_dmesg_clean(GUEST)
        print("\n".join(l for l in dmesg.splitlines() if "devfwd" in l)[-3000:], file=sys.stderr)
    finally:
        if rec and rec.poll() is None:
            rec.kill()
        if started:
            guest("stop", GUEST, check=False)
        if backend.proc.poll() is None:
            backend.stop()
        fake.close()
        if os.path.exists(WINDOW):
            os.unlink(WINDOW)
    print(f"PASS: mmap through the shared window (vsock cid {CID}): ENODEV before the window, aplay -M in the "
          "guest captured identically on the host, malicious MMAP replies give EIO, no oops")


if __name__ == "__main__":
    main()
