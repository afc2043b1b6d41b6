"""Who is calling and what they may change: accounts, roles, tokens, and the one ownership rule.

Four roles: the admin (one, configured), hosts (run streams), brands (own products) and
viewers (watch, chat, buy). A record names the account that owns it (a product its brand,
a stream its host, an order its viewer); `owns` is the only place that decides whether an
account may change such a record, so the rule cannot drift between packages.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass

from core.errors import Forbidden, Unauthorized

TOKEN_PREFIX = "lc_"


class Role(enum.StrEnum):
    ADMIN = "admin"
    HOST = "host"
    BRAND = "brand"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    role: Role
    name: str
    created_at: float


# The admin is not a row: its token comes from config or is generated at first start.
ADMIN = Account(id="admin", role=Role.ADMIN, name="admin", created_at=0.0)


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


def owns(who: Account, owner_id: str) -> bool:
    """The ownership rule: an account may change what it owns, and the admin anything."""
    return who.role is Role.ADMIN or who.id == owner_id


def require_owner(who: Account, owner_id: str, message: str) -> Account:
    """`who` if it owns the record (by `owns`); 403 with `message` otherwise."""
    if not owns(who, owner_id):
        raise Forbidden(message, code="forbidden")
    return who


def forbid_unless(condition: bool, message: str) -> None:
    """403 for a rule other than ownership (e.g. "a brand can only add its own products")."""
    if not condition:
        raise Forbidden(message, code="forbidden")
