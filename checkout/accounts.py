"""Accounts and who may do what: tokens, roles, and the checks domain code calls.

Tokens are random (256 bits) and only their SHA-256 is stored: a leaked database
does not leak working tokens, and a fast hash is enough for secrets this long.
The admin is not a row: its token comes from config or is generated at first
start, and only its hash is kept (store meta `admin_token_sha256`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from checkout.store import Account, Role, Store
from server.errors import Forbidden, Unauthorized
from server.recent import Recent

ADMIN = Account(id="admin", role=Role.ADMIN, name="admin", created_at=0.0)
ADMIN_TOKEN_META = "admin_token_sha256"
TOKEN_PREFIX = "lc_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def require(principal: Account | None, *roles: Role) -> Account:
    """The principal if it holds one of `roles`; 401 when anonymous, 403 otherwise."""
    if principal is None:
        raise Unauthorized("a bearer token is required", code="unauthorized")
    if principal.role not in roles:
        wanted = " or ".join(str(role) for role in roles)
        raise Forbidden(f"this needs a {wanted} token", code="forbidden")
    return principal


async def ensure_admin_token(store: Store, configured: str | None) -> str | None:
    """Make sure an admin token exists; return it only when it was generated just now.

    With LIVECART_ADMIN_TOKEN set, that token is the admin token. Otherwise the first
    process to start generates one; several processes racing to start agree through
    `set_meta_if_absent`, and only the winner gets the token back to print.
    """
    if configured:
        return None
    if await store.get_meta(ADMIN_TOKEN_META) is not None:
        return None
    token = new_token()
    digest = hash_token(token)
    stored = await store.set_meta_if_absent(ADMIN_TOKEN_META, digest)
    return token if hmac.compare_digest(stored, digest) else None


class Authenticator:
    """Turns a bearer token into the account it belongs to.

    Every buy tap and chat socket carries a token, so known tokens are remembered for a
    short while (accounts never change role or id; tokens are not revoked yet) rather than
    read from the database on every request. Unknown tokens are not remembered.
    """

    CACHE_S = 60.0
    CACHE_SIZE = 50_000

    def __init__(self, store: Store, configured_admin_token: str | None) -> None:
        self._store = store
        self._admin_hash = hash_token(configured_admin_token) if configured_admin_token else None
        self._known: Recent[str, Account] = Recent(self.CACHE_S, max_size=self.CACHE_SIZE)

    async def authenticate(self, token: str) -> Account | None:
        digest = hash_token(token)
        if self._admin_hash is None:  # generated at first start; never changes after
            self._admin_hash = await self._store.get_meta(ADMIN_TOKEN_META)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return ADMIN
        return await self._known.get(digest, functools.partial(self._store.account_by_token_hash, digest))


async def create_account(store: Store, role: Role, name: str) -> tuple[Account, str]:
    token = new_token()
    account = await store.create_account(role, name, hash_token(token))
    return account, token


def forbid_unless(condition: bool, message: str) -> None:
    if not condition:
        raise Forbidden(message, code="forbidden")
