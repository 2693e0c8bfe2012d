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


class ButtonKind(StrEnum):
    CALLBACK = "callback"  # a click comes back as an `Interaction` carrying `data`
    LINK = "link"  # opens `data`, a URL; nothing comes back
    COMMAND = "command"  # puts `data` in the user's input box, to send as a message


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    kind: ButtonKind = ButtonKind.CALLBACK
    data: str = ""
    # Only these users may click it (the platform's clients enforce it); empty: everyone.
    only_users: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.label.strip():
            raise ValueError("a button needs a label")
        if not self.data:
            raise ValueError(f"button {self.label!r} needs data (what a click sends, or the link)")


KEYBOARD_ROWS = 5
KEYBOARD_ROW_BUTTONS = 5


@dataclass(frozen=True, slots=True)
class Keyboard:
    """Buttons under the message before it, in rows. Where a target cannot show them, they
    become numbered choices the user answers with `/choose N` (N counts buttons in row order)."""

    rows: tuple[tuple[Button, ...], ...]

    def __post_init__(self) -> None:
        if not self.rows or any(not row for row in self.rows):
            raise ValueError("a keyboard needs at least one button, and no empty row")
        if len(self.rows) > KEYBOARD_ROWS or any(len(row) > KEYBOARD_ROW_BUTTONS for row in self.rows):
            raise ValueError(f"a keyboard has at most {KEYBOARD_ROWS} rows of {KEYBOARD_ROW_BUTTONS} buttons")

    @classmethod
    def of(cls, buttons: list[Button] | tuple[Button, ...], per_row: int = 3) -> Keyboard:
        """`buttons` laid out `per_row` to a row."""
        items = tuple(buttons)
        return cls(tuple(items[i : i + per_row] for i in range(0, len(items), per_row)))

    @property
    def buttons(self) -> tuple[Button, ...]:
        """Every button in row order: choice N is `buttons[N - 1]`."""
        return tuple(button for row in self.rows for button in row)

    def as_choices(self) -> str:
        """The buttons as numbered text choices, for a target that cannot show them."""
        lines = []
        for number, button in enumerate(self.buttons, 1):
            if button.kind is ButtonKind.LINK:
                lines.append(f"{number}. {button.label}: {button.data}")
            else:
                lines.append(f"{number}. {button.label}")
        lines.append("回复 /choose 编号 选择 (reply /choose N)")
        return "\n".join(lines)


Segment = Text | Markdown | Media | Keyboard
