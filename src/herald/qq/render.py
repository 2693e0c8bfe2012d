"""Segments → the platform messages they become (one outbox item may become several).

Rendering is deterministic for a given item and target state, so a retry produces the same
parts in the same order and each part finds its own reservation (anchor, msg_seq) again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from herald.core.segments import Keyboard, Markdown, Media, Segment, Text
from herald.core.target import Scene

UrlPolicy = Literal["keep", "strip", "break"]

_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'）)]+")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;.])\s*")


@dataclass(frozen=True, slots=True)
class Part:
    """One platform message before routing: text, markdown, or one media item (with caption)."""

    kind: Literal["text", "markdown", "media"]
    text: str = ""
    media: Media | None = None
    keyboard: Keyboard | None = None  # only on a markdown part: the platform shows buttons only there

    def without_keyboard(self, *, markdown: bool) -> Part:
        """This part where its buttons cannot be shown: their numbered choices follow the text."""
        if self.keyboard is None:
            return self if markdown or self.kind != "markdown" else Part("text", self.text)
        text = (
            f"{self.text}\n\n{self.keyboard.as_choices()}"
            if self.text.strip()
            else self.keyboard.as_choices()
        )
        return Part("markdown" if markdown else "text", text)


# The text of a keyboard message that has none of its own (the platform wants content with buttons).
KEYBOARD_PROMPT = "请选择 (choose):"


def render(
    segments: tuple[Segment, ...] | list[Segment],
    scene: Scene,
    *,
    markdown_ok: bool = True,
    url_policy: UrlPolicy = "keep",
    max_chars: int = 2000,
    keyboard_ok: bool = True,
) -> list[Part]:
    """Adjacent text segments join into one message; markdown stays markdown unless refused;
    each media item is its own message; long text is split at sensible boundaries.

    A keyboard rides on the text before it, which is then sent as markdown (the platform shows
    buttons only under markdown, in C2C and groups). Where markdown or keyboards are refused, or
    in guilds, its buttons become numbered choices appended to that text."""
    buttons_ok = keyboard_ok and markdown_ok and scene in (Scene.C2C, Scene.GROUP)
    parts: list[Part] = []
    pending: list[str] = []
    pending_kind: Literal["text", "markdown"] = "text"

    def flush() -> None:
        if not pending:
            return
        text = "".join(pending)
        if scene is Scene.GROUP:
            text = apply_url_policy(text, url_policy)
        for chunk in split_text(text, max_chars):
            if chunk.strip():
                parts.append(Part(pending_kind, chunk))
        pending.clear()

    for segment in segments:
        if isinstance(segment, Keyboard):
            flush()
            _attach(parts, segment, buttons_ok)
            continue
        if isinstance(segment, Media):
            flush()
            parts.append(Part("media", segment.caption or "", segment))
            continue
        kind: Literal["text", "markdown"] = (
            "markdown"
            if isinstance(segment, Markdown) and markdown_ok and scene in (Scene.C2C, Scene.GROUP)
            else "text"
        )
        if pending and kind != pending_kind:
            flush()
        pending_kind = kind
        assert isinstance(segment, Text | Markdown)
        pending.append(segment.text)
    flush()
    return parts


def _attach(parts: list[Part], keyboard: Keyboard, buttons_ok: bool) -> None:
    last = parts[-1] if parts else None
    if last is None or last.kind == "media" or last.keyboard is not None:
        part = Part("markdown", KEYBOARD_PROMPT, keyboard=keyboard)
        parts.append(part if buttons_ok else part.without_keyboard(markdown=False))
        return
    part = Part("markdown", last.text, keyboard=keyboard)
    parts[-1] = part if buttons_ok else part.without_keyboard(markdown=last.kind == "markdown")


def split_text(text: str, limit: int) -> list[str]:
    """Cut `text` into chunks of at most `limit` characters, preferring paragraph, then line,
    then sentence boundaries, and only as a last resort the middle of a sentence."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = _last_boundary(window)
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n")
    if rest:
        chunks.append(rest)
    return [chunk for chunk in chunks if chunk]


def _last_boundary(window: str) -> int:
    floor = len(window) // 3  # a boundary too early makes tiny chunks; cut mid-sentence instead
    for separator in ("\n\n", "\n"):
        at = window.rfind(separator)
        if at > floor:
            return at + len(separator)
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() > floor and m.end() < len(window)]
    if ends:
        return ends[-1]
    space = window.rfind(" ")
    if space > floor:
        return space + 1
    return len(window)


def apply_url_policy(text: str, policy: UrlPolicy) -> str:
    """Groups refuse unregistered URLs (`40054010`): keep them, strip them, or break them so they
    are readable but not links."""
    if policy == "keep":
        return text
    if policy == "strip":
        return re.sub(r"[ \t]{2,}", " ", _URL.sub("", text)).strip()
    return _URL.sub(lambda m: _defang(m.group(0)), text)


def _defang(url: str) -> str:
    url = re.sub(r"(?i)^http", "hxxp", url)
    return url.replace(".", "[.]")
