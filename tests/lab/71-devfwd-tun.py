#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""devfwd, network class, on the real tun driver: /dev/net/tun forwarded
over vsock loopback (CID 1). TUNSETIFF through the CUSE device creates the
interface on the host; a UDP datagram sent by the host is read from the
forwarded file, and a datagram written to it reaches a host socket."""
import fcntl
import os
import select
import socket
import struct
import subprocess

from devfwd_lab import IOR, IOW, Backend, Frontend, fail, modprobe, wait_for

TUNSETIFF, TUNGETIFF = IOW("T", 202, 4), IOR("T", 210, 4)
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
IFNAME = "dftun0"
HOST_IP, GUEST_IP = "10.77.0.1", "10.77.0.2"
PORT = 7071


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_packet(src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + udp


def ip(*args):
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode:
        fail(f"ip {' '.join(args)}: {r.stderr.strip()}")


def main():
    modprobe("cuse", "tun", "vsock_loopback")
    backend = Backend("[guest cid=1]\nallow-path = /dev/net/tun\nallow-ioctl = T:*\n"
                      "worker-capability = net_admin\n", [f"vsock:{PORT}"], name="tun")
    frontend = Frontend(f"vsock:1:{PORT}", [("/dev/net/tun", "net/devfwd-tun")], name="tun")
    try:
        fd = os.open("/dev/net/devfwd-tun", os.O_RDWR)
        ifr = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", IFNAME.encode(), IFF_TUN | IFF_NO_PI))
        if ifr[:16].rstrip(b"\0").decode() != IFNAME:
            fail(f"TUNSETIFF returned name {ifr[:16]!r}")
        if not os.path.exists(f"/sys/class/net/{IFNAME}"):
            fail(f"TUNSETIFF through devfwd did not create {IFNAME} on the host")
        got = fcntl.ioctl(fd, TUNGETIFF, b"\0" * 40)
        name, flags = struct.unpack("16sH", got[:18])
        if name.rstrip(b"\0").decode() != IFNAME or not flags & IFF_TUN:
            fail(f"TUNGETIFF gave {name!r} flags {flags:#x}")
        ip("addr", "add", f"{HOST_IP}/24", "dev", IFNAME)
        ip("link", "set", IFNAME, "up")

        # host -> forwarded file
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.sendto(b"to-guest-via-devfwd", (GUEST_IP, 9999))
        while True:
            r, _, _ = select.select([fd], [], [], 20)
            if not r:
                fail("no packet arrived on the forwarded tun within 20 s")
            pkt = os.read(fd, 2048)
            if pkt[0] >> 4 == 4 and pkt[9] == 17 and socket.inet_ntoa(pkt[16:20]) == GUEST_IP:
                break
        if not pkt.endswith(b"to-guest-via-devfwd"):
            fail(f"unexpected packet {pkt.hex()}")

        # forwarded file -> host
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind((HOST_IP, 0))
        rx.settimeout(20)
        n = os.write(fd, udp_packet(GUEST_IP, HOST_IP, 9999, rx.getsockname()[1], b"to-host-via-devfwd"))
        if n <= 0:
            fail(f"write to forwarded tun returned {n}")
        data, peer = rx.recvfrom(2048)
        if data != b"to-host-via-devfwd" or peer[0] != GUEST_IP:
            fail(f"host socket got {data!r} from {peer}")
        os.close(fd)
        # A non-persistent tun disappears when its only opener closes it.
        wait_for(lambda: not os.path.exists(f"/sys/class/net/{IFNAME}"), f"{IFNAME} removal after close", 20)
    finally:
        frontend.stop()
        backend.stop()
    print("PASS: tun forwarded (TUNSETIFF/TUNGETIFF, packets both ways, close removes the interface)")


if __name__ == "__main__":
    main()
