"""A room's local fan-out: no wait a room that keeps up does not need, and batches once behind.

Events from Redis arrive one per loop turn; a flush to thousands of sockets can take longer
than the batch window. Timed from a flush's start, every such event went out alone and paid
the whole per-socket cost again, so a room that fell behind stayed behind; once its events
have waited a window, the window runs from the last flush's end and they share frames.
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


def _room(sockets: int, cost_s: float) -> tuple[LocalRoom, list[SlowTransport]]:
    room = LocalRoom(
        "r", send_buffer_limit=1 << 20, batch_window_s=0.05, counters=Counters(), on_drop=lambda r, c: None
    )
    transports = [SlowTransport(cost_s) for _ in range(sockets)]
    for transport in transports:
        conn = Connection(transport, binary=False, user=None, closer=lambda code, reason: None)
        conn.catching_up = False
        room.sockets[conn.id] = conn
    return room, transports


async def test_a_room_that_fell_behind_sends_its_events_together() -> None:
    room, transports = _room(100, 0.0008)  # a flush takes ~80 ms, over the window
    deadline = time.monotonic() + 10
    for seq in range(1, 21):  # one event every 10 ms, each on its own loop turn, each already late
        room.push(Event(seq, "chat", time.time() - 0.2, {"n": seq}))
        await asyncio.sleep(0.01)
    while _events(transports[0].frames)[-1:] != [20] and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    frames = transports[0].frames
    assert _events(frames) == list(range(1, 21))  # every event, in order, once
    assert len(frames) <= 12, f"{len(frames)} frames for 20 events: nothing batched"
    assert all(t.frames == frames for t in transports)


async def test_a_room_that_keeps_up_sends_each_event_at_once() -> None:
    """Fresh events further apart than the window go out one by one, none held back."""
    room, transports = _room(10, 0.0)
    for seq in range(1, 6):
        room.push(Event(seq, "chat", time.time(), {"n": seq}))
        await asyncio.sleep(0)  # the flush's loop turn
        await asyncio.sleep(0)
        assert _events(transports[0].frames) == list(range(1, seq + 1)), "an event was held back"
        await asyncio.sleep(0.06)
    assert len(transports[0].frames) == 5
