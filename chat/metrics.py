"""The room hub's figures for /metrics, read at scrape time: nothing per event but an integer add."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chat.hub import Hub


class HubCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self._hub
        c = hub.counters
        yield GaugeMetricFamily(
            "livecart_ws_connections",
            "Open room WebSockets on this node.",
            value=sum(len(r.sockets) for r in hub.rooms.values()),
        )
        yield GaugeMetricFamily("livecart_rooms", "Rooms with sockets on this node.", value=len(hub.rooms))
        yield CounterMetricFamily("livecart_room_events", "Events fanned out on this node.", value=c.events)
        yield CounterMetricFamily("livecart_ws_frames", "Frames written to room sockets.", value=c.frames)
        yield CounterMetricFamily(
            "livecart_ws_deliveries",
            "Events delivered to sockets (events times sockets).",
            value=c.deliveries,
        )
        yield CounterMetricFamily(
            "livecart_ws_slow_consumers_dropped", "Sockets cut off for not keeping up.", value=c.dropped_slow
        )
