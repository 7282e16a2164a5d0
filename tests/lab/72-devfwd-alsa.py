#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""devfwd, audio class, on a real ALSA driver (snd-aloop): the loopback
card's control and playback PCM are forwarded over vsock loopback (CID 1) as
card 7. An unmodified `aplay -D hw:7,0` plays a known sample pattern in
read/write mode (SNDRV_PCM_IOCTL_WRITEI_FRAMES, whose struct snd_xferi
carries a nested buffer pointer; alsa-lib falls back to SYNC_PTR because
mmap is not forwarded), and `arecord` on the host's loopback capture side
records exactly those samples."""
import os
import random
import struct
import subprocess
import sys
import time

from devfwd_lab import TMP, Backend, Frontend, capture_running, fail, loopback_card, modprobe, skip, wait_for, \
    wav

PORT = 7072
FAKE_CARD = 7
RATE, CHANNELS = 48000, 2
SECONDS = 1


def main():
    for tool in ("aplay", "arecord"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            skip(f"{tool} not installed (alsa-utils)")
    modprobe("cuse", "snd-aloop", "vsock_loopback")
    card = loopback_card()
    ctl, pcm = f"/dev/snd/controlC{card}", f"/dev/snd/pcmC{card}D0p"
    backend = Backend(f"[guest cid=1]\nallow-path = {ctl}\nallow-path = {pcm}\nallow-ioctl = U:*\n"
                      "allow-ioctl = A:*\n", [f"vsock:{PORT}"], name="alsa")
    frontend = Frontend(f"vsock:1:{PORT}", [(ctl, f"snd/controlC{FAKE_CARD}"), (pcm, f"snd/pcmC{FAKE_CARD}D0p")],
                        name="alsa")
    rec = None
    try:
        rnd = random.Random(72)
        # Non-zero samples, so silence can never match the pattern.
        samples = b"".join(struct.pack("<h", rnd.choice([-1, 1]) * rnd.randint(1, 32000))
                           for _ in range(RATE * CHANNELS * SECONDS))
        src = os.path.join(TMP, "devfwd-pattern.wav")
        out = os.path.join(TMP, "devfwd-captured.raw")
        # alsa-lib's drain fills silence near the end of the stream and that
        # overwrote a period of the tail even with native aplay on this kernel;
        # a filler tail keeps the compared pattern clear of it.
        filler = b"".join(struct.pack("<h", rnd.randint(1, 32000)) for _ in range(RATE * CHANNELS // 2))
        wav(src, samples + filler, RATE, CHANNELS)
        rec = subprocess.Popen(["arecord", "-q", "-D", f"hw:{card},1,0", "-t", "raw", "-f", "S16_LE",
                                "-c", str(CHANNELS), "-r", str(RATE), "-d", str(SECONDS + 4), out],
                               stderr=subprocess.PIPE, text=True)
        wait_for(lambda: capture_running(card) or rec.poll() is not None, "arecord to start capturing")
        if rec.poll() is not None:
            fail(f"arecord exited early: {rec.stderr.read()}")
        t0 = time.monotonic()
        play = subprocess.run(["aplay", "-D", f"hw:{FAKE_CARD},0", src], capture_output=True, text=True,
                              timeout=120)
        if play.returncode:
            fail(f"aplay through devfwd failed ({play.returncode}): {play.stderr.strip()}\n"
                 f"frontend: {frontend.log()}\nbackend: {backend.log()}")
        print(f"aplay through devfwd took {time.monotonic() - t0:.1f}s for {SECONDS}s of audio", file=sys.stderr)
        rec.wait(timeout=60)
        with open(out, "rb") as f:
            got = f.read()
        if samples not in got:
            # Say where each 4 KiB block landed, to tell xruns from corruption.
            where = [got.find(samples[i:i + 4096]) for i in range(0, len(samples), 4096)]
            fail(f"captured {len(got)} bytes do not contain the {len(samples)} played bytes contiguously; "
                 f"4 KiB blocks found at {where}\naplay: {play.stderr.strip()}\narecord: {rec.stderr.read().strip()}\n"
                 f"backend (last lines): {''.join(backend.log().splitlines(True)[-8:])}")
        if "SNDRV_PCM_IOCTL_WRITEI_FRAMES" not in backend.log():
            fail("the samples did not travel through SNDRV_PCM_IOCTL_WRITEI_FRAMES")
    finally:
        if rec and rec.poll() is None:
            rec.kill()
        frontend.stop()
        backend.stop()
    print("PASS: aplay in read/write mode through devfwd; arecord captured the identical samples")


if __name__ == "__main__":
    main()
