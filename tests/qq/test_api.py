"""The REST client against `herald sim`: sends in four scenes, errors classified, 401 refresh-once,
5xx bursts, media (inline and chunked), streaming, recall, interactions, identity."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest

from herald.core import ErrorKind, Scene, SystemClock
from herald.qq.api import FileHashes, FileType, QQApi
from herald.qq.auth import TokenManager
from herald.qq.errors import QQApiError
from herald.sim.app import RunningSim
from tests.sim_control import SimControl

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


async def test_replies_in_four_scenes(api: QQApi, control: SimControl) -> None:
    await control.settings(require_session_for_guild=False)
    c2c = await control.c2c("u1", "hi")
    grp = await control.group("g1", "m1", "hi")
    ch = await control.channel("c1", "4194304", "guser", "hi")
    dm = await control.dm("dmguild1", "guser", "hi")
    sent = [
        await api.post_message(
            Scene.C2C, "u1", {"msg_type": 0, "content": "a", "msg_id": c2c["msg_id"], "msg_seq": 1}
        ),
        await api.post_message(
            Scene.GROUP, "g1", {"msg_type": 0, "content": "b", "msg_id": grp["msg_id"], "msg_seq": 1}
        ),
        await api.post_message(Scene.CHANNEL, "c1", {"content": "c", "msg_id": ch["msg_id"]}),
        await api.post_message(Scene.DM, "dmguild1", {"content": "d", "msg_id": dm["msg_id"]}),
    ]
    assert all(isinstance(s.get("id"), str) and s["id"] for s in sent)
    paths = [r["path"] for r in await control.requests() if r["method"] == "POST" and r["status"] == 200]
    assert paths[-4:] == [
        "/v2/users/u1/messages",
        "/v2/groups/g1/messages",
        "/channels/c1/messages",
        "/dms/dmguild1/messages",
    ]


async def test_the_seed_bug_is_a_replan_and_a_duplicate_is_flagged(api: QQApi, control: SimControl) -> None:
    inbound = await control.c2c("u1", "hi")
    first = await api.post_message(
        Scene.C2C, "u1", {"msg_type": 0, "content": "1", "msg_id": inbound["msg_id"], "msg_seq": 1}
    )
    with pytest.raises(QQApiError) as seed:
        # Replying to the bot's own message id: the bug Herald exists to fix (40034024).
        await api.post_message(
            Scene.C2C, "u1", {"msg_type": 0, "content": "2", "msg_id": first["id"], "msg_seq": 2}
        )
    assert (seed.value.status, seed.value.code, seed.value.kind) == (400, 40034024, ErrorKind.REPLAN)
    assert seed.value.trace_id
    with pytest.raises(QQApiError) as dup:
        await api.post_message(
            Scene.C2C, "u1", {"msg_type": 0, "content": "1", "msg_id": inbound["msg_id"], "msg_seq": 1}
        )
    assert dup.value.code == 40054005 and dup.value.duplicate
    delivery = dup.value.to_delivery_error()
    assert delivery.code == 40054005 and "already delivered" in delivery.reason


async def test_401_refreshes_the_token_once_and_retries_once(
    api: QQApi, tokens: TokenManager, control: SimControl
) -> None:
    await api.me()
    await control.fault(kind="expire_tokens")
    me = await api.me()
    assert me["id"] and tokens.fetches == 2
    statuses = [r["status"] for r in await control.requests() if r["path"] == "/users/@me"]
    assert statuses == [200, 401, 200]


async def test_a_5xx_burst_is_retry_later_then_passes(api: QQApi, control: SimControl) -> None:
    await control.fault(kind="fail_next", count=3, status=500, code=50055001)
    kinds = []
    for _ in range(3):
        with pytest.raises(QQApiError) as info:
            await api.me()
        kinds.append(
            (info.value.status, info.value.kind, info.value.to_delivery_error().retry_after is not None)
        )
    assert kinds == [(500, ErrorKind.RETRY_LATER, True)] * 3
    assert (await api.me())["id"]


async def test_rate_limit_429_is_retry_later(api: QQApi, control: SimControl) -> None:
    await control.fault(kind="fail_next", count=1, status=429, code=50002)
    with pytest.raises(QQApiError) as info:
        await api.gateway_bot()
    assert (info.value.status, info.value.kind) == (429, ErrorKind.RETRY_LATER)


async def test_unreachable_api_is_retry_later(http: aiohttp.ClientSession, tokens: TokenManager) -> None:
    api = QQApi(http, tokens, "http://127.0.0.1:9")
    with pytest.raises(QQApiError) as info:
        await api.me()
    assert (info.value.status, info.value.kind) == (0, ErrorKind.RETRY_LATER)


async def test_inline_upload_then_media_message(api: QQApi, control: SimControl) -> None:
    inbound = await control.c2c("u1", "send me a picture")
    uploaded = await api.upload_file(Scene.C2C, "u1", FileType.IMAGE, data=PNG, file_name="dot.png")
    assert uploaded["file_info"]
    sent = await api.post_message(
        Scene.C2C,
        "u1",
        {
            "msg_type": 7,
            "media": {"file_info": uploaded["file_info"]},
            "msg_id": inbound["msg_id"],
            "msg_seq": 1,
        },
    )
    assert sent["id"]


class FastClock(SystemClock):
    """Real time, but sleeps are recorded and shortened (the upload retry waits `retry_delay`)."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


@pytest.mark.parametrize("part_base", [0, 1])
async def test_chunked_upload_retries_40093001(
    http: aiohttp.ClientSession, tokens: TokenManager, sim: RunningSim, control: SimControl, part_base: int
) -> None:
    await control.settings(upload_block_size=1000, upload_part_base=part_base)
    await control.fault(kind="upload_part_fail", count=2)
    clock = FastClock()
    api = QQApi(http, tokens, sim.base_url, clock=clock)
    data = bytes(range(256)) * 14  # 3584 bytes: four parts, the last one short
    merged = await api.upload_chunked(Scene.GROUP, "g1", FileType.FILE, data, "notes.bin")
    assert merged["file_info"]
    assert clock.slept == [1.0, 1.0]  # the sim's upload_config.retry_delay, twice
    parts = [r for r in await control.requests() if r["path"].startswith("/_sim/cos/")]
    assert len(parts) == 4 and all(r["status"] == 200 for r in parts)


def test_md5_10m_covers_exactly_10002432_bytes() -> None:
    import hashlib

    data = b"a" * 10_002_432 + b"b"
    assert FileHashes.of(data).md5_10m == hashlib.md5(b"a" * 10_002_432).hexdigest()
    assert FileHashes.of(b"short").md5_10m == hashlib.md5(b"short").hexdigest()


async def test_stream_recall_interaction_and_identity(api: QQApi, control: SimControl) -> None:
    inbound = await control.c2c("u1", "stream please")
    first = await api.stream_message(
        "u1",
        {
            "input_mode": "append",
            "input_state": 1,
            "index": 0,
            "content_type": "markdown",
            "content_raw": "Hello",
            "msg_id": inbound["msg_id"],
            "msg_seq": 1,
        },
    )
    last = await api.stream_message(
        "u1",
        {
            "input_mode": "append",
            "input_state": 10,
            "index": 1,
            "content_type": "markdown",
            "content_raw": " world\n",
            "msg_id": inbound["msg_id"],
            "msg_seq": 1,
            "stream_msg_id": first["id"],
        },
    )
    assert last["id"] == first["id"]

    other = await control.c2c("u1", "say and take back")
    sent = await api.post_message(
        Scene.C2C, "u1", {"msg_type": 0, "content": "x", "msg_id": other["msg_id"], "msg_seq": 1}
    )
    await api.recall(Scene.C2C, "u1", sent["id"])

    await control.event(
        "INTERACTION_CREATE", {"id": "ia-1", "type": 11, "scene": "c2c", "chat_type": 2, "user_openid": "u1"}
    )
    await api.ack_interaction("ia-1")
    with pytest.raises(QQApiError):
        await api.ack_interaction("ia-unknown")

    assert (await api.me())["username"]
    assert (await api.gateway_bot())["url"].startswith("ws://")
    assert "allow_proactive_msg" in await api.group_bot_state("g1")
    assert "secret" not in repr(api)


async def test_guild_dm_session_and_channel_recall(api: QQApi, control: SimControl) -> None:
    await control.settings(require_session_for_guild=False)
    session = await api.create_dm("guser", "4194304")
    assert session["guild_id"] and session["channel_id"]
    sent = await api.post_message(Scene.DM, session["guild_id"], {"content": "hello from the bot"})
    assert sent["id"]
    inbound = await control.channel("c1", "4194304", "guser", "hi")
    reply = await api.post_message(Scene.CHANNEL, "c1", {"content": "c", "msg_id": inbound["msg_id"]})
    await api.recall(Scene.CHANNEL, "c1", reply["id"], hidetip=True)
    deletes = [r for r in await control.requests() if r["method"] == "DELETE"]
    assert [(r["path"], r["status"]) for r in deletes] == [(f"/channels/c1/messages/{reply['id']}", 200)]
