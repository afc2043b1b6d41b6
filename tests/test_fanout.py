"""A room's local fan-out batches by its window from the end of the last flush.

Events from Redis arrive one per loop turn; a flush to thousands of sockets can take longer
than the batch window. Timed from a flush's start, every such event went out alone and paid
the whole per-socket cost again; timed from its end, the events of the next window share a frame.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from chat.broker import Event
from chat.fanout import Connection, Counters, LocalRoom


class SlowTransport:
    """A socket's transport whose every write costs `cost_s` of the loop's time, as 10,000 do."""

    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s
        self.frames: list[bytes] = []

    def write(self, data: bytes) -> None:
        time.sleep(self.cost_s)
        self.frames.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        raise AssertionError("nobody is slow here")


def _events(frames: list[bytes]) -> list[int]:
    seqs: list[int] = []
    for frame in frames:
        body = orjson.loads(frame[2:] if frame[1] < 126 else frame[4:])
        seqs.extend(e["seq"] for e in (body if isinstance(body, list) else [body]))
    return seqs


async def test_events_arriving_one_per_turn_during_long_flushes_share_frames() -> None:
    room = LocalRoom(
        "r", send_buffer_limit=1 << 20, batch_window_s=0.05, counters=Counters(), on_drop=lambda r, c: None
    )
    transports = [SlowTransport(0.0008) for _ in range(100)]  # a flush takes ~80 ms, over the window
    for transport in transports:
        conn = Connection(transport, binary=False, user=None, closer=lambda code, reason: None)
        conn.catching_up = False
        room.sockets[conn.id] = conn
    deadline = time.monotonic() + 10
    for seq in range(1, 21):  # one event every 10 ms, each on its own loop turn
        room.push(Event(seq, "chat", time.time(), {"n": seq}))
        await asyncio.sleep(0.01)
    while _events(transports[0].frames)[-1:] != [20] and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    frames = transports[0].frames
    assert _events(frames) == list(range(1, 21))  # every event, in order, once
    assert len(frames) <= 12, f"{len(frames)} frames for 20 events: nothing batched"
    assert all(t.frames == frames for t in transports)
