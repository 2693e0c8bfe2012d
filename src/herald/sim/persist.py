"""`herald sim --state FILE`: the emulator's memory of traffic kept in a file across restarts.

What a restarted platform still knows: the stores (issued tokens; anchors, msg_ids and event ids
with their reply counts and used `msg_seq`s, and the bot's sent messages; transcripts; quotas and
rate counters; files, uploads and served attachments; streams), proactive permissions,
interactions and the clock's offset. A file of format version 1 (the fields flat, before the
stores) is read too. Settings
come from the command line and are not kept; live wire sessions and the request log's entries are
not kept either (a bot reconnects, as after any platform restart).

The file is JSON with tagged values for what JSON lacks (tuples, sets, deques, bytes, non-string
keys, the state's dataclasses). It is written atomically (a temporary file, then a rename) when the
traffic changed, every `every_s` seconds and on shutdown, so a crash loses at most the last interval.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
from collections import deque
from pathlib import Path
from typing import Any

from herald.sim.state import Fault, SimState
from herald.sim.stores.anchors import Anchor, Anchors, EventAnchor, Outbound
from herald.sim.stores.log import RequestLog, Transcripts
from herald.sim.stores.media import FileRecord, MediaStore, Served, Upload
from herald.sim.stores.quotas import Quotas
from herald.sim.stores.streams import Stream, Streams
from herald.sim.stores.tokens import Token, Tokens

VERSION = 2
# The stores and the state's own fields kept in the file (the request log keeps only its count).
KEPT = (
    "tokens",
    "anchors",
    "transcripts",
    "quotas",
    "media",
    "streams",
    "faults",
    "proactive_allowed",
    "last_inbound_c2c",
    "wakeups_used",
    "interactions",
    "clicks",
    "dm_sessions",
    "channel_guild",
    "channel_seq",
)
# Version 1 kept the state's fields flat: where each lives now (store, field).
V1_FIELDS: dict[str, tuple[str, str]] = {
    "tokens": ("tokens", "issued"),
    "current_token": ("tokens", "current"),
    "anchors": ("anchors", "messages"),
    "event_anchors": ("anchors", "events"),
    "outbound": ("anchors", "outbound"),
    "ref_idx": ("anchors", "ref_idx"),
    "guild_messages": ("anchors", "guild_messages"),
    "transcripts": ("transcripts", "conversations"),
    "last_activity": ("transcripts", "last_activity"),
    "counters": ("quotas", "windows"),
    "day_counts": ("quotas", "days"),
    "sets": ("quotas", "sets"),
    "files": ("media", "files"),
    "uploads": ("media", "uploads"),
    "upload_part_failures": ("media", "part_failures"),
    "streams": ("streams", "by_id"),
}
CLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        Anchor,
        EventAnchor,
        Outbound,
        Token,
        Fault,
        FileRecord,
        Upload,
        Served,
        Stream,
        Tokens,
        Anchors,
        Transcripts,
        Quotas,
        MediaStore,
        Streams,
    )
}


class StateFileError(RuntimeError):
    """The state file cannot be used; the message names the file, the cause and the fix."""


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, tuple):
        return {"$tuple": [_encode(item) for item in value]}
    if isinstance(value, set):
        return {"$set": [_encode(item) for item in sorted(value, key=repr)]}
    if isinstance(value, deque):
        return {"$deque": [_encode(item) for item in value]}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("$") for key in value):
            return {key: _encode(item) for key, item in value.items()}
        return {"$dict": [[_encode(key), _encode(item)] for key, item in value.items()]}
    if dataclasses.is_dataclass(value) and type(value).__name__ in CLASSES:
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$class": type(value).__name__, "fields": fields}
    raise TypeError(f"the emulator's state holds a {type(value).__name__}, which the state file cannot keep")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "$tuple" in value:
        return tuple(_decode(item) for item in value["$tuple"])
    if "$set" in value:
        return {_decode(item) for item in value["$set"]}
    if "$deque" in value:
        return deque(_decode(item) for item in value["$deque"])
    if "$bytes" in value:
        return base64.b64decode(value["$bytes"])
    if "$dict" in value:
        return {_decode(key): _decode(item) for key, item in value["$dict"]}
    if "$class" in value:
        return CLASSES[value["$class"]](**{k: _decode(v) for k, v in value["fields"].items()})
    return {key: _decode(item) for key, item in value.items()}


def snapshot(state: SimState) -> dict[str, Any]:
    kept = {name: _encode(getattr(state, name)) for name in KEPT}
    kept["request_count"] = state.requests.count
    return {"version": VERSION, "clock_offset": state.clock.offset, "state": kept}


def _from_v1(flat: dict[str, Any]) -> dict[str, Any]:
    """A version 1 file's flat fields, as the stores of version 2 (each store's own encoding)."""
    stores: dict[str, dict[str, Any]] = {}
    kept: dict[str, Any] = {}
    for name, value in flat.items():
        if name in V1_FIELDS:
            store, field = V1_FIELDS[name]
            stores.setdefault(store, {})[field] = value
        else:
            kept[name] = value
    classes = {"tokens": "Tokens", "anchors": "Anchors", "transcripts": "Transcripts", "quotas": "Quotas",
               "media": "MediaStore", "streams": "Streams"}  # fmt: skip
    for store, fields in stores.items():
        kept[store] = {"$class": classes[store], "fields": fields}
    return kept


def save(state: SimState, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(snapshot(state), ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


def load(state: SimState, path: Path) -> bool:
    """Restore the traffic kept in `path`; False when the file does not exist yet."""
    if not path.exists():
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        version = data.get("version")
        if version not in (1, VERSION):
            raise ValueError(f"format version {version!r}, this emulator reads 1 and {VERSION}")
        stored = data["state"] if version == VERSION else _from_v1(data["state"])
        kept = {name: _decode(stored[name]) for name in KEPT if name in stored}
        request_count = int(stored.get("request_count", 0))
        offset = float(data["clock_offset"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StateFileError(
            f"cannot read the emulator state file {path}: {exc}; move it away to start with a fresh state"
        ) from None
    for name, value in kept.items():
        setattr(state, name, value)
    state.requests = RequestLog(state.settings.request_log_limit, count=request_count)
    tokens = state.tokens
    if tokens.current is not None:
        tokens.current = tokens.issued.get(tokens.current.value, tokens.current)
    # A stream and the sent message it extends are one object in memory.
    for stream in state.streams.by_id.values():
        stream.outbound = state.anchors.outbound.get(stream.outbound.id, stream.outbound)
    if offset > state.clock.offset:
        state.clock.advance(offset - state.clock.offset)
    return True


def _fingerprint(state: SimState) -> tuple[Any, ...]:
    return (
        state.requests.count,
        sum(len(entries) for entries in state.transcripts.conversations.values()),
        len(state.anchors.events),
        len(state.proactive_allowed),
        len(state.tokens.issued),
        state.clock.offset,
    )


async def keep(state: SimState, path: Path, every_s: float = 1.0) -> None:
    """Save whenever the traffic changed, every `every_s` seconds, and once more when cancelled."""
    saved = _fingerprint(state)
    try:
        while True:
            await asyncio.sleep(every_s)
            current = _fingerprint(state)
            if current != saved:
                save(state, path)
                saved = current
    finally:
        save(state, path)
