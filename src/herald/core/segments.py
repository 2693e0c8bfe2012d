"""What an outbound message is made of, before any platform renders it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Markdown:
    """Markdown; the platform adapter falls back to text where a target refuses markdown."""

    text: str


class MediaKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    VOICE = "voice"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Media:
    """A picture, video, voice clip or file: given by URL, or by bytes (base64-able)."""

    kind: MediaKind
    url: str | None = None
    data: bytes | None = None
    name: str | None = None
    caption: str | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise ValueError("Media needs exactly one of url or data")


Segment = Text | Markdown | Media
