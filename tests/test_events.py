"""The room events a client can rely on: the catalogue (core/events.py) against the documents.

The README's event table must match the catalogue exactly. API.md (the shared contract, beside
this checkout when it is there, and read-only to us) must hold too, except that we may extend it
("extend freely"): every event and field API.md names is in the catalogue, required as API.md
says, while the catalogue may add optional fields and whole events, which the README documents.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from core import events
from core.events import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
API_MD = ROOT.parent / "shared" / "API.md"

Fields = tuple[frozenset[str], frozenset[str]]  # (required, optional)


def _top_level_keys(shape: str) -> Fields:
    """`{a, b?: x, c: {d, e}|null}` → ({a, c}, {b})."""
    inner, depth, item, items = shape.strip()[1:-1], 0, "", []
    for char in inner:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(item)
            item = ""
        else:
            item += char
    items.append(item)
    keys = [item.split(":")[0].strip() for item in items if item.strip()]
    return (
        frozenset(k for k in keys if not k.endswith("?")),
        frozenset(k.rstrip("?") for k in keys if k.endswith("?")),
    )


def documented(text: str) -> dict[str, Fields]:
    """Each event type of a document's `| type | data |` table, with its data's fields."""
    table = text[text.index("| type | data |") :].split("\n\n")[0].splitlines()[2:]
    sale_shape = re.search(r"^sale: `(\{.*?\})`", text, re.M)
    found: dict[str, Fields] = {}
    for row in table:
        type_cell, data_cell = row.strip().removeprefix("| ").removesuffix(" |").split(" | ", 1)
        names = re.findall(r"`(\w+)`", type_cell)
        parts = data_cell.split(" / ") if len(names) > 1 and " / " in data_cell else [data_cell] * len(names)
        for name, part in zip(names, parts, strict=True):
            shape = re.search(r"`(\{.*?\})`", part)
            if shape is None:
                assert part.startswith("sale") and sale_shape is not None, row
                shape = sale_shape
            found[name] = _top_level_keys(shape.group(1))
    return found


def catalogued() -> dict[str, Fields]:
    found: dict[str, Fields] = {}
    for name, kind in CATALOGUE.items():
        fields = msgspec.structs.fields(kind.payload)
        found[name] = (
            frozenset(f.encode_name for f in fields if f.required),
            frozenset(f.encode_name for f in fields if not f.required),
        )
    return found


def test_the_readme_table_is_the_catalogue() -> None:
    assert documented((ROOT / "README.md").read_text()) == catalogued()


def test_api_md_names_every_event_and_field_the_catalogue_has() -> None:
    if not API_MD.is_file():  # a checkout without the shared documents beside it
        return
    api, ours = documented(API_MD.read_text()), catalogued()
    assert set(api) <= set(ours)  # an event of ours that API.md lacks is an extension
    for name, (required, optional) in api.items():
        assert required == ours[name][0], name
        assert optional <= ours[name][1], name


def test_the_table_parser_reads_nested_and_optional_fields() -> None:
    shape = '{stream: stream, you: {id, name, role}|null, action: "a"|"b", seq, until?}'
    assert _top_level_keys(shape) == (frozenset({"stream", "you", "action", "seq"}), frozenset({"until"}))


def test_what_the_fan_out_reads_from_the_catalogue() -> None:
    assert {name for name, kind in CATALOGUE.items() if kind.ephemeral} == {"likes", "viewers"}
    assert events.VIEW_CHANGING == {"pin", "unpin", "sale", "sale_end", "stream"}
    # a payload is the plain dict sockets get: optional fields that do not apply are left out
    assert events.data(events.Moderation(action="ban", user_id="acc_1")) == {
        "action": "ban",
        "user_id": "acc_1",
    }
    message = events.message(events.RESYNC, events.Resync(seq=7), seq=7)
    assert (message["type"], message["data"], message["seq"]) == ("resync", {"seq": 7}, 7)
