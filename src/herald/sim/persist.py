"""`herald sim --state FILE`: the emulator's memory of traffic kept in a file across restarts.

What a restarted platform still knows: anchors (msg_ids, event ids) with their reply counts and
used `msg_seq`s, the bot's sent messages, transcripts, quotas and rate counters, proactive
permissions, files, uploads, streams, interactions, issued tokens and the clock's offset. Settings
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

from herald.sim.media import FileRecord, Upload
from herald.sim.state import Anchor, EventAnchor, Fault, Outbound, SimState, Token
from herald.sim.stream import Stream

VERSION = 1
KEPT = (
    "tokens",
    "current_token",
    "anchors",
    "event_anchors",
    "outbound",
    "ref_idx",
    "transcripts",
    "last_activity",
    "request_count",
    "faults",
    "proactive_allowed",
    "last_inbound_c2c",
    "wakeups_used",
    "counters",
    "day_counts",
    "files",
    "uploads",
    "streams",
    "interactions",
    "clicks",
    "dm_sessions",
    "channel_guild",
    "guild_messages",
    "sets",
    "upload_part_failures",
    "channel_seq",
)
CLASSES: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (Anchor, EventAnchor, Outbound, Token, Fault, FileRecord, Upload, Stream)
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
    return {"version": VERSION, "clock_offset": state.clock.offset, "state": kept}


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
        if data.get("version") != VERSION:
            raise ValueError(f"format version {data.get('version')!r}, this emulator reads {VERSION}")
        kept = {name: _decode(data["state"][name]) for name in KEPT}
        offset = float(data["clock_offset"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StateFileError(
            f"cannot read the emulator state file {path}: {exc}; move it away to start with a fresh state"
        ) from None
    for name, value in kept.items():
        setattr(state, name, value)
    state.requests = deque(maxlen=state.settings.request_log_limit)
    if state.current_token is not None:
        state.current_token = state.tokens.get(state.current_token.value, state.current_token)
    # A stream and the sent message it extends are one object in memory.
    for stream in state.streams.values():
        stream.outbound = state.outbound.get(stream.outbound.id, stream.outbound)
    if offset > state.clock.offset:
        state.clock.advance(offset - state.clock.offset)
    return True


def _fingerprint(state: SimState) -> tuple[Any, ...]:
    return (
        state.request_count,
        sum(len(entries) for entries in state.transcripts.values()),
        len(state.event_anchors),
        len(state.proactive_allowed),
        len(state.tokens),
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
