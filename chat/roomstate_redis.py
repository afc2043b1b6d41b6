"""Room state in Redis, shared by every node. Keys carry the room's hash tag, like the broker's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chat.broker_redis import ROOM_TTL_S
from core.redis import Client, Script, answer

# KEYS: counts (hash node→count), expiries (zset node→deadline ms), peak.
# ARGV: node ('' to only read), count, ttl ms, room ttl s.
# Uses the server's clock so nodes with skewed clocks still expire each other fairly.
_PRESENCE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, node in ipairs(dead) do
  redis.call('HDEL', KEYS[1], node)
  redis.call('ZREM', KEYS[2], node)
end
local total = 0
for _, count in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(count) end
if ARGV[1] ~= '' then
  local peak = tonumber(redis.call('GET', KEYS[3]) or '0')
  if total > peak then redis.call('SET', KEYS[3], total, 'EX', ARGV[4]) end
end
return total
"""


def _key(room: str, name: str) -> str:
    return f"lc:{{{room}}}:{name}"


class RedisRoomState:
    def __init__(self, client: Client) -> None:
        self._redis = client
        self._presence = Script(client, _PRESENCE)

    async def _presence_script(self, room: str, node: str, count: int, ttl: float) -> int:
        keys = [_key(room, "presence"), _key(room, "presence_exp"), _key(room, "peak")]
        total = await answer(self._presence(keys=keys, args=[node, count, int(ttl * 1000), ROOM_TTL_S]))
        return int(total)

    async def report_presence(self, room: str, node: str, count: int, ttl: float) -> int:
        return await self._presence_script(room, node, count, ttl)

    async def viewers(self, room: str) -> int:
        return await self._presence_script(room, "", 0, 0)

    async def viewers_peak(self, room: str) -> int:
        return int(await answer(self._redis.get(_key(room, "peak"))) or 0)

    async def _write(self, key: str, command: str, *args: Any) -> Any:
        """One write plus the room's expiry, in one round trip; returns the write's answer."""
        async with self._redis.pipeline(transaction=False) as pipe:
            getattr(pipe, command)(key, *args)
            pipe.expire(key, ROOM_TTL_S)
            result, _ = await answer(pipe.execute())
        return result

    async def add_unique_viewers(self, room: str, viewers: Iterable[str]) -> None:
        members = list(viewers)
        if members:
            await self._write(_key(room, "uniques"), "pfadd", *members)  # a HyperLogLog: 12 KiB at most

    async def unique_viewers(self, room: str) -> int:
        return int(await answer(self._redis.pfcount(_key(room, "uniques"))))

    async def add_likes(self, room: str, count: int) -> int:
        return int(await self._write(_key(room, "likes"), "incrby", count))

    async def mute(self, room: str, user_id: str, until: float) -> None:
        await self._write(_key(room, "muted"), "hset", user_id, repr(until))

    async def ban(self, room: str, user_id: str) -> None:
        await self._write(_key(room, "banned"), "sadd", user_id)

    async def standing(self, room: str, user_id: str) -> tuple[bool, float]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sismember(_key(room, "banned"), user_id)
            pipe.hget(_key(room, "muted"), user_id)
            banned, muted = await answer(pipe.execute())
        return bool(banned), float(muted) if muted else 0.0

    async def set_blocked_words(self, room: str, words: Iterable[str]) -> None:
        key = _key(room, "blocked")
        words = list(words)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if words:
                pipe.sadd(key, *words)
            pipe.expire(key, ROOM_TTL_S)
            await answer(pipe.execute())

    async def blocked_words(self, room: str) -> frozenset[str]:
        members = await answer(self._redis.smembers(_key(room, "blocked")))
        return frozenset(m.decode() if isinstance(m, bytes) else m for m in members)

    async def ping(self) -> None:
        await answer(self._redis.ping())

    async def close(self) -> None:
        return None  # the client belongs to whoever made it
