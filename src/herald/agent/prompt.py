"""The instructions the model gets on every request: the configured system prompt plus the facts
a turn needs (the current local time and zone, where it is talking)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from herald.agent.turns import Quoted
from herald.core.events import Attachment, InboundMessage
from herald.core.target import Scene, Target

_SCENES = {
    Scene.C2C: "a private chat with one user",
    Scene.GROUP: "a group chat",
    Scene.CHANNEL: "a guild channel",
    Scene.DM: "a guild direct message",
}


SHARED = (Scene.GROUP, Scene.CHANNEL)  # scenes where several people talk to the bot
QUOTE_CHARS = 300  # of a quoted message, in the turn


def instructions(system_prompt: str, target: Target, now: datetime, timezone: str) -> str:
    local = now.astimezone(ZoneInfo(timezone))
    speakers = " Each message starts with [who wrote it]." if target.scene in SHARED else ""
    return (
        f"{system_prompt}\n\n"
        f"Current time: {local:%Y-%m-%d %H:%M:%S %A} ({timezone}). "
        f"You are in {_SCENES.get(target.scene, 'a conversation')}.{speakers}"
    )


def message_text(event: InboundMessage, quoted: Quoted | None) -> str:
    """What the model reads of a user's message: who wrote it (where several people talk), the
    message it quotes, its text, and its attachments (a voice message by its transcript)."""
    lines: list[str] = []
    if event.quotes is not None:
        if quoted is None:
            lines.append("[quoting an earlier message Herald does not have]")
        else:
            who = "your message" if quoted.author_id is None else f"a message by {quoted.author_id}"
            text = quoted.text if len(quoted.text) <= QUOTE_CHARS else quoted.text[:QUOTE_CHARS] + "…"
            lines.append(f"[quoting {who}: «{text}»]")
    text = event.content.strip()
    if event.target.scene in SHARED:
        text = f"[{event.author_name or event.author_id}] {text}".rstrip()
    if text:
        lines.append(text)
    voices = [a.transcript for a in event.attachments if a.transcript]
    lines += [f"[voice message: {transcript}]" for transcript in voices]
    lines += [describe_attachment(a) for a in event.attachments if not a.transcript]
    return "\n".join(lines)


def attachment_kind(attachment: Attachment) -> str:
    """image, video, voice or file, from the platform's content type ("image/png", "voice", ...)."""
    kind = attachment.content_type.lower()
    if kind.startswith("image"):
        return "image"
    if kind.startswith("video"):
        return "video"
    if kind.startswith(("voice", "audio")):
        return "voice"
    return "file"


def describe_attachment(attachment: Attachment) -> str:
    """One line the model reads for an attachment: its kind, name, size, dimensions and URL (which
    a tool may fetch), e.g. `[file: report.pdf, 2.1 MB, https://...]`."""
    details: list[str] = []
    if attachment.filename:
        details.append(attachment.filename)
    if attachment.size is not None:
        details.append(_size(attachment.size))
    if attachment.width and attachment.height:
        details.append(f"{attachment.width}x{attachment.height}")
    if attachment.url:
        details.append(attachment.url)
    return f"[{attachment_kind(attachment)}: {', '.join(details) or attachment.content_type}]"


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def job_prompt(name: str, job_id: str, note: str, slot: datetime, timezone: str) -> str:
    local = slot.astimezone(ZoneInfo(timezone))
    return (
        f"[Scheduled task '{name}' (id {job_id}) fired at {local:%Y-%m-%d %H:%M} {timezone}.] "
        f"Your note for this moment: {note}"
    )
