"""The naive baseline for bench/relay.py: aiortc's MediaRelay (decode once, encode per viewer)
behind the same WHIP/WHEP URLs as livecart, so the same peers can drive both.

    relay_baseline.py PORT
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from streaming import hooks

relay = MediaRelay()
tracks: dict[str, MediaStreamTrack] = {}
pcs: set[RTCPeerConnection] = set()


async def _answer(pc: RTCPeerConnection, offer: str) -> web.Response:
    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    assert pc.localDescription is not None
    pcs.add(pc)
    return web.Response(
        status=201,
        text=pc.localDescription.sdp,
        content_type="application/sdp",
        headers={"Location": "/session"},
    )


async def whip(request: web.Request) -> web.Response:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        tracks[track.kind] = track

    return await _answer(pc, await request.text())


async def whep(request: web.Request) -> web.Response:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for kind in ("video", "audio"):
        if kind in tracks:
            pc.addTrack(relay.subscribe(tracks[kind]))
    return await _answer(pc, await request.text())


def main() -> None:
    hooks.install(("127.0.0.1",))
    app = web.Application()
    app.router.add_post("/api/streams/{id}/whip", whip)
    app.router.add_post("/api/streams/{id}/whep", whep)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
