"""The language of Herald's own replies (commands' answers): Chinese, English, or both, as a
conversation's policy says."""

from __future__ import annotations

from typing import Literal

Language = Literal["zh", "en", "zh+en"]


def say(language: Language, zh: str, en: str, both: str | None = None) -> str:
    """`zh` or `en`; for both, `both` when given (a text written for the two), else `zh (en)`."""
    if language == "zh":
        return zh
    if language == "en":
        return en
    return both if both is not None else f"{zh} ({en})"
