"""One line per event, with a level: logfmt for people and machines, or JSON lines.

    ts=2026-11-25T21:00:00.123Z level=info logger=livecart.http msg=request method=GET status=200

Fields travel in `extra={"fields": {...}}`; `log()` is the short way to pass them.

Whatever a client put in a field (a path, a header) is escaped: control characters, line and
paragraph separators and lone surrogates appear as `\\xNN`/`\\uNNNN`, never raw, so a request
cannot forge a log line, move a terminal's cursor or break the encoding of the stream.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# C0 and C1 controls, DEL, the Unicode line/paragraph separators, lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {
        "ts": _timestamp(record),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields.update(getattr(record, "fields", None) or {})
    if record.exc_info:
        fields["error"] = logging.Formatter().formatException(record.exc_info)
    return fields


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(_json_safe(value)).decode()
    if text and _UNSAFE.search(text) is None and all(c not in text for c in ' ="\\'):
        return text
    return '"' + _UNSAFE.sub(_escape_char, text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _json_safe(value: Any) -> Any:
    """Strings JSON can carry: orjson escapes control characters itself but refuses lone
    surrogates, which a client's bytes decode to; they become `\\udcNN` text."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode() if _UNSAFE.search(value) else value
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


# What valid JSON may carry raw but a terminal or a line-oriented reader would trip on.
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029]")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = orjson.dumps(_json_safe(_fields(record)), default=str).decode()
        return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def configure(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # aiohttp's own access log is replaced by ours (server/middleware.py), with the route.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})
