"""Flash-sale stock in Redis: every step is one Lua script, so no two buyers see the same unit.

Keys of one sale share a hash tag (`lc:{sale:<id>}:…`): the counters (`sale` hash:
quantity, remaining, held, sold, limit, ends_at), units taken per viewer (`taken`: held or
sold, against the sale's per-viewer limit) and held unpaid per viewer (`heldby`),
the holds (`holds`: hold id → "viewer|qty|state|expires_at") and their expiries
(`exp` sorted set). Times come from Redis' own clock, so nodes with skewed clocks
agree on when a sale ends and a hold expires. Sets of sales with live holds
(`lc:stock:active:{n}`, 16 of them, each sale in one by its id) let the sweeper find what may
expire: on a Redis Cluster they spread over the masters, so a master that is down hides only
its own share from the sweep (and its sales' holds wait for it). Reservations of one sale that
arrive together go in one script call (core/batch.py): a rush is one sale's taps; a batch that
holds several sales answers each sale's buyers alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from dataclasses import dataclass
from typing import Any

from checkout.stock import (
    Counts,
    Hold,
    HoldLimitReached,
    HoldState,
    LimitReached,
    SaleEnded,
    SoldOut,
    UnknownSale,
)
from core.batch import Batcher
from core.logs import log
from core.redis import Client, RedisUnavailable, Script, answer

logger = logging.getLogger("livecart.checkout")

ACTIVE_SETS = 16
ACTIVE = "lc:stock:active"  # before the sets were split; still swept


def _active(sale_id: str) -> str:
    return f"{ACTIVE}:{{{zlib.crc32(sale_id.encode()) % ACTIVE_SETS}}}"


KEEP_AFTER_END_S = 7 * 24 * 3600  # a sale's keys outlive it by a week (retries, reconciliation)

_NOW = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function parse(h)
  local viewer, qty, state, expires = string.match(h, '^(.*)|(%d+)|(%a+)|(.*)$')
  return viewer, tonumber(qty), state, tonumber(expires)
end
local function settle(id, h, to)
  -- held -> sold | released; the only place counters move after a reservation
  local viewer, qty, state, expires = parse(h)
  if state ~= 'held' then return h end
  redis.call('HINCRBY', KEYS[1], 'held', -qty)
  redis.call('HINCRBY', KEYS[5], viewer, -qty)
  if to == 'sold' then
    redis.call('HINCRBY', KEYS[1], 'sold', qty)
  else
    redis.call('HINCRBY', KEYS[1], 'remaining', qty)
    redis.call('HINCRBY', KEYS[2], viewer, -qty)
  end
  local moved = viewer .. '|' .. qty .. '|' .. to .. '|' .. string.format('%.6f', expires)
  redis.call('HSET', KEYS[3], id, moved)
  redis.call('ZREM', KEYS[4], id)
  return moved
end
"""

# KEYS: sale, taken, holds, exp, heldby. ARGV: quantity, limit, ends_at, keep seconds.
_OPEN = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'quantity', ARGV[1], 'remaining', ARGV[1], 'held', 0, 'sold', 0,
           'limit', ARGV[2], 'ends_at', ARGV[3])
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
return 1
"""

# KEYS: sale, taken, holds, exp, heldby. ARGV: ttl, max held per viewer, then hold id, viewer,
# quantity for each reservation (concurrent buys of one sale go in one call). One answer each.
_RESERVE = (
    _NOW
    + """
local function reserve(t, id, viewer, qty, ttl, max_held)
  local existing = redis.call('HGET', KEYS[3], id)
  if existing then return {'hold', existing} end
  local sale = redis.call('HMGET', KEYS[1], 'remaining', 'limit', 'ends_at')
  if not sale[1] then return {'error', 'unknown'} end
  if t >= tonumber(sale[3]) then return {'error', 'ended'} end
  local taken = tonumber(redis.call('HGET', KEYS[2], viewer) or '0')
  if taken + qty > tonumber(sale[2]) then return {'error', 'limit', sale[2]} end
  local held = tonumber(redis.call('HGET', KEYS[5], viewer) or '0')
  if held + qty > max_held then return {'error', 'hold_limit', tostring(max_held)} end
  if tonumber(sale[1]) < qty then return {'error', 'sold_out', sale[1]} end
  redis.call('HINCRBY', KEYS[1], 'remaining', -qty)
  redis.call('HINCRBY', KEYS[1], 'held', qty)
  redis.call('HINCRBY', KEYS[2], viewer, qty)
  redis.call('HINCRBY', KEYS[5], viewer, qty)
  local expires = t + ttl
  local hold = viewer .. '|' .. qty .. '|held|' .. string.format('%.6f', expires)
  redis.call('HSET', KEYS[3], id, hold)
  redis.call('ZADD', KEYS[4], expires, id)
  return {'hold', hold}
end
local t = now()
local ttl = tonumber(ARGV[1])
local max_held = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 3 do
  table.insert(out, reserve(t, ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ttl, max_held))
end
return out
"""
)

# KEYS: sale, taken, holds, exp, heldby. ARGV: hold id, 'sold' | 'released'.
_SETTLE = (
    _NOW
    + """
local h = redis.call('HGET', KEYS[3], ARGV[1])
if not h then return false end
local viewer, qty, state, expires = parse(h)
if ARGV[2] == 'sold' and state == 'held' and now() >= expires then
  return settle(ARGV[1], h, 'released')  -- too late: the hold was lost
end
return settle(ARGV[1], h, ARGV[2])
"""
)

# KEYS: sale, taken, holds, exp, heldby. ARGV: now ('' for Redis' clock), limit.
_EXPIRE = (
    _NOW
    + """
local t = ARGV[1] == '' and now() or tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', t, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(due) do
  local h = redis.call('HGET', KEYS[3], id)
  if h then
    table.insert(out, id)
    table.insert(out, settle(id, h, 'released'))
  else
    redis.call('ZREM', KEYS[4], id)
  end
end
local ends = tonumber(redis.call('HGET', KEYS[1], 'ends_at') or '0')
local idle = (redis.call('ZCARD', KEYS[4]) == 0 and t >= ends) and 1 or 0
return {idle, out}
"""
)


def _keys(sale_id: str) -> list[str]:
    tag = f"lc:{{sale:{sale_id}}}"
    return [f"{tag}:sale", f"{tag}:taken", f"{tag}:holds", f"{tag}:exp", f"{tag}:heldby"]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _hold(sale_id: str, hold_id: str, raw: bytes | str) -> Hold:
    viewer, qty, state, expires = _text(raw).rsplit("|", 3)
    return Hold(hold_id, sale_id, viewer, int(qty), HoldState(state), float(expires))


@dataclass(frozen=True, slots=True)
class _Reservation:
    sale_id: str
    hold_id: str
    viewer_id: str
    quantity: int
    ttl: float
    max_held: int


class RedisStock:
    RESERVE_BATCH = 256  # reservations per script call at most: Redis runs a script alone

    def __init__(self, client: Client) -> None:
        self._redis = client
        self._open = Script(client, _OPEN)
        self._reserve = Script(client, _RESERVE)
        self._settle = Script(client, _SETTLE)
        self._expire = Script(client, _EXPIRE)
        self._reserves = Batcher(self._reserve_many, max_batch=self.RESERVE_BATCH, max_in_flight=2)

    async def open_sale(self, sale_id: str, *, quantity: int, per_viewer_limit: int, ends_at: float) -> None:
        keep = max(1, int(ends_at - time.time())) + KEEP_AFTER_END_S
        args: list[int | str] = [quantity, per_viewer_limit, repr(ends_at), keep]
        await answer(self._open(keys=_keys(sale_id), args=args))
        await answer(self._redis.sadd(_active(sale_id), sale_id))

    async def end_sale(self, sale_id: str, at: float) -> None:
        key = _keys(sale_id)[0]
        # min(ends_at, at): a sale may end early, never later than announced
        script = (
            "local e = tonumber(redis.call('HGET', KEYS[1], 'ends_at') or '0') "
            "if e > tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'ends_at', ARGV[1]) end"
        )
        await answer(self._redis.eval(script, 1, key, repr(at)))

    async def reserve(
        self, sale_id: str, hold_id: str, viewer_id: str, quantity: int, ttl: float, max_held: int
    ) -> Hold:
        answer = await self._reserves.submit(
            _Reservation(sale_id, hold_id, viewer_id, quantity, ttl, max_held)
        )
        kind = _text(answer[0])
        if kind == "hold":
            return _hold(sale_id, hold_id, answer[1])
        reason = _text(answer[1])
        if reason == "unknown":
            raise UnknownSale(f"no sale {sale_id!r}")
        if reason == "ended":
            raise SaleEnded("the sale is over")
        if reason == "limit":
            raise LimitReached(f"at most {_text(answer[2])} per viewer in this sale")
        if reason == "hold_limit":
            raise HoldLimitReached(f"at most {_text(answer[2])} unpaid units at a time; pay for those first")
        left = int(_text(answer[2]))
        raise SoldOut("sold out" if left == 0 else f"only {left} left")

    async def _reserve_many(self, batch: list[_Reservation]) -> list[list[Any] | BaseException]:
        """Concurrent reservations, one script call per sale (its keys share a slot),
        in the order they came: the first tap gets the first unit. A sale whose Redis does
        not answer fails its own buyers only."""
        groups: dict[tuple[str, float, int], list[int]] = {}
        for index, item in enumerate(batch):
            groups.setdefault((item.sale_id, item.ttl, item.max_held), []).append(index)
        answers: list[list[Any] | BaseException] = [[] for _ in batch]

        async def one_sale(sale_id: str, ttl: float, max_held: int, indexes: list[int]) -> None:
            args: list[int | str] = [repr(ttl), max_held]
            for index in indexes:
                item = batch[index]
                args += [item.hold_id, item.viewer_id, item.quantity]
            try:
                replies = await answer(self._reserve(keys=_keys(sale_id), args=args))
            except RedisUnavailable as exc:
                for index in indexes:
                    answers[index] = exc
                return
            for index, reply in zip(indexes, replies, strict=True):
                answers[index] = reply

        await asyncio.gather(*(one_sale(*group, indexes) for group, indexes in groups.items()))
        return answers

    async def _settle_hold(self, sale_id: str, hold_id: str, to: HoldState) -> Hold | None:
        raw = await answer(self._settle(keys=_keys(sale_id), args=[hold_id, str(to)]))
        return None if raw is None else _hold(sale_id, hold_id, raw)

    async def commit(self, sale_id: str, hold_id: str) -> Hold | None:
        return await self._settle_hold(sale_id, hold_id, HoldState.SOLD)

    async def release(self, sale_id: str, hold_id: str) -> Hold | None:
        return await self._settle_hold(sale_id, hold_id, HoldState.RELEASED)

    async def expire(self, now: float | None = None, limit: int = 1000) -> list[Hold]:
        """Every active set, every sale in it: a set or a sale whose Redis does not answer is
        passed over (the next sweep tries again); 503 only when none answered."""
        released: list[Hold] = []
        failed: RedisUnavailable | None = None
        answered = False
        for active in [ACTIVE, *(f"{ACTIVE}:{{{n}}}" for n in range(ACTIVE_SETS))]:
            try:
                sales = await answer(self._redis.smembers(active))
                answered = True
            except RedisUnavailable as exc:
                failed = exc
                continue
            for raw_sale in sales:
                sale_id = _text(raw_sale)
                try:
                    idle, pairs = await answer(
                        self._expire(keys=_keys(sale_id), args=["" if now is None else repr(now), limit])
                    )
                    if idle:
                        await answer(self._redis.srem(active, sale_id))
                except RedisUnavailable as exc:
                    failed = exc
                    continue
                released += [_hold(sale_id, _text(pairs[i]), pairs[i + 1]) for i in range(0, len(pairs), 2)]
        if failed is not None:
            if not answered:
                raise failed
            log(
                logger,
                logging.WARNING,
                "some holds not swept: a Redis master does not answer",
                error=str(failed),
            )
        return released

    async def counts(self, sale_id: str) -> Counts:
        values = await answer(self._redis.hmget(_keys(sale_id)[0], ["quantity", "remaining", "held", "sold"]))
        if values[0] is None:
            raise UnknownSale(f"no sale {sale_id!r}")
        quantity, remaining, held, sold = (int(v or 0) for v in values)
        return Counts(quantity, remaining, held, sold)

    async def get_hold(self, sale_id: str, hold_id: str) -> Hold | None:
        raw = await answer(self._redis.hget(_keys(sale_id)[2], hold_id))
        return None if raw is None else _hold(sale_id, hold_id, raw)

    async def close(self) -> None:
        return None  # the client belongs to whoever made it
