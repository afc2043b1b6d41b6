"""Typed settings: defaults < TOML file < LIVECART_* environment < command line.

Every setting is declared once in `FIELDS` with its type, default and
validation; the TOML key is its name, the environment variable is
`LIVECART_<NAME>`. An unknown key or a bad value raises `ConfigError` naming
the setting, which the CLI turns into one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "LIVECART_"
# Reserved for the test suite's own knobs (e.g. which PostgreSQL to test against).
_ENV_IGNORED_PREFIXES = ("LIVECART_TEST_",)
# Environment variables that the CLI reads itself rather than the settings.
_ENV_CLI_ONLY = frozenset({"LIVECART_CONFIG"})


class ConfigError(Exception):
    """A setting that is unknown or has a bad value; `setting` names it as the user wrote it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message


Parser = Callable[[Any], Any]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string (got {value!r})")
    return value


def _optional_text(value: Any) -> str | None:
    text = _text(value).strip()
    return text or None


def _admin_token(value: Any) -> str | None:
    token = _optional_text(value)
    if token is not None and len(token) < 32:
        raise ValueError(
            f"must be at least 32 characters (got {len(token)}); for example the output of"
            " python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


def _int_between(low: int, high: int) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be an integer (got {value!r})")
        if isinstance(value, str):
            try:
                value = int(value.strip(), 10)
            except ValueError:
                raise ValueError(f"must be an integer (got {value!r})") from None
        if not isinstance(value, int):
            raise ValueError(f"must be an integer (got {value!r})")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high} (got {value})")
        return value

    return parse


def _positive_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be a number (got {value!r})")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"must be a number of seconds (got {value!r})") from None
    if not isinstance(value, int | float):
        raise ValueError(f"must be a number (got {value!r})")
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"must be a positive number (got {value})")
    return float(value)


def _string_list(value: Any) -> tuple[str, ...]:
    """A TOML array of strings, or a comma-separated string (the environment's form)."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
        return tuple(item for item in items if item)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise ValueError(f"must be a list of strings or a comma-separated string (got {value!r})")


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _bool(value: Any) -> bool:
    """A TOML boolean, or true/false (1/0, yes/no, on/off) as the environment writes it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"must be true or false (got {value!r})")


def _choice(*options: str) -> Parser:
    def parse(value: Any) -> str:
        text = _text(value).strip().lower()
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)} (got {value!r})")
        return text

    return parse


def _url(*schemes: str) -> Parser:
    def parse(value: Any) -> str | None:
        text = _optional_text(value)
        if text is None:
            return None
        parts = urlsplit(text)
        if parts.scheme not in schemes:
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        if parts.scheme != "sqlite" and not parts.netloc:
            raise ValueError(f"must name a host (got {text!r})")
        return text.rstrip("/") if parts.scheme in ("http", "https") else text

    return parse


def _ice_servers(value: Any) -> tuple[str, ...]:
    servers = _string_list(value)
    for server in servers:
        if not server.startswith(("stun:", "turn:", "turns:")):
            raise ValueError(f"each entry must be a stun:, turn: or turns: URL (got {server!r})")
    return servers


def _ip_addresses(value: Any) -> tuple[str, ...]:
    import ipaddress

    addresses = _string_list(value)
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"each entry must be an IP address (got {address!r})") from None
    return addresses


def _origins(value: Any) -> tuple[str, ...]:
    origins = _string_list(value)
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError(f"each entry must be an origin like https://shop.example (got {origin!r})")
    return tuple(origin.rstrip("/") for origin in origins)


def _path(value: Any) -> Path:
    text = _text(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return Path(text).expanduser()


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one livecart process."""

    host: str = field(default="127.0.0.1", metadata={"parse": _text})
    port: int = field(default=8080, metadata={"parse": _int_between(0, 65535)})
    workers: int = field(default=1, metadata={"parse": _int_between(1, 64)})
    data_dir: Path = field(default=Path("livecart-data"), metadata={"parse": _path})
    admin_token: str | None = field(default=None, metadata={"parse": _admin_token, "secret": True})
    database_url: str | None = field(
        default=None, metadata={"parse": _url("sqlite", "postgresql", "postgres")}
    )
    redis_url: str | None = field(default=None, metadata={"parse": _url("redis", "rediss", "unix")})
    # `redis_url` is one node of a Redis Cluster: every Redis part of livecart runs on the cluster.
    redis_cluster: bool = field(default=False, metadata={"parse": _bool})
    public_url: str | None = field(default=None, metadata={"parse": _url("http", "https")})
    stripe_secret_key: str | None = field(default=None, metadata={"parse": _optional_text, "secret": True})
    stripe_publishable_key: str | None = field(default=None, metadata={"parse": _optional_text})
    stripe_webhook_secret: str | None = field(
        default=None, metadata={"parse": _optional_text, "secret": True}
    )
    stripe_api_base: str | None = field(default=None, metadata={"parse": _url("http", "https")})
    ice_servers: tuple[str, ...] = field(default=(), metadata={"parse": _ice_servers})
    ice_addresses: tuple[str, ...] = field(default=(), metadata={"parse": _ip_addresses})
    # Proxies in front of livecart whose X-Forwarded-For names the client (per-address limits).
    trusted_proxies: tuple[str, ...] = field(default=(), metadata={"parse": _ip_addresses})
    # How long a live stream waits for its publisher to come back before it ends.
    publisher_grace_s: float = field(default=10.0, metadata={"parse": _positive_float})
    # WebRTC viewers of one stream per node before new viewers are sent to its LL-HLS (0: everyone
    # watches over HLS). Streams without LL-HLS (VP8, unless transcoded) have no cap.
    webrtc_viewer_cap: int = field(default=300, metadata={"parse": _int_between(0, 1_000_000)})
    # Whether a stream published in VP8 gets LL-HLS too: its video is decoded and encoded to H.264
    # once per stream on the node that relays it (a worker thread each; CPU per stream, not per
    # viewer). Off: a VP8 stream has WebRTC only.
    hls_transcode_vp8: bool = field(default=False, metadata={"parse": _bool})
    # How long a show's recording (its LL-HLS segments, for the replay) is kept; 0: not recorded.
    recording_retention_days: int = field(default=30, metadata={"parse": _int_between(0, 36500)})
    # How long a node's claim on a live stream lasts in the stream directory unless refreshed.
    stream_directory_ttl_s: float = field(default=15.0, metadata={"parse": _positive_float})
    # How long an unpaid order holds its units: a regular order, and a flash sale's (shorter:
    # in a rush, units held by someone who does not pay are units other buyers cannot have).
    reservation_ttl_s: float = field(default=600.0, metadata={"parse": _positive_float})
    sale_hold_ttl_s: float = field(default=180.0, metadata={"parse": _positive_float})
    # What one viewer may take at once: units per order, and units held unpaid (per stream for
    # regular orders, per flash sale for sale holds). Accounts are free, so this bounds what
    # one account can keep from the others; many accounts are the edge's to limit (README).
    max_order_quantity: int = field(default=10, metadata={"parse": _int_between(1, 99)})
    max_held_units: int = field(default=10, metadata={"parse": _int_between(1, 1_000_000)})
    # How long one database statement (a lock wait included) and the wait for a pooled
    # connection may take before the request answers 503 database_unavailable (PostgreSQL).
    database_statement_timeout_s: float = field(default=5.0, metadata={"parse": _positive_float})
    database_pool_timeout_s: float = field(default=5.0, metadata={"parse": _positive_float})
    cors_origins: tuple[str, ...] = field(default=(), metadata={"parse": _origins})
    max_body_bytes: int = field(default=1024 * 1024, metadata={"parse": _int_between(1024, 64 * 1024 * 1024)})
    shutdown_timeout_s: float = field(default=10.0, metadata={"parse": _positive_float})
    # A connection that sends nothing (or stops half-way through a request's head) for this
    # long is closed; a request body that stops arriving for this long is answered 408.
    idle_timeout_s: float = field(default=15.0, metadata={"parse": _positive_float})
    body_timeout_s: float = field(default=15.0, metadata={"parse": _positive_float})
    log_level: str = field(default="info", metadata={"parse": _choice("debug", "info", "warning", "error")})
    log_format: str = field(default="text", metadata={"parse": _choice("text", "json")})
    blocked_words: tuple[str, ...] = field(default=(), metadata={"parse": _string_list})
    chat_rate_per_s: float = field(default=0.5, metadata={"parse": _positive_float})
    chat_burst: int = field(default=5, metadata={"parse": _int_between(1, 1000)})
    ws_send_buffer_bytes: int = field(
        default=256 * 1024, metadata={"parse": _int_between(4096, 64 * 1024 * 1024)}
    )

    # -- derived values -----------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'livecart.db').resolve()}"

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Settings)}
SECRET_FIELDS = frozenset(name for name, f in FIELDS.items() if f.metadata.get("secret"))


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _parse(name: str, value: Any, label: str) -> Any:
    try:
        return FIELDS[name].metadata["parse"](value)
    except ValueError as exc:
        raise ConfigError(label, str(exc)) from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(str(path), "config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read config file: {exc.strerror}") from None
    # A [livecart] table is accepted so the settings can share a file with other tools.
    if set(data) == {"livecart"} and isinstance(data["livecart"], dict):
        data = data["livecart"]
    return data


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Settings, dict[str, str]]:
    """Build the settings and, for each one, where its value came from.

    Raises ConfigError for an unknown key (in the file or as LIVECART_*) or a bad value.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources = dict.fromkeys(FIELDS, "default")

    if config_file is not None:
        for key, raw in read_toml(config_file).items():
            if key not in FIELDS:
                raise ConfigError(f"{config_file}: {key}", "unknown setting")
            values[key] = _parse(key, raw, f"{config_file}: {key}")
            sources[key] = "file"

    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var in _ENV_CLI_ONLY:
            continue
        if var.startswith(_ENV_IGNORED_PREFIXES):
            continue
        key = var[len(ENV_PREFIX) :].lower()
        if key not in FIELDS:
            raise ConfigError(var, "unknown setting")
        values[key] = _parse(key, raw, var)
        sources[key] = "env"

    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        values[key] = _parse(key, raw, f"--{key.replace('_', '-')}")
        sources[key] = "command line"

    settings = Settings(**values)
    if settings.workers > 1 and not settings.redis_url:
        # Each worker would keep its own rooms in memory: viewers on one would not see the other's.
        raise ConfigError(
            "--workers" if sources["workers"] == "command line" else env_name("workers"),
            "more than one worker needs LIVECART_REDIS_URL so the workers share rooms",
        )
    if settings.redis_cluster and not settings.redis_url:
        raise ConfigError(
            env_name("redis_cluster") if sources["redis_cluster"] == "env" else "redis_cluster",
            "needs LIVECART_REDIS_URL: a node of the cluster to start from",
        )
    return settings, sources


def redact_ice_server(url: str) -> str:
    """`turn:user:secret@host:port` with the secret masked (STUN URLs carry none)."""
    scheme, _, rest = url.partition(":")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    username, _, _ = credentials.partition(":")
    return f"{scheme}:{username}:****@{host}"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ****, for logs and `livecart config`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return parts._replace(netloc=netloc).geturl()


_URL_FIELDS = frozenset({"database_url", "redis_url"})


def describe(settings: Settings, sources: Mapping[str, str]) -> str:
    """The effective settings as TOML, secrets masked, each with its source."""
    lines = []
    for name in FIELDS:
        value = getattr(settings, name)
        if name in SECRET_FIELDS and value:
            rendered = '"****"'
        elif value is None:
            rendered = '""'
        elif isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, int | float):
            rendered = repr(value)
        elif name == "ice_servers":
            rendered = "[" + ", ".join(_quote(redact_ice_server(v)) for v in value) + "]"
        elif isinstance(value, tuple):
            rendered = "[" + ", ".join(_quote(v) for v in value) + "]"
        elif name in _URL_FIELDS:
            rendered = _quote(redact_url(str(value)))
        else:
            rendered = _quote(str(value))
        lines.append(f"{name} = {rendered}  # {sources.get(name, 'default')}, {env_name(name)}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
