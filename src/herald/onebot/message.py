"""OneBot v11 messages both ways: the array form and CQ-code strings in, core segments out.

A message is a list of segments `{"type": ..., "data": {...}}` or, in the string form, text with
CQ codes `[CQ:type,key=value,...]`, where `&`, `[`, `]` (and `,` inside a code) are escaped as
`&amp;`, `&#91;`, `&#93;`, `&#44;` (docs/onebot.md, "Messages").
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herald.core.events import Attachment
from herald.core.segments import Keyboard, Markdown, Media, MediaKind, Segment, Text

OneBotSegment = dict[str, Any]

_CQ = re.compile(r"\[CQ:([a-zA-Z0-9_.-]+)((?:,[^,\]]*)*)\]")
_MEDIA_TYPES = {"image": "image", "record": "voice", "video": "video", "file": "file"}
_SEND_TYPES = {
    MediaKind.IMAGE: "image",
    MediaKind.VOICE: "record",
    MediaKind.VIDEO: "video",
    MediaKind.FILE: "file",
}


def unescape(text: str, *, in_code: bool = False) -> str:
    text = text.replace("&#91;", "[").replace("&#93;", "]")
    if in_code:
        text = text.replace("&#44;", ",")
    return text.replace("&amp;", "&")


def escape(text: str, *, in_code: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("[", "&#91;").replace("]", "&#93;")
    return text.replace(",", "&#44;") if in_code else text


def parse_cq(message: str) -> list[OneBotSegment]:
    """A CQ-code string as message segments."""
    segments: list[OneBotSegment] = []
    at = 0
    for match in _CQ.finditer(message):
        if match.start() > at:
            segments.append({"type": "text", "data": {"text": unescape(message[at : match.start()])}})
        data: dict[str, str] = {}
        for pair in match.group(2).split(",")[1:]:
            key, _, value = pair.partition("=")
            data[key] = unescape(value, in_code=True)
        segments.append({"type": match.group(1), "data": data})
        at = match.end()
    if at < len(message):
        segments.append({"type": "text", "data": {"text": unescape(message[at:])}})
    return segments


def to_cq(segments: list[OneBotSegment]) -> str:
    """Message segments as a CQ-code string (what `raw_message` carries)."""
    out = []
    for segment in segments:
        data = segment.get("data") or {}
        if segment.get("type") == "text":
            out.append(escape(str(data.get("text", ""))))
        else:
            params = "".join(f",{key}={escape(str(value), in_code=True)}" for key, value in data.items())
            out.append(f"[CQ:{segment.get('type')}{params}]")
    return "".join(out)


def segments_of(message: Any) -> list[OneBotSegment]:
    """The segments of a message in either form; raises ValueError for anything else."""
    if isinstance(message, str):
        return parse_cq(message)
    if isinstance(message, list) and all(
        isinstance(s, dict) and isinstance(s.get("type"), str) for s in message
    ):
        return [{"type": s["type"], "data": dict(s.get("data") or {})} for s in message]
    raise ValueError(f"not a OneBot message (want a CQ string or a list of segments): {message!r:.200}")


@dataclass(frozen=True, slots=True)
class Reading:
    """What Herald reads in an inbound message."""

    content: str
    mentions_self: bool
    quotes: str | None
    attachments: tuple[Attachment, ...]


def read(segments: list[OneBotSegment], self_id: str) -> Reading:
    parts: list[str] = []
    mentions_self = False
    quotes: str | None = None
    attachments: list[Attachment] = []
    for segment in segments:
        kind, data = segment["type"], segment["data"]
        if kind == "text":
            parts.append(str(data.get("text", "")))
        elif kind == "at":
            qq = str(data.get("qq", ""))
            if qq == self_id:
                mentions_self = True
            else:
                parts.append(f"@{data.get('name') or qq}")
        elif kind == "reply":
            quotes = str(data.get("id", "")) or None
        elif kind == "face":
            parts.append(f"[face {data.get('id', '')}]")
        elif kind in _MEDIA_TYPES:
            url = str(data.get("url") or data.get("file") or "")
            name = data.get("name") or data.get("file")
            size = data.get("file_size") or data.get("size")
            attachments.append(
                Attachment(
                    content_type=_MEDIA_TYPES[kind],
                    url=url,
                    filename=str(name) if name else None,
                    size=int(size) if str(size or "").isdigit() else None,
                )
            )
    return Reading("".join(parts).strip(), mentions_self, quotes, tuple(attachments))


def media_segment(media: Media) -> OneBotSegment:
    """A media segment as implementations take it: `file` is a URL, `base64://` or `file://`."""
    if media.url is not None:
        file = media.url
    elif media.data is not None:
        file = "base64://" + base64.b64encode(media.data).decode("ascii")
    else:
        assert media.path is not None
        file = Path(media.path).resolve().as_uri()
    data: dict[str, Any] = {"file": file}
    if media.kind is MediaKind.FILE:
        data["name"] = media.file_name
    return {"type": _SEND_TYPES[media.kind], "data": data}


def split_text(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut at a line break where there is one."""
    pieces = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut + 1 if cut > limit // 2 else limit
        pieces.append(text[:cut])
        text = text[cut:]
    if text:
        pieces.append(text)
    return pieces


def render(segments: tuple[Segment, ...], max_chars: int) -> list[list[OneBotSegment]]:
    """Core segments as the messages to send, in order: text (markdown as written; OneBot shows
    plain text) split at `max_chars`, each media item its own message (implementations send
    most media kinds only alone), keyboards as numbered choices (OneBot has no buttons)."""
    messages: list[list[OneBotSegment]] = []
    text: list[str] = []

    def flush() -> None:
        joined = "\n".join(t for t in text if t)
        text.clear()
        for piece in split_text(joined, max_chars):
            messages.append([{"type": "text", "data": {"text": piece}}])

    for segment in segments:
        if isinstance(segment, Text | Markdown):
            text.append(segment.text)
        elif isinstance(segment, Keyboard):
            text.append(segment.as_choices())
        else:
            flush()
            messages.append([media_segment(segment)])
            if segment.caption:
                text.append(segment.caption)
    flush()
    return messages
