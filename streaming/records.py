"""Streaming's records: a stream, its states and the moves between them.

Records are frozen dataclasses so that nothing outside the store can change a row behind
its back; changes go through the store's methods, each of which is one transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StreamState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


# Every move set_stream_state accepts besides repeating the current state.
STREAM_TRANSITIONS = frozenset(
    {
        (StreamState.SCHEDULED, StreamState.LIVE),
        (StreamState.SCHEDULED, StreamState.ENDED),
        (StreamState.LIVE, StreamState.ENDED),
    }
)


@dataclass(frozen=True, slots=True)
class Stream:
    id: str
    host_id: str
    title: str
    state: StreamState
    product_ids: tuple[str, ...]  # in the order the host listed them
    pinned_product_id: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None

    @property
    def ended(self) -> bool:
        return self.state is StreamState.ENDED


class InvalidTransition(Exception):
    def __init__(self, current: StreamState, wanted: StreamState) -> None:
        super().__init__(f"stream is {current}, cannot become {wanted}")
        self.current = current
        self.wanted = wanted


class UnknownProduct(ValueError):
    """A stream names a product that does not exist, or pins one it does not show."""

    def __init__(self, product_id: str, message: str | None = None) -> None:
        super().__init__(message or f"no product {product_id}")
        self.product_id = product_id
