"""Segments and results as stored on an outbox row (JSON), so a restarted process can resume them."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from herald.core.platform import Details, Sent
from herald.core.segments import Button, ButtonKind, Keyboard, Markdown, Media, MediaKind, Segment, Text


def dump_segments(segments: Sequence[Segment]) -> str:
    return json.dumps([_dump(segment) for segment in segments], ensure_ascii=False, separators=(",", ":"))


def load_segments(raw: str) -> tuple[Segment, ...]:
    return tuple(_load(item) for item in json.loads(raw))


def _dump(segment: Segment) -> dict[str, Any]:
    if isinstance(segment, Text):
        return {"t": "text", "text": segment.text}
    if isinstance(segment, Markdown):
        return {"t": "markdown", "text": segment.text}
    if isinstance(segment, Media):
        stored: dict[str, Any] = {
            "t": "media",
            "kind": segment.kind.value,
            "url": segment.url,
            "data": base64.b64encode(segment.data).decode() if segment.data is not None else None,
            "name": segment.name,
            "caption": segment.caption,
        }
        if segment.path is not None:
            stored["path"] = segment.path
        return stored
    if isinstance(segment, Keyboard):
        return {
            "t": "keyboard",
            "rows": [
                [
                    {"label": b.label, "kind": b.kind.value, "data": b.data, "only": list(b.only_users)}
                    for b in row
                ]
                for row in segment.rows
            ],
        }
    raise TypeError(f"not a segment: {segment!r}")


def _load(item: dict[str, Any]) -> Segment:
    kind = item["t"]
    if kind == "text":
        return Text(item["text"])
    if kind == "markdown":
        return Markdown(item["text"])
    if kind == "media":
        data = item.get("data")
        return Media(
            MediaKind(item["kind"]),
            url=item.get("url"),
            data=base64.b64decode(data) if data is not None else None,
            name=item.get("name"),
            caption=item.get("caption"),
            path=item.get("path"),
        )
    if kind == "keyboard":
        return Keyboard(
            tuple(
                tuple(
                    Button(b["label"], ButtonKind(b["kind"]), b["data"], tuple(b.get("only") or ()))
                    for b in row
                )
                for row in item["rows"]
            )
        )
    raise ValueError(f"unknown stored segment type {kind!r}")


def dump_ids(ids: Sequence[str]) -> str:
    return json.dumps(list(ids))


def dump_details(details: Details) -> str | None:
    return json.dumps([list(pair) for pair in details], ensure_ascii=False) if details else None


def load_details(raw: str | None) -> Details:
    return tuple((str(label), str(value)) for label, value in json.loads(raw)) if raw else ()


def describe_details(details: Details) -> str:
    """One line for the operator: "msg_seq 2 · recall periods left 3 of 4"."""
    return " · ".join(f"{label} {value}" for label, value in details)


def sent_from_row(
    route: str | None,
    platform_ids: str | None,
    anchor_id: str | None,
    ref: str | None,
    details: str | None,
) -> Sent:
    return Sent(
        platform_ids=tuple(json.loads(platform_ids)) if platform_ids else (),
        route=route or "",
        anchor_id=anchor_id,
        ref=ref,
        details=load_details(details),
    )
