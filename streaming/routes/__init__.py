"""HTTP edge of streaming: streams (create, read, end, pin) and WebRTC sessions (WHIP, WHEP)."""

from __future__ import annotations

from streaming.routes import streams, webrtc

ROUTES = [*streams.ROUTES, *webrtc.ROUTES]
