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
    """A picture, video, voice clip or file: given by URL, by bytes, or by the path of a local
    file (read part by part when it is sent, so it must stay there until then)."""

    kind: MediaKind
    url: str | None = None
    data: bytes | None = None
    name: str | None = None
    caption: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if sum(source is not None for source in (self.url, self.data, self.path)) != 1:
            raise ValueError("Media needs exactly one of url, data or path")

    @property
    def file_name(self) -> str:
        """The name a user sees: `name`, else the last part of the path or URL, else the kind."""
        if self.name:
            return self.name
        source = self.path or (self.url or "").split("?", 1)[0]
        tail = source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        return tail or self.kind.value


Segment = Text | Markdown | Media
