"""A NoneBot2 bot on `nonebot-adapter-qq`, as its documentation writes one: it echoes every message
and welcomes a user who adds it. Everything about where it connects comes from the environment
(`QQ_API_BASE`, `QQ_AUTH_BASE`, `QQ_BOTS`, `DRIVER`): NoneBot's own configuration."""

from __future__ import annotations

import nonebot
from nonebot import on_message, on_notice
from nonebot.adapters.qq import Adapter, Bot, FriendAddEvent, MessageEvent

nonebot.init()
nonebot.get_driver().register_adapter(Adapter)

echo = on_message()


@echo.handle()
async def _echo(bot: Bot, event: MessageEvent) -> None:
    await bot.send(event, "nonebot: " + event.get_plaintext().strip())


welcome = on_notice()


@welcome.handle()
async def _welcome(bot: Bot, event: FriendAddEvent) -> None:
    await bot.send(event, "nonebot: welcome")


if __name__ == "__main__":
    nonebot.run()
