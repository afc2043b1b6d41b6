"""Record ids: opaque random strings with a short prefix naming the kind.

The prefix (`acc_`, `prd_`, `str_`, `ord_`…, each declared by the package that owns the
record) lets a human reading a log or a URL tell an account from a product at a glance;
nothing parses it. Ten random bytes (80 bits) make a collision between two processes
minting ids at once a non-event, so ids need no coordination through the database.
"""

from __future__ import annotations

import secrets

_RANDOM_BYTES = 10


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(_RANDOM_BYTES)}"
