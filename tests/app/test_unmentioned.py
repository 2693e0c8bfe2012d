"""`[agent] answer_unmentioned = false` (the default): in every scene that delivers messages which
do not @ the bot (groups in "receive all" mode, guild channels of a private bot), those messages
start no turn; a message that @s the bot is answered."""

from __future__ import annotations

import pytest

from herald.sim.app import serve
from herald.sim.settings import PUBLIC_INTENTS, SimSettings
from tests.app.herald_harness import Harness, Script

GUILD_MESSAGES = 1 << 9  # MESSAGE_CREATE: every channel message, not only @bot


@pytest.mark.parametrize("scene", ["group", "channel"])
async def test_unmentioned_messages_start_no_turn(db_url: str, scene: str) -> None:
    # A private-domain bot: the platform grants it GUILD_MESSAGES (an ordinary bot is refused 4014).
    async with serve(SimSettings(port=0, intents_allowed=PUBLIC_INTENTS | GUILD_MESSAGES)) as sim:
        h = Harness(sim, db_url, Script())
        assert h.config.qq is not None
        h.config.qq.intents |= GUILD_MESSAGES
        await h.start()
        try:
            if scene == "group":
                path, target = "/_sim/groups/g-1/messages", "g-1"
                body = {"member_openid": "member-1"}
            else:
                path, target = "/_sim/channels/ch-1/messages", "ch-1"
                body = {"guild_id": "guild-1", "author_id": "author-1"}
            await h.call("POST", path, {**body, "content": "just chatting", "at_bot": False})
            await h.call("POST", path, {**body, "content": "hello bot", "at_bot": True})
            # Turns of one conversation run in arrival order: once the @ message is answered,
            # a turn for the earlier message would have run already.
            await h.wait_delivered(scene, target, 1)
            await h.idle()
            assert [call for call in h.script.calls if "just chatting" in call] == []
            assert any("hello bot" in call for call in h.script.calls)
            delivered = await h.delivered(scene, target)
            assert len(delivered) == 1 and delivered[0]["content"].startswith("echo: ")
        finally:
            await h.close()
