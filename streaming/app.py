"""What streaming adds to the app: streams, their bodies, and this node's WebRTC relay.

`running()` is streaming's cleanup context, entered by server/app.py: it installs the
aiortc/aioice hooks, makes the stream directory (in-process | Redis), starts the relay's
sessions and stops them on the way out. What streaming needs of the shop (product cards,
the running sale) it asks through `streaming.shop`, handed in by server/app.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from chat.announce import Publisher
from config.settings import Settings
from core.chores import Chores
from core.http import METRICS
from core.redis import Client
from streaming import hooks, hooks_ice, peers
from streaming.directory import Directory, MemoryDirectory
from streaming.directory_redis import RedisDirectory
from streaming.hls_node import HlsStreams
from streaming.recording import FileRecordings, sweep
from streaming.sessions import RelaySettings, Sessions
from streaming.shop import ProductCards, RunningSales
from streaming.streams import Streams
from streaming.streams_sql import StreamStore
from streaming.timeline import History
from streaming.views import StreamViews


@dataclass(frozen=True)
class Show:
    """The running streaming part, piece by piece."""

    streams: Streams
    views: StreamViews
    relay: Sessions


SHOW: web.AppKey[Show] = web.AppKey("show")
RECORDING_SWEEP_S = 3600.0
# Overrides the relay's timing (tests); None: from the settings.
RELAY_SETTINGS: web.AppKey[RelaySettings | None] = web.AppKey("relay_settings")


@asynccontextmanager
async def running(
    app: web.Application,
    settings: Settings,
    store: StreamStore,
    client: Client | None,
    *,
    products: ProductCards,
    sales: RunningSales,
    viewers: Callable[[str], Awaitable[int]],
    names: Callable[[Sequence[str]], Awaitable[dict[str, str]]],
    rooms: Publisher,
    history: History | None = None,
) -> AsyncIterator[Show]:
    hooks.install(settings.ice_addresses)
    streams = Streams(store, products, rooms)
    views = StreamViews(store, settings.effective_public_url, products, sales, viewers, names)
    directory: Directory = RedisDirectory(client) if client is not None else MemoryDirectory()
    relay_settings = app.get(RELAY_SETTINGS) or RelaySettings(
        publisher_grace_s=settings.publisher_grace_s, directory_ttl_s=settings.stream_directory_ttl_s
    )
    recordings = (
        FileRecordings(settings.data_dir / "recordings") if settings.recording_retention_days else None
    )
    relay = Sessions(
        streams,
        directory,
        settings.effective_public_url,
        peers.ice_servers(settings.ice_servers),
        relay_settings,
        HlsStreams(recordings, history, transcode_vp8=settings.hls_transcode_vp8),
    )
    show = Show(streams, views, relay)
    app[SHOW] = show
    metrics = app[METRICS]
    metrics.gauge("livecart_relay_streams", "Streams relayed by this node.", lambda: len(relay.relays))
    metrics.gauge(
        "livecart_relay_publishers",
        "Publishers connected to this node.",
        lambda: sum(r.publisher is not None for r in relay.relays.values()),
    )
    metrics.gauge(
        "livecart_relay_viewers",
        "WHEP viewers of this node.",
        lambda: sum(len(r.viewers) for r in relay.relays.values()),
    )
    metrics.gauge(
        "livecart_ice_datagrams_dropped",
        "Datagrams this process dropped since it started: from outside an offered ICE address's scope.",
        lambda: hooks_ice.dropped,
    )
    streams.ended_listeners.append(relay.stream_ended)
    await relay.start()
    chores = Chores()
    if recordings is not None:
        retention_s = settings.recording_retention_days * 86400.0
        chores.every(RECORDING_SWEEP_S, lambda: sweep(recordings, retention_s), "recording-sweep", first=5.0)
    try:
        yield show
    finally:
        await chores.stop()
        streams.ended_listeners.remove(relay.stream_ended)
        await relay.close()
        await relay.hls.close()
        await directory.close()
