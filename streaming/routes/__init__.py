"""HTTP edge of streaming: streams (create, read, end, pin), WebRTC sessions (WHIP, WHEP) and
Low-Latency HLS."""

from __future__ import annotations

from streaming.routes import hls, streams, webrtc

ROUTES = [*streams.ROUTES, *webrtc.ROUTES, *hls.ROUTES]
