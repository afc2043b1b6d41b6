"""Log lines a client cannot forge: whatever a request puts in a field is escaped."""

from __future__ import annotations

import logging

import orjson
import pytest

from core.logs import JsonFormatter, LogfmtFormatter, log
from tests.conftest import Api

HOSTILE = "/api/x\x1b[2J\rlevel=error msg=forged\x00\u2028\ud800end"


def _record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord("livecart.http", logging.INFO, __file__, 1, "request", None, None)
    record.fields = fields
    return record


def test_logfmt_escapes_every_control_character_and_lone_surrogate() -> None:
    line = LogfmtFormatter().format(_record(path=HOSTILE, n=3))
    assert line.isprintable() and line.encode("utf-8")  # one line, no raw control, encodable
    assert 'path="/api/x\\x1b[2J\\rlevel=error msg=forged\\x00\\u2028\\ud800end"' in line
    assert " n=3" in line


def test_json_lines_carry_the_same_text_escaped() -> None:
    line = JsonFormatter().format(_record(path=HOSTILE))
    assert line.isprintable() and "\n" not in line
    decoded = orjson.loads(line)["path"]
    assert decoded == HOSTILE.replace("\ud800", "\\ud800")  # a lone surrogate cannot travel as itself


async def test_a_hostile_path_reaches_the_access_log_escaped(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="livecart.http")
    await api.client.get("/api/products/%1B%5B2J%0D%00x")
    (record,) = [r for r in caplog.records if r.name == "livecart.http"]
    line = LogfmtFormatter().format(record)
    assert line.isprintable(), line
    assert "\\x1b[2J\\r\\x00x" in line


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_log_helper_passes_fields_through() -> None:
    logger = logging.getLogger("livecart.test")
    logger.setLevel(logging.INFO)
    handler = _Kept()
    records = handler.records
    logger.addHandler(handler)
    try:
        log(logger, logging.INFO, "hello", path=HOSTILE)
    finally:
        logger.removeHandler(handler)
    assert "\\x1b" in LogfmtFormatter().format(records[0])
