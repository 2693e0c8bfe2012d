"""An example Herald plugin for group chats: two tools for the model (roll dice, pick one of
several options), the `/roll` and `/tally` chat commands, and hooks that count messages seen and
deliveries that failed."""

from __future__ import annotations

import random
import re
from collections import Counter

from herald.core.events import InboundMessage
from herald.plugin import CommandCall, Delivery, Plugin

plugin = Plugin("dice", "Dice, random picks and a delivery tally")

MAX_DICE = 20
MAX_SIDES = 1000
_roller = random.SystemRandom()
tally: Counter[str] = Counter()


@plugin.tool
def roll_dice(sides: int = 6, count: int = 1) -> str:
    """Roll dice and return each face and the total.

    Args:
        sides: faces on each die (2 to 1000)
        count: how many dice to roll (1 to 20)
    """
    if not 2 <= sides <= MAX_SIDES or not 1 <= count <= MAX_DICE:
        return f"error: sides must be 2..{MAX_SIDES} and count 1..{MAX_DICE}"
    faces = [_roller.randint(1, sides) for _ in range(count)]
    return f"{count}d{sides}: {' + '.join(map(str, faces))} = {sum(faces)}"


@plugin.tool
def pick_one(options: list[str]) -> str:
    """Pick one of the given options at random (a fair choice for the group).

    Args:
        options: the choices, at least two
    """
    choices = [option.strip() for option in options if option.strip()]
    if len(choices) < 2:
        return "error: give at least two options"
    return _roller.choice(choices)


@plugin.command("roll", "/roll [NdM] — 掷骰子 roll dice, e.g. /roll 2d6")
async def roll(call: CommandCall) -> str:
    found = re.fullmatch(r"\s*(\d*)\s*[dD]\s*(\d+)\s*", call.args) if call.args.strip() else None
    if call.args.strip() and found is None:
        return "用法 (usage): /roll 2d6"
    count = int(found.group(1) or 1) if found else 1
    sides = int(found.group(2)) if found else 6
    return roll_dice(sides=sides, count=count)


@plugin.command("tally", "/tally — 本插件看到的消息与未送达数 (messages seen, deliveries failed)")
async def show_tally(call: CommandCall) -> str:
    return f"messages seen: {tally['messages']}; deliveries failed: {tally['failed']}"


@plugin.on_message
async def count_message(message: InboundMessage) -> None:
    tally["messages"] += 1


@plugin.on_delivery
async def count_failure(delivery: Delivery) -> None:
    if not delivery.delivered:
        tally["failed"] += 1
