"""The gate and the lanes' bounds, without the platform: who is an admin, deny beats allow, and a
conversation's waiting turns beyond the bound are merged, never dropped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from herald.agent.turns import Turn
from herald.config import AccessConfig, LimitsConfig
from herald.core.clock import VirtualClock
from herald.core.events import InboundMessage
from herald.core.target import Scene, Target
from herald.dispatch import Lanes
from herald.gate import Gate, TokenLedger

NOW = datetime(2026, 7, 21, 2, 30, tzinfo=UTC)


def gate(access: AccessConfig | None = None, limits: LimitsConfig | None = None) -> Gate:
    clock = VirtualClock(NOW)
    return Gate(access or AccessConfig(), limits or LimitsConfig(), clock, TokenLedger(None, clock, "UTC"))


def message(
    target: Target, author: str, roles: tuple[str, ...] = (), guild: str | None = None
) -> InboundMessage:
    return InboundMessage(target, "m", author, "hi", NOW, guild_id=guild, author_roles=roles)


async def test_token_totals_start_again_when_the_day_turns() -> None:
    clock = VirtualClock(NOW)
    ledger = TokenLedger(None, clock, "Asia/Shanghai")
    assert await ledger.today("author", "u1") == 0
    ledger.spent("c2c:u1", "u1", 50)
    ledger.spent("c2c:u1", "u1", 20)
    assert await ledger.today("author", "u1") == 70
    # 10:30 in Shanghai: 13.5 hours to its midnight.
    await clock.advance(13.5 * 3600 - 1)
    assert await ledger.today("author", "u1") == 70
    await clock.advance(1)
    assert await ledger.today("author", "u1") == 0


async def test_who_is_an_admin_and_who_may_talk() -> None:
    g = gate(AccessConfig(admins=["boss"], allow_users=["a"], deny_guilds=["bad"]))
    group, channel, c2c = Target(Scene.GROUP, "g"), Target(Scene.CHANNEL, "c"), Target(Scene.C2C, "a")
    assert g.is_admin(group, "x", ("Owner",)) and g.is_admin(channel, "x", ("1", "2"))
    assert not g.is_admin(group, "x", ("member",)) and not g.is_admin(channel, "x", ("1",))
    assert not g.is_admin(c2c, "a", ("owner",)) and g.is_admin(c2c, "boss")
    assert (await g.check(message(c2c, "a"), None)).refusal is None
    assert (await g.check(message(c2c, "boss"), None)).refusal is None  # admins are always allowed
    refused = (await g.check(message(c2c, "b"), None)).refusal
    assert refused is not None and refused.reason == "access: user not allowed"
    denied = (await g.check(message(channel, "a", guild="bad"), None)).refusal
    assert denied is not None and denied.reason == "access: guild denied"


async def test_admin_commands_apply_outside_private_chats_only() -> None:
    g = gate()
    assert (await g.check(message(Target(Scene.C2C, "u"), "u"), "reset")).refusal is None
    refused = (await g.check(message(Target(Scene.GROUP, "g"), "u", ("member",)), "reset")).refusal
    assert refused is not None and refused.kind == "admin"
    assert (await g.check(message(Target(Scene.GROUP, "g"), "u", ("admin",)), "reset")).refusal is None


async def test_the_user_is_told_once_per_interval() -> None:
    g = gate(limits=LimitsConfig(user_messages_per_minute=1))
    target = Target(Scene.C2C, "u")
    g.admitted(message(target, "u"), 1, False)
    refusal = (await g.check(message(target, "u"), None)).refusal
    assert refusal is not None and refusal.kind == "flood"
    assert g.should_tell(target, "u", refusal) and not g.should_tell(target, "u", refusal)
    await g.clock.advance(61)  # type: ignore[attr-defined]
    assert (await g.check(message(target, "u"), None)).refusal is None
    assert g.should_tell(target, "u", refusal)


def turn(turn_id: int, kind: str = "message") -> Turn:
    return Turn(turn_id, "c2c:u", f"s{turn_id}", kind, "u", f"text {turn_id}", f"s{turn_id}", None, NOW)


async def test_waiting_turns_beyond_the_bound_are_merged_into_the_newest() -> None:
    release = asyncio.Event()
    ran: list[tuple[int, str]] = []
    coalesced: list[tuple[int, int]] = []

    async def handle(t: Turn) -> None:
        await release.wait()
        ran.append((t.id, t.content))

    async def coalesce(old: Turn, into: Turn) -> None:
        coalesced.append((old.id, into.id))

    lanes = Lanes(handle, max_concurrent=1, max_waiting=2, coalesce=coalesce)
    for n, kind in enumerate(["message", "command", "message", "message", "message"], start=1):
        lanes.submit(turn(n, kind))
    await asyncio.sleep(0)
    release.set()
    await lanes.wait_idle()
    # 1 runs, 2 (a command) waits; each message beyond two waiting folds the oldest waiting
    # message into itself, so the newest carries all three texts and nothing is lost.
    assert coalesced == [(3, 4), (4, 5)]
    assert ran == [(1, "text 1"), (2, "text 2"), (5, "text 3\ntext 4\ntext 5")]


async def test_ids_of_another_platform_carry_its_name() -> None:
    g = gate(
        AccessConfig(deny_groups=["30001"], allow_users=["onebot:20001", "openid-a"], admins=["onebot:9"])
    )
    qq_group, onebot_group = Target(Scene.GROUP, "30001"), Target(Scene.GROUP, "30001", "onebot")
    denied = (await g.check(message(qq_group, "openid-a"), None)).refusal
    assert denied is not None and denied.reason == "access: group denied"
    # The same number on the OneBot account is another group, and its user is named with it.
    assert (await g.check(message(onebot_group, "20001"), None)).refusal is None
    refused = (await g.check(message(Target(Scene.C2C, "20001"), "20001"), None)).refusal
    assert refused is not None and refused.reason == "access: user not allowed"
    assert g.is_admin(onebot_group, "9") and not g.is_admin(qq_group, "9")
