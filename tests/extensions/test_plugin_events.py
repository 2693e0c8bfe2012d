"""Every event the platform sends reaches a plugin's `on_event` hook as the right core event, over
the real gateway and over webhook pushes: relation changes, members joining and leaving a group,
a group message that does not @ the bot (with its author's role), guild recalls and reactions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from herald.core.events import (
    InboundEvent,
    InboundMessage,
    MemberChange,
    MemberEvent,
    MessageRecalled,
    Reaction,
    RelationEvent,
    RelationKind,
)
from herald.core.target import Scene, Target
from herald.plugin import Plugin
from herald.sim.settings import GROUP_MEMBER_EVENT, PUBLIC_INTENTS
from tests.app.herald_harness import Harness, Script
from tests.sim_control import free_port, running_sim

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

WAIT_S = 30.0  # a ceiling against hangs, never a timing assertion
REACTIONS = 1 << 10  # GUILD_MESSAGE_REACTIONS: public, but not in Herald's default intents


class Observer:
    """A plugin that remembers every event its `on_event` hook is given."""

    def __init__(self) -> None:
        self.plugin = Plugin("observer")
        self.events: list[InboundEvent] = []
        self._changed = asyncio.Event()

        @self.plugin.on_event
        async def seen(event: InboundEvent) -> None:
            self.events.append(event)
            self._changed.set()

    async def next(self) -> InboundEvent:
        """The next event heard (hooks run one event at a time here: each is awaited in turn)."""
        count = len(self.events)
        async with asyncio.timeout(WAIT_S):
            while len(self.events) <= count:
                self._changed.clear()
                await self._changed.wait()
        return self.events[count]


@asynccontextmanager
async def herald_with(db_url: str, transport: str, observer: Observer) -> AsyncIterator[Harness]:
    async with running_sim(intents_allowed=PUBLIC_INTENTS | GROUP_MEMBER_EVENT) as sim:
        h = Harness(sim, db_url, Script(), [observer.plugin])
        assert h.config.qq is not None
        update: dict[str, Any] = {"intents": h.config.qq.intents | GROUP_MEMBER_EVENT | REACTIONS}
        port = free_port()
        if transport == "webhook":
            update |= {"transport": "webhook", "webhook_port": port}
        h.config.qq = h.config.qq.model_copy(update=update)
        try:
            await h.start()
            if transport == "webhook":
                await h.call("PUT", "/_sim/settings", {"webhook_url": f"http://127.0.0.1:{port}/qq/webhook"})
                async with asyncio.timeout(WAIT_S):
                    while not (await h.call("GET", "/_sim/webhook"))["online"]:  # noqa: ASYNC110 (validation)
                        await asyncio.sleep(0.02)
            yield h
        finally:
            await h.close()


async def inject(h: Harness, observer: Observer, t: str, **fields: Any) -> tuple[InboundEvent, str]:
    answer = await h.call("POST", "/_sim/events", {"t": t, "fields": fields})
    return await observer.next(), str(answer["event_id"])


@pytest.mark.parametrize("transport", ["websocket", "webhook"])
async def test_every_event_reaches_the_plugin_hook_as_a_core_event(db_url: str, transport: str) -> None:
    observer = Observer()
    async with herald_with(db_url, transport, observer) as h:
        user, group = Target(Scene.C2C, "user-e"), Target(Scene.GROUP, "group-e")
        relations = [
            ("FRIEND_ADD", RelationKind.FRIEND_ADDED, True),
            ("FRIEND_DEL", RelationKind.FRIEND_REMOVED, False),
            ("C2C_MSG_REJECT", RelationKind.PROACTIVE_REFUSED, False),
            ("C2C_MSG_RECEIVE", RelationKind.PROACTIVE_ALLOWED, True),
        ]
        for t, kind, replyable in relations:
            event, event_id = await inject(h, observer, t, openid="user-e")
            assert isinstance(event, RelationEvent), t
            assert (event.kind, event.target) == (kind, user)
            assert event.event_id == (event_id if replyable else None), t
        for t, kind, replyable in [
            ("GROUP_ADD_ROBOT", RelationKind.BOT_ADDED, True),
            ("GROUP_MSG_REJECT", RelationKind.PROACTIVE_REFUSED, False),
            ("GROUP_MSG_RECEIVE", RelationKind.PROACTIVE_ALLOWED, True),
            ("GROUP_DEL_ROBOT", RelationKind.BOT_REMOVED, False),
        ]:
            event, event_id = await inject(h, observer, t, group_openid="group-e", op_member_openid="owner-e")
            assert isinstance(event, RelationEvent), t
            assert (event.kind, event.target, event.operator_id) == (kind, group, "owner-e")
            assert event.event_id == (event_id if replyable else None), t

        for t, change in [
            ("GROUP_MEMBER_ADD", MemberChange.JOINED),
            ("GROUP_MEMBER_REMOVE", MemberChange.LEFT),
        ]:
            event, _ = await inject(h, observer, t, group_openid="group-e", member_openid="member-e")
            assert isinstance(event, MemberEvent), t
            assert event == MemberEvent(change, group, "member-e", event.occurred_at), t

        # A group message that does not @ the bot ("receive all" mode): heard, not answered
        # ([agent] answer_unmentioned is off), with what the platform says the author is.
        await h.call(
            "POST",
            "/_sim/groups/group-e/messages",
            {"member_openid": "admin-e", "content": "just chatting", "at_bot": False, "member_role": "admin"},
        )
        message = await observer.next()
        assert isinstance(message, InboundMessage)
        assert (message.target, message.mentions_bot, message.author_roles) == (group, False, ("admin",))
        assert message.content == "just chatting"

        deleted = {"channel_id": "ch-e", "guild_id": "guild-e", "author": {"id": "writer-e"}}
        event, _ = await inject(
            h, observer, "PUBLIC_MESSAGE_DELETE", message_id="gm-1", message=deleted, op_user_id="admin-e"
        )
        assert isinstance(event, MessageRecalled)
        assert event == MessageRecalled(
            Target(Scene.CHANNEL, "ch-e"), "gm-1", event.occurred_at, "writer-e", "admin-e", "guild-e"
        )
        in_dm = {"channel_id": "dmc-e", "guild_id": "dm-guild-e", "author": {"id": "writer-e"}}
        event, _ = await inject(h, observer, "DIRECT_MESSAGE_DELETE", message_id="dm-1", message=in_dm)
        assert isinstance(event, MessageRecalled)
        assert event == MessageRecalled(
            Target(Scene.DM, "dm-guild-e"), "dm-1", event.occurred_at, "writer-e", "writer-e", "dm-guild-e"
        )

        for t, added in [("MESSAGE_REACTION_ADD", True), ("MESSAGE_REACTION_REMOVE", False)]:
            event, event_id = await inject(
                h, observer, t, user_id="fan-e", guild_id="guild-e", channel_id="ch-e", message_id="gm-2"
            )
            assert isinstance(event, Reaction), t
            assert event == Reaction(
                target=Target(Scene.CHANNEL, "ch-e"),
                user_id="fan-e",
                message_id="gm-2",
                emoji_id="4",
                emoji_type=1,
                added=added,
                occurred_at=event.occurred_at,
                guild_id="guild-e",
                event_id=event_id,
            ), t

        await h.idle()
        assert not [call for call in h.script.calls if "just chatting" in call]  # no turn ran for it
