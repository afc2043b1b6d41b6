"""What happened in a show, for its replay: pins, sales, chat and purchases, each at its offset
from the start of the recording.

While a show is recorded, its room's history (the broker keeps the last 1,000 events per room)
is read every `POLL_S` from the last event read, so nothing is missed unless a room sends more
than 1,000 events in that time (then the gap is logged). When the show ends the rest is read
and `timeline.json` goes into the recording with the segments: `{started_at, events: [{offset,
type, data}]}`. A chat line the host deleted is left out, as the live pages remove it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson

from chat.broker import Event
from core.logs import log

logger = logging.getLogger("livecart.recording")

POLL_S = 5.0
FILE = "timeline.json"
KEPT = frozenset({"pin", "unpin", "sale", "sale_end", "chat", "purchase"})
# A room's events after a seq (None: history no longer reaches back that far): the broker's.
History = Callable[[str, int], Awaitable[list[Event] | None]]


class Timeline:
    def __init__(self, history: History, stream_id: str) -> None:
        self._history = history
        self.stream_id = stream_id
        self.events: list[Event] = []
        self.deleted: set[str] = set()
        self._last = 0
        self.gaps = 0

    async def catch_up(self) -> None:
        events = await self._history(self.stream_id, self._last)
        if events is None:
            self.gaps += 1
            log(logger, logging.WARNING, "timeline missed events", stream=self.stream_id, after=self._last)
            return
        for event in events:
            self._last = max(self._last, event.seq)
            if event.type in KEPT:
                self.events.append(event)
            elif event.type == "moderation" and event.data.get("action") == "delete":
                self.deleted.add(str(event.data.get("message_id")))

    def encode(self, segments: Sequence[Recorded]) -> bytes:
        """The events at their offsets in the recording: a moment's offset is where the segment
        that was recording then sits in the replay (a show recorded in several runs has gaps that
        the replay skips); a moment in a gap is placed where the next run begins."""
        entries: list[dict[str, Any]] = [
            {"offset": offset(segments, event.ts), "type": event.type, "data": event.data}
            for event in self.events
            if not (event.type == "chat" and event.data.get("id") in self.deleted)
        ]
        return orjson.dumps({"started_at": segments[0].started if segments else 0.0, "events": entries})


class Recorded(Protocol):
    @property
    def duration(self) -> float: ...

    @property
    def started(self) -> float: ...


def offset(segments: Sequence[Recorded], ts: float) -> float:
    """Where wall-clock time `ts` falls in the replay of `segments` (in order), in seconds."""
    played = 0.0
    for segment in segments:
        if ts < segment.started + segment.duration:
            return round(played + max(0.0, ts - segment.started), 3)
        played += segment.duration
    return round(played, 3)
