"""OneBot v11: a personal QQ account run by an implementation (NapCat, Lagrange, LLOneBot,
go-cqhttp), as a second `core.Platform` beside `herald.qq`. docs/onebot.md has the whole picture."""

from herald.onebot.platform import OneBotPlatform

__all__ = ["OneBotPlatform"]
