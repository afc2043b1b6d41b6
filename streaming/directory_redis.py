"""The stream directory in Redis: one key per live stream holding the owner's URL, with a TTL.

Claim and release compare the owner in a Lua script, so two nodes racing for one
stream get one answer and a node never drops another node's claim.
"""

from __future__ import annotations

from core.redis import Client, Script, answer

_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _key(stream_id: str) -> str:
    return f"lc:dir:{{{stream_id}}}"


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


class RedisDirectory:
    def __init__(self, client: Client, *, owns_client: bool = False) -> None:
        self._client = client
        self._owns_client = owns_client
        self._claim = Script(client, _CLAIM)
        self._release = Script(client, _RELEASE)

    async def claim(self, stream_id: str, node: str, ttl_s: float) -> str:
        owner = await answer(self._claim(keys=[_key(stream_id)], args=[node, max(1, int(ttl_s * 1000))]))
        return _text(owner) or node

    async def owner(self, stream_id: str) -> str | None:
        return _text(await answer(self._client.get(_key(stream_id))))

    async def release(self, stream_id: str, node: str) -> None:
        await answer(self._release(keys=[_key(stream_id)], args=[node]))

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()
