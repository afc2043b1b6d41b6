"""What a room asks of the thing it is about, declared here and answered by its owner.

A room is a channel with a key; chat does not know streams. A stream's room needs two
answers from the streams, wired in server/app.py: who moderates it (its host, for
`moderate` and the blocked-words list) and how to describe it in a socket's `hello`;
and one from the shop: how a viewer buys from the room (`buy` frames).
"""

from __future__ import annotations

from typing import Any, Protocol

from core.identity import Account


class Subjects(Protocol):
    async def owner(self, room: str) -> str:
        """The account id that moderates the room; NotFound when there is no such room."""
        ...

    async def describe(self, room: str) -> dict[str, Any]:
        """What `hello` shows of the room's subject (a stream body)."""
        ...


class Checkout(Protocol):
    """What a room's `buy` frame asks of the shop, wired in server/app.py (checkout answers)."""

    async def buy(
        self, user: Account, room: str, key: str, fields: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Place an order in the room's stream as `POST /api/orders` does (same rules, same
        idempotency by key): the order's body and whether this call created it. A refusal
        raises the same error the HTTP route answers."""
        ...
