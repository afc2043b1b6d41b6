"""The relay's send step alone: CPU per packet of `DirectSender.send`, each way side by side.

    .venv/bin/python bench/relay_send.py [--frames 3000] [--rounds 2]

One viewer's worth of a camera-like stream (per 0.1 s: three video frames of 6 x 1,296 + 1 x
600 payload bytes, five 100-byte audio frames), sent by `streaming.hooks_send.DirectSender`
with real SRTP (AES-128-GCM, what aiortc negotiates first) over a real UDP socket on uvloop (as
the server runs) to a receiver process on 127.0.0.1 that reads every datagram. Four ways,
alternating `--rounds` times: the frame's datagrams one `sendto` each or in one `sendmsg`
(UDP GSO), and SRTP through pylibsrtp's `Session.protect` or `hooks_send.protector`. Reports
the sender's CPU (user + system, getrusage) per packet. The kernel's loopback delivery to the
receiver is charged to the sender, as it is to the relay in bench/relay.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import uvloop
from pylibsrtp import Policy, Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from streaming import hooks_send

VIDEO = [b"v" * 1296] * 6 + [b"w" * 600]
AUDIO = [b"a" * 100]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def receiver() -> tuple[socket.socket, int]:
    """A socket on 127.0.0.1 and a child process reading it until it is quiet for 2 s."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    pid = os.fork()
    if pid == 0:
        sock.settimeout(2)
        try:
            while True:
                sock.recv(2048)
        except TimeoutError:
            os._exit(0)
    return sock, pid


async def one_way(frames: int, batch: bool, fast: bool) -> float:
    loop = asyncio.get_running_loop()
    rx, child = receiver()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    policy = Policy(
        key=os.urandom(28),
        ssrc_type=Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    )
    session = Session(policy=policy)
    sender = SimpleNamespace(
        _ssrc=1,
        _RTCRtpSender__packet_count=0,
        _RTCRtpSender__octet_count=0,
        _RTCRtpSender__rtp_timestamp=0,
        _RTCRtpSender__ntp_timestamp=0,
    )
    direct: Any = hooks_send.DirectSender(SimpleNamespace(sender=sender))  # type: ignore[arg-type]
    direct._pt, direct._addr, direct._transport = 96, rx.getsockname(), transport
    direct._protect = hooks_send.protector(session) if fast else session.protect
    direct._sock = hooks_send._udp_socket(transport) if batch else None
    ext = {b"": b"\xbe\xde\x00\x02" + bytes(8)}  # mid + abs-send-time, as a browser negotiates
    packets = 0
    try:
        start = cpu()
        for i in range(frames):
            for _ in range(3):
                direct.send(SimpleNamespace(payloads=VIDEO, timestamp=i, octets=0, ext_cache=ext), 0, 0)
            for _ in range(5):
                direct.send(SimpleNamespace(payloads=AUDIO, timestamp=i, octets=0, ext_cache=ext), 0, 0)
            packets += 3 * len(VIDEO) + 5
            if i % 10 == 0:
                await asyncio.sleep(0.001)  # let the receiver keep up, as a paced stream would
        used = cpu() - start
    finally:
        direct.close()
        transport.close()
        rx.close()
        await asyncio.to_thread(os.waitpid, child, 0)
    return used / packets * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ways = {
        "sendto + pylibsrtp": (False, False),
        "sendto + protector": (False, True),
        "GSO + pylibsrtp": (True, False),
        "GSO + protector": (True, True),
    }
    results: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, (batch, fast) in ways.items():
            results[name].append(round(uvloop.run(one_way(args.frames, batch, fast)), 2))
    print(json.dumps({"us_per_packet": results}, indent=1))


if __name__ == "__main__":
    main()
