"""Every script and pipeline livecart sends to Redis touches keys of one cluster slot: a room's
keys share its hash tag, a sale's keys the sale's, a stream's directory key its own. (A Redis
Cluster refuses a script or transaction across slots with CROSSSLOT.)"""

from __future__ import annotations

import secrets

from redis.crc import key_slot

from chat import broker_redis, roomstate_redis
from checkout import stock_redis
from streaming import directory_redis


def one_slot(keys: list[str]) -> bool:
    return len({key_slot(k.encode()) for k in keys}) == 1


def test_a_rooms_keys_and_channel_share_one_slot() -> None:
    for _ in range(50):
        room = "str_" + secrets.token_hex(6)
        state = [roomstate_redis._key(room, name) for name in ("presence", "presence_exp", "peak", "uniques")]
        state += [roomstate_redis._key(room, name) for name in ("likes", "muted", "banned", "blocked")]
        assert one_slot([*broker_redis._keys(room), *state]), room


def test_a_sales_keys_share_one_slot_and_sales_spread_over_slots() -> None:
    slots = set()
    for _ in range(50):
        keys = stock_redis._keys("sale_" + secrets.token_hex(6))
        assert one_slot(keys), keys
        slots.add(key_slot(keys[0].encode()))
    assert len(slots) > 40  # not one hot slot for every sale


def test_a_streams_directory_key_has_its_own_tag() -> None:
    slots = {key_slot(directory_redis._key("str_" + secrets.token_hex(6)).encode()) for _ in range(50)}
    assert len(slots) > 40
