"""What a room asks of the thing it is about, declared here and answered by its owner.

A room is a channel with a key; chat does not know streams. A stream's room needs two
answers from the streams, wired in server/app.py: who moderates it (its host, for
`moderate` and the blocked-words list) and how to describe it in a socket's `hello`.
"""

from __future__ import annotations

from typing import Any, Protocol


class Subjects(Protocol):
    async def owner(self, room: str) -> str:
        """The account id that moderates the room; NotFound when there is no such room."""
        ...

    async def describe(self, room: str) -> dict[str, Any]:
        """What `hello` shows of the room's subject (a stream body)."""
        ...
