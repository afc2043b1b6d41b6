"""Prometheus metrics, one registry per app (no process globals, so tests can build many apps)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from chat.hub import Hub
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "livecart_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "livecart_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # Per request: the labelled children are looked up once per (method, route, status)
        # (labels() validates and locks each call). Routes are templates, so this stays small.
        if method not in _METHODS:
            method = "other"  # a client picks the method: keep the label set bounded
        children = self._children.get((method, route, status))
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time (nothing to update on the hot path)."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def track_hub(self, hub: Hub) -> None:
        self.registry.register(_HubCollector(hub))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _HubCollector(Collector):
    """Reads the hub's plain counters at scrape time: nothing per event but an integer add."""

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
