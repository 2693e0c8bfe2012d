"""Segments → the platform messages they become (one outbox item may become several).

Rendering is deterministic for a given item and target state, so a retry produces the same
parts in the same order and each part finds its own reservation (anchor, msg_seq) again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from herald.core.segments import ButtonKind, Keyboard, Markdown, Media, Segment, Text
from herald.core.target import Scene, Target

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


ACTION_TYPES = {ButtonKind.LINK: 0, ButtonKind.CALLBACK: 1, ButtonKind.COMMAND: 2}
# permission.type: 0 the listed users only, 2 everyone (1 admins and 3 roles are the platform's own
# notions of who may click, which Herald decides itself when a click arrives).
PERMISSION_USERS, PERMISSION_EVERYONE = 0, 2
STYLE_BLUE = 1


def keyboard_body(keyboard: Keyboard) -> dict[str, Any]:
    """A custom keyboard as the platform takes it. Button ids are the choice numbers (1, 2 ...)."""
    rows = []
    number = 0
    for row in keyboard.rows:
        buttons = []
        for button in row:
            number += 1
            permission: dict[str, Any] = {"type": PERMISSION_EVERYONE}
            if button.only_users:
                permission = {"type": PERMISSION_USERS, "specify_user_ids": list(button.only_users)}
            buttons.append(
                {
                    "id": str(number),
                    "render_data": {
                        "label": button.label,
                        "visited_label": button.label,
                        "style": STYLE_BLUE,
                    },
                    "action": {
                        "type": ACTION_TYPES[button.kind],
                        "permission": permission,
                        "data": button.data,
                        "unsupport_tips": f"/choose {number}",
                    },
                }
            )
        rows.append({"buttons": buttons})
    return {"content": {"rows": rows}}


def message_body(
    target: Target, fields: dict[str, str | int | bool], part: Part, file_info: str | None
) -> dict[str, Any]:
    """The JSON body of one message request: the part as the scene takes it, plus its route's
    fields (`msg_id`/`event_id`, `msg_seq`, ...), the latter left out where a guild scene has none."""
    body: dict[str, Any]
    guild = target.scene in (Scene.CHANNEL, Scene.DM)
    if part.kind == "media":
        assert part.media is not None
        if guild:
            body = {"content": part.text} if part.media.url is None else {"image": part.media.url}
            if part.text and part.media.url is not None:
                body["content"] = part.text
        else:
            assert file_info is not None
            body = {"msg_type": 7, "media": {"file_info": file_info}, "content": part.text or " "}
    elif part.kind == "markdown" and not guild:
        body = {"msg_type": 2, "markdown": {"content": part.text}}
        if part.keyboard is not None:
            body["keyboard"] = keyboard_body(part.keyboard)
    else:
        body = {"content": part.text} if guild else {"msg_type": 0, "content": part.text}
    body.update({k: v for k, v in fields.items() if not (guild and k == "msg_seq")})
    return body
