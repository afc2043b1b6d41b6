"""What chat adds to the app: the room hub (broker and room state: in-process | Redis) and its keys.

`running()` is chat's cleanup context, entered by server/app.py: it starts the hub on the
backend the settings name and stops it on the way out. The rooms' `Subjects` (what a room
asks of the thing it is about) are wired in by server/app.py once that thing exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from chat.broker import Broker
from chat.broker_memory import MemoryBroker
from chat.broker_redis import RedisBroker
from chat.hub import Hub, HubSettings
from chat.metrics import HubCollector
from chat.roomstate import MemoryRoomState, RoomState
from chat.roomstate_redis import RedisRoomState
from chat.session import ChatLimits
from chat.subjects import Checkout, Subjects
from config.settings import Settings
from core.http import METRICS
from core.redis import Client

HUB: web.AppKey[Hub] = web.AppKey("hub")
CHAT_LIMITS: web.AppKey[ChatLimits] = web.AppKey("chat_limits")
SUBJECTS: web.AppKey[Subjects] = web.AppKey("room_subjects")
CHECKOUT: web.AppKey[Checkout] = web.AppKey("room_checkout")


@asynccontextmanager
async def running(
    app: web.Application,
    settings: Settings,
    client: Client | None,
    *,
    hub_settings: HubSettings | None = None,
    chat_limits: ChatLimits | None = None,
) -> AsyncIterator[Hub]:
    """The hub on Redis when a client is given (rooms shared by every node), else in-process."""
    broker: Broker
    state: RoomState
    if client is not None:
        assert settings.redis_url is not None
        broker, state = RedisBroker(settings.redis_url, client=client), RedisRoomState(client)
    else:
        broker, state = MemoryBroker(), MemoryRoomState()
    hub = Hub(broker, state, hub_settings or HubSettings(send_buffer_limit=settings.ws_send_buffer_bytes))
    app[HUB] = hub
    app[CHAT_LIMITS] = chat_limits or ChatLimits(
        chat_per_s=settings.chat_rate_per_s, chat_burst=settings.chat_burst
    )
    app[METRICS].register(HubCollector(hub))
    await hub.start()
    try:
        yield hub
    finally:
        await hub.close()
