"""Accounts in the database, and turning a bearer token into the account it belongs to.

Tokens are random (256 bits) and only their SHA-256 is stored: a leaked database
does not leak working tokens, and a fast hash is enough for secrets this long.
The admin is not a row: its token comes from config or is generated at first
start, and only its hash is kept (meta `admin_token_sha256`).
"""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Sequence

from core import ids
from core.db.driver import ConstraintViolation, Driver, Row, chunks, placeholders
from core.errors import RateLimited
from core.identity import ADMIN, Account, Role, hash_token, new_token
from core.recent import Recent

ACCOUNT = "acc"  # id prefix
ADMIN_TOKEN_META = "admin_token_sha256"

_COLUMNS = "id, role, name, created_at"


class UnknownAccount(ValueError):
    """A record names an account (a product its brand, a stream its host) that does not exist."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"no account {account_id}")
        self.account_id = account_id


def _account(row: Row) -> Account:
    # float(): a timestamp column may hand back an int when a row was written by hand.
    return Account(
        id=row["id"], role=Role(row["role"]), name=row["name"], created_at=float(row["created_at"])
    )


class AccountStore:
    """The `accounts` and `meta` tables. Every method is one transaction."""

    def __init__(self, db: Driver) -> None:
        self._db = db

    async def create_account(self, role: Role, name: str, token_hash: str) -> Account:
        account = Account(id=ids.new_id(ACCOUNT), role=Role(role), name=name, created_at=time.time())
        try:
            async with self._db.transaction(write=True) as conn:
                await conn.execute(
                    "INSERT INTO accounts (id, role, name, token_hash, created_at)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    account.id,
                    account.role.value,
                    account.name,
                    token_hash,
                    account.created_at,
                )
        except ConstraintViolation as exc:
            if exc.kind == "unique":
                raise ValueError("an account with this token hash already exists") from exc
            raise
        return account

    async def get_account(self, account_id: str) -> Account | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM accounts WHERE id = $1", account_id)
        return None if row is None else _account(row)

    async def names(self, account_ids: Sequence[str]) -> dict[str, str]:
        """The display names of the accounts that exist among account_ids."""
        wanted = list(dict.fromkeys(account_ids))
        found: dict[str, str] = {}
        async with self._db.transaction(write=False) as conn:
            for chunk in chunks(wanted):
                rows = await conn.fetchall(
                    f"SELECT id, name FROM accounts WHERE id IN ({placeholders(1, len(chunk))})", *chunk
                )
                found.update((row["id"], row["name"]) for row in rows)
        return found

    async def account_by_token_hash(self, token_hash: str) -> Account | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM accounts WHERE token_hash = $1", token_hash)
        return None if row is None else _account(row)

    # -- key/value facts about the install (e.g. the generated admin token's hash) ------------
    async def get_meta(self, key: str) -> str | None:
        row = await self._db.fetchone("SELECT value FROM meta WHERE key = $1", key)
        return None if row is None else str(row["value"])

    async def set_meta_if_absent(self, key: str, value: str) -> str:
        """Store value under key unless one is there; return the value now stored."""
        async with self._db.transaction(write=True) as conn:
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                key,
                value,
            )
            row = await conn.fetchone("SELECT value FROM meta WHERE key = $1", key)
        if row is None:  # only if someone deleted it between the two statements
            raise AssertionError(f"meta {key!r} vanished while being set")
        return str(row["value"])


async def create_account(accounts: AccountStore, role: Role, name: str) -> tuple[Account, str]:
    """A new account and its token (shown once: only the hash is kept)."""
    token = new_token()
    account = await accounts.create_account(role, name, hash_token(token))
    return account, token


async def ensure_admin_token(accounts: AccountStore, configured: str | None) -> str | None:
    """Make sure an admin token exists; return it only when it was generated just now.

    With LIVECART_ADMIN_TOKEN set, that token is the admin token. Otherwise the first
    process to start generates one; several processes racing to start agree through
    `set_meta_if_absent`, and only the winner gets the token back to print.
    """
    if configured:
        return None
    if await accounts.get_meta(ADMIN_TOKEN_META) is not None:
        return None
    token = new_token()
    digest = hash_token(token)
    stored = await accounts.set_meta_if_absent(ADMIN_TOKEN_META, digest)
    return token if hmac.compare_digest(stored, digest) else None


class Authenticator:
    """Turns a bearer token into the account it belongs to.

    Every buy tap and chat socket carries a token, so known tokens are remembered for a
    short while (accounts never change role or id; tokens are not revoked yet) rather than
    read from the database on every request. Unknown tokens are not remembered, and each costs
    a database read: a client address that presents too many of them (a burst of
    FAILURE_BURST, then FAILURE_RATE_PER_S) gets 429 for tokens not already known, while
    tokens that are (the accounts already in use behind the same address) still pass.
    """

    CACHE_S = 60.0
    CACHE_SIZE = 50_000
    FAILURE_BURST = 30.0
    FAILURE_RATE_PER_S = 0.5
    MAX_ADDRESSES = 100_000

    def __init__(self, accounts: AccountStore, configured_admin_token: str | None) -> None:
        self._accounts = accounts
        self._admin_hash = hash_token(configured_admin_token) if configured_admin_token else None
        self._known: Recent[str, Account] = Recent(self.CACHE_S, max_size=self.CACHE_SIZE)
        self._failures: dict[str, tuple[float, float]] = {}  # address → (allowance, when)

    async def authenticate(self, token: str, client: str | None = None) -> Account | None:
        """The token's account, or None; RateLimited for a client that failed too often."""
        digest = hash_token(token)
        if self._admin_hash is None:  # generated at first start; never changes after
            self._admin_hash = await self._accounts.get_meta(ADMIN_TOKEN_META)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return ADMIN
        known = self._known.cached(digest)
        if known is not None:
            return known
        if client is not None:
            self._check(client)
        account = await self._known.get(
            digest, functools.partial(self._accounts.account_by_token_hash, digest)
        )
        if account is None and client is not None:
            self._failed(client)
        return account

    def _allowance(self, client: str) -> float:
        now = time.monotonic()
        allowance, at = self._failures.get(client, (self.FAILURE_BURST, now))
        return min(self.FAILURE_BURST, allowance + (now - at) * self.FAILURE_RATE_PER_S)

    def _check(self, client: str) -> None:
        allowance = self._allowance(client)
        if allowance < 1:
            raise RateLimited(
                "too many invalid tokens from this address; try again later",
                retry_after=(1 - allowance) / self.FAILURE_RATE_PER_S,
            )

    def _failed(self, client: str) -> None:
        if len(self._failures) >= self.MAX_ADDRESSES:
            self._failures.clear()  # crude but bounded
        self._failures[client] = (self._allowance(client) - 1, time.monotonic())
