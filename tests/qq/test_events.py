"""Dispatch payloads shaped as the platform sends them → core events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from herald.core import InboundMessage, Interaction, RelationEvent, RelationKind, Scene
from herald.qq.events import parse_dispatch

NOW = datetime(2026, 7, 21, 2, 30, tzinfo=UTC)


def test_c2c_message_keeps_attachments_and_is_anchored_by_msg_id() -> None:
    d = {
        "id": "ROBOT1.0_xxx",
        "author": {"id": "OPENID", "user_openid": "OPENID", "union_openid": "UNION"},
        "content": "hello",
        "timestamp": "2026-07-21T10:30:00+08:00",
        "message_type": 0,
        "message_scene": {"source": "default", "ext": ["msg_idx=REFIDX_xxx"]},
        "attachments": [
            {
                "content_type": "image/jpeg",
                "filename": "x.jpg",
                "height": 640,
                "width": 480,
                "size": "12345",
                "url": "multimedia.nt.qq.com.cn/download?x=1",
            },
            {"content_type": "voice", "url": "//multimedia.nt.qq.com.cn/v", "asr_refer_text": "hi"},
        ],
        "msg_elements": [{"anything": True}],
        "brand_new_field": {"x": 1},
    }
    event = parse_dispatch("C2C_MESSAGE_CREATE", d, "C2C_MESSAGE_CREATE:abc", NOW)
    assert isinstance(event, InboundMessage)
    assert (event.target.scene, event.target.id, event.message_id) == (Scene.C2C, "OPENID", "ROBOT1.0_xxx")
    assert (event.author_id, event.content, event.received_at, event.event_id) == (
        "OPENID",
        "hello",
        NOW,
        None,
    )
    image, voice = event.attachments
    assert (image.url, image.size, image.width, image.filename) == (
        "https://multimedia.nt.qq.com.cn/download?x=1",
        12345,
        480,
        "x.jpg",
    )
    assert voice.url == "https://multimedia.nt.qq.com.cn/v" and voice.content_type == "voice"


def test_group_messages() -> None:
    d = {
        "id": "ROBOT1.0_g",
        "group_id": "C9F7",
        "author": {"id": "MEMBER", "member_openid": "MEMBER"},
        "content": " /cmd arg",
        "mentions": [{"scope": "single", "id": "b", "is_you": True, "bot": True}],
    }
    at = parse_dispatch("GROUP_AT_MESSAGE_CREATE", d, "GROUP_AT_MESSAGE_CREATE:1", NOW)
    assert isinstance(at, InboundMessage)
    assert (at.target.key, at.author_id, at.content, at.mentions_bot) == (
        "group:C9F7",
        "MEMBER",
        "/cmd arg",
        True,
    )
    full = parse_dispatch(
        "GROUP_MESSAGE_CREATE", {**d, "group_openid": "C9F7"}, "GROUP_MESSAGE_CREATE:2", NOW
    )
    assert isinstance(full, InboundMessage) and full.mentions_bot is False


def test_guild_channel_and_dm_messages() -> None:
    channel = parse_dispatch(
        "AT_MESSAGE_CREATE",
        {
            "id": "08a1",
            "channel_id": 123,
            "guild_id": "456",
            "content": "<@!9988> hi <@!7>",
            "author": {"id": "1122", "username": "u", "bot": False},
            "mentions": [{"id": "9988", "bot": True}, {"id": "7", "bot": False}],
            "seq": 5,
        },
        "AT_MESSAGE_CREATE:x",
        NOW,
    )
    assert isinstance(channel, InboundMessage)
    assert (channel.target.key, channel.guild_id, channel.author_id) == ("channel:123", "456", "1122")
    assert channel.content == "hi <@!7>"
    dm = parse_dispatch(
        "DIRECT_MESSAGE_CREATE",
        {"id": "dm1", "guild_id": "DMG", "src_guild_id": "SRC", "channel_id": "c", "author": {"id": "1122"}},
        "DIRECT_MESSAGE_CREATE:y",
        NOW,
    )
    assert isinstance(dm, InboundMessage)
    assert (dm.target.key, dm.guild_id, dm.message_id) == ("dm:DMG", "SRC", "dm1")


@pytest.mark.parametrize(
    ("t", "d", "kind", "target", "replyable"),
    [
        (
            "FRIEND_ADD",
            {"timestamp": 1700000000, "openid": "U", "scene": 1000},
            RelationKind.FRIEND_ADDED,
            "c2c:U",
            True,
        ),
        ("FRIEND_DEL", {"timestamp": 1700000000, "openid": "U"}, RelationKind.FRIEND_REMOVED, "c2c:U", False),
        ("C2C_MSG_REJECT", {"timestamp": 1, "openid": "U"}, RelationKind.PROACTIVE_REFUSED, "c2c:U", False),
        ("C2C_MSG_RECEIVE", {"timestamp": 1, "openid": "U"}, RelationKind.PROACTIVE_ALLOWED, "c2c:U", True),
        (
            "GROUP_ADD_ROBOT",
            {"timestamp": 1, "group_openid": "G", "op_member_openid": "M"},
            RelationKind.BOT_ADDED,
            "group:G",
            True,
        ),
        (
            "GROUP_DEL_ROBOT",
            {"timestamp": 1, "group_openid": "G"},
            RelationKind.BOT_REMOVED,
            "group:G",
            False,
        ),
        (
            "GROUP_MSG_REJECT",
            {"timestamp": 1, "group_openid": "G"},
            RelationKind.PROACTIVE_REFUSED,
            "group:G",
            False,
        ),
        (
            "GROUP_MSG_RECEIVE",
            {"timestamp": 1, "group_openid": "G"},
            RelationKind.PROACTIVE_ALLOWED,
            "group:G",
            True,
        ),
    ],
)
def test_relation_events(
    t: str, d: dict[str, object], kind: RelationKind, target: str, replyable: bool
) -> None:
    event = parse_dispatch(t, d, f"{t}:e1", NOW)
    assert isinstance(event, RelationEvent)
    assert (event.kind, event.target.key) == (kind, target)
    assert event.event_id == (f"{t}:e1" if replyable else None)
    assert event.occurred_at == datetime.fromtimestamp(int(str(d["timestamp"])), UTC)


def test_interactions_in_each_scene() -> None:
    base = {"id": "I1", "type": 11, "data": {"type": 11, "resolved": {"button_id": "b", "button_data": "go"}}}
    group = parse_dispatch(
        "INTERACTION_CREATE",
        {**base, "scene": "group", "chat_type": 1, "group_openid": "G", "group_member_openid": "M"},
        "INTERACTION_CREATE:1",
        NOW,
    )
    c2c = parse_dispatch(
        "INTERACTION_CREATE",
        {
            "id": "I2",
            "type": 18,
            "scene": "c2c",
            "chat_type": 2,
            "user_openid": "U",
            "data": {"type": 18, "resolved": {"authorize_data": {"opt_scene": 1, "scope": "c2c_push"}}},
        },
        "INTERACTION_CREATE:2",
        NOW,
    )
    guild = parse_dispatch(
        "INTERACTION_CREATE",
        {**base, "scene": "guild", "chat_type": 0, "guild_id": "9", "channel_id": "C"},
        "INTERACTION_CREATE:3",
        NOW,
    )
    assert isinstance(group, Interaction) and isinstance(c2c, Interaction) and isinstance(guild, Interaction)
    assert (group.target.key, group.user_id, group.button_data, group.event_id) == (
        "group:G",
        "M",
        "go",
        "INTERACTION_CREATE:1",
    )
    assert (c2c.target.key, c2c.kind, c2c.extra["authorize_scope"]) == ("c2c:U", 18, "c2c_push")
    assert (guild.target.key, guild.extra["guild_id"]) == ("channel:C", "9")


def test_unknown_or_unfit_payloads_give_none() -> None:
    assert parse_dispatch("GUILD_CREATE", {"id": "1"}, "GUILD_CREATE:1", NOW) is None
    assert parse_dispatch("C2C_MESSAGE_CREATE", "not an object", "x", NOW) is None
    assert parse_dispatch("C2C_MESSAGE_CREATE", {"content": "no id"}, "x", NOW) is None
    assert parse_dispatch("C2C_MESSAGE_CREATE", {"id": "1", "author": {}}, "x", NOW) is None
    assert parse_dispatch("GROUP_ADD_ROBOT", {"timestamp": 1}, "x", NOW) is None


def test_every_string_is_made_storable_and_bad_list_entries_cost_only_themselves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = {
        "id": "m\x001",
        "channel_id": "c1",
        "guild_id": "g1",
        "content": "<@!BOT> hi \ud83d there\x00",
        "author": {"id": "a\ud8001"},
        "mentions": ["BOT", {"id": "BOT", "bot": True}, {"id": ["not", "a", "string"]}],
        "attachments": [None, {"url": "https://x/y.png", "content_type": "image/png"}],
    }
    event = parse_dispatch("AT_MESSAGE_CREATE", d, "AT_MESSAGE_CREATE:\udc00", NOW)
    assert isinstance(event, InboundMessage)
    assert (event.message_id, event.author_id, event.content) == ("m1", "a\ufffd1", "hi \ufffd there")
    assert [a.url for a in event.attachments] == ["https://x/y.png"]
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped == [
        "qq message m1: mention #1 dropped: not an object (str)",
        "qq message m1: mention #3 dropped: field 'id' does not fit",
        "qq message m1: attachment #1 dropped: not an object (NoneType)",
    ]


def test_ids_longer_than_the_store_keeps_are_rejected_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    long_openid = "o" * 260
    d = {"id": "m1", "content": "hi", "author": {"user_openid": long_openid}}
    assert parse_dispatch("C2C_MESSAGE_CREATE", d, "C2C_MESSAGE_CREATE:1", NOW) is None
    interaction = {"id": "i" * 256, "scene": "c2c", "user_openid": "u1"}
    assert parse_dispatch("INTERACTION_CREATE", interaction, "INTERACTION_CREATE:2", NOW) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings
    assert "C2C_MESSAGE_CREATE:1 rejected: its target is 264 characters" in warnings[0]
    assert "INTERACTION_CREATE:2 rejected: its interaction id is 256 characters" in warnings[1]


def test_the_platforms_roles_of_the_author_are_kept() -> None:
    group = parse_dispatch(
        "GROUP_AT_MESSAGE_CREATE",
        {"id": "m1", "group_openid": "g", "author": {"member_openid": "a", "member_role": "owner"}},
        "e1",
        NOW,
    )
    assert isinstance(group, InboundMessage) and group.author_roles == ("owner",)
    older = parse_dispatch("GROUP_AT_MESSAGE_CREATE", {"id": "m2", "group_openid": "g"}, "e2", NOW)
    assert isinstance(older, InboundMessage) and older.author_roles == ()
    channel = parse_dispatch(
        "AT_MESSAGE_CREATE",
        {
            "id": "m3",
            "channel_id": "c",
            "guild_id": "gu",
            "author": {"id": "u"},
            "member": {"roles": ["1", 4]},
        },
        "e3",
        NOW,
    )
    assert isinstance(channel, InboundMessage) and channel.author_roles == ("1", "4")
    odd = parse_dispatch(
        "AT_MESSAGE_CREATE", {"id": "m4", "channel_id": "c", "author": {"id": "u"}, "member": "x"}, "e4", NOW
    )
    assert isinstance(odd, InboundMessage) and odd.author_roles == ()


def test_member_recall_and_reaction_events() -> None:
    from herald.core import MemberChange, MemberEvent, MessageRecalled, Reaction, Target

    joined = parse_dispatch(
        "GROUP_MEMBER_ADD", {"timestamp": 1784601000, "group_openid": "g", "member_openid": "m"}, "E:1", NOW
    )
    assert joined == MemberEvent(
        MemberChange.JOINED, Target(Scene.GROUP, "g"), "m", datetime.fromtimestamp(1784601000, UTC)
    )
    assert parse_dispatch("GROUP_MEMBER_REMOVE", {"group_openid": "g"}, "E:2", NOW) is None  # no member

    message = {"id": "x1", "channel_id": "c", "guild_id": 42, "author": {"id": 7, "bot": False}}
    deleted = parse_dispatch("MESSAGE_DELETE", {"message": message, "op_user": {"id": "9"}}, "E:3", NOW)
    assert deleted == MessageRecalled(Target(Scene.CHANNEL, "c"), "x1", NOW, "7", "9", "42")
    in_dm = {"id": "x2", "channel_id": "dc", "guild_id": "dg", "src_guild_id": "sg", "author": {"id": "7"}}
    deleted = parse_dispatch("DIRECT_MESSAGE_DELETE", {"message": in_dm, "op_user": {"id": "7"}}, "E:4", NOW)
    assert deleted == MessageRecalled(Target(Scene.DM, "dg"), "x2", NOW, "7", "7", "sg")
    assert parse_dispatch("PUBLIC_MESSAGE_DELETE", {"op_user": {"id": "7"}}, "E:5", NOW) is None

    d = {
        "user_id": "u",
        "guild_id": "G",
        "channel_id": "c",
        "target": {"id": "x1", "type": "ReactionTargetType_MSG"},
        "emoji": {"id": "4", "type": 1},
    }
    reaction = parse_dispatch("MESSAGE_REACTION_REMOVE", d, "MESSAGE_REACTION_REMOVE:9", NOW)
    assert reaction == Reaction(
        Target(Scene.CHANNEL, "c"), "u", "x1", "4", 1, False, NOW, 0, "G", "MESSAGE_REACTION_REMOVE:9"
    )
