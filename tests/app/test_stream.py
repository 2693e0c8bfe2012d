"""Streamed C2C replies over the emulator: the frames a user's client gets, checked against the
platform's rules (index from 0 and consecutive, delivered text never changed, one final frame,
one msg_seq and one reply for the whole stream), plus a model failing midway, a bot the platform
does not let stream, groups, a scope that turns streaming off, and a restart mid-stream."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCalls, FunctionModel
from sqlalchemy import select, update

from herald.app import ModelChoice
from herald.config import HeraldConfig, PolicyLayer
from herald.llm.provider import openai_compatible
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem
from tests.app.herald_harness import WAIT_S, Harness, Script, harness, last_user_text, wait_for


class StreamingScript(Script):
    """Writes its answer in pieces; each piece after the first waits for the test to let it go."""

    def __init__(self, pieces: list[str], *, fail_after: int | None = None) -> None:
        super().__init__()
        self.pieces = pieces
        self.fail_after = fail_after  # raise after this many pieces
        self.gates = [asyncio.Event() for _ in pieces]
        self.model = FunctionModel(self.respond, stream_function=self.stream)

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls.append(last_user_text(messages))
        return ModelResponse(parts=[TextPart("".join(self.pieces))])

    async def stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        self.calls.append(last_user_text(messages))
        for number, piece in enumerate(self.pieces):
            if number:
                await self.gates[number].wait()
            if self.fail_after is not None and number == self.fail_after:
                raise RuntimeError("the provider hung up")
            yield piece

    def release(self, number: int) -> None:
        self.gates[number].set()


async def frames(h: Harness, user: str) -> list[dict[str, Any]]:
    return [e for e in await h.transcript("c2c", user) if e["direction"] == "out"]


async def wait_frames(h: Harness, user: str, count: int) -> list[dict[str, Any]]:
    return await wait_for(
        lambda: frames(h, user), lambda got: len([f for f in got if f["code"] == 0]) >= count
    )


def check_rules(sent: list[dict[str, Any]]) -> None:
    """What the platform requires of one stream, as a user's client would see it."""
    assert sent and all("stream" in f and f["code"] == 0 for f in sent), sent
    assert [f["stream"]["index"] for f in sent] == list(range(len(sent)))
    texts = [f["stream"]["text"] for f in sent]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
    assert [f["stream"]["done"] for f in sent] == [False] * (len(sent) - 1) + [True]
    assert len({f["msg_seq"] for f in sent}) == 1 and len({f["msg_id"] for f in sent}) == 1
    assert len({f["id"] for f in sent}) == 1
    assert sent[0]["kind"] == "passive" and all(f["kind"] == "stream chunk" for f in sent[1:])


async def test_a_c2c_reply_streams_as_the_model_writes_it(db_url: str) -> None:
    script = StreamingScript(["Hel", "lo wor", "ld"])
    async with harness(db_url, script) as h:
        msg_id = await h.user_says("u1", "hi")
        first = await wait_frames(h, "u1", 1)
        # The first frame is out while the model is still writing.
        assert (first[0]["stream"]["text"], first[0]["msg_id"]) == ("Hel", msg_id)
        await h.advance(1)
        script.release(1)
        await wait_frames(h, "u1", 2)
        script.release(2)
        await wait_for(lambda: frames(h, "u1"), lambda got: any(f["stream"].get("done") for f in got))
        await h.idle()
        sent = await frames(h, "u1")
        check_rules(sent)
        assert [f["stream"]["text"] for f in sent] == ["Hel", "Hello wor", "Hello world"]
        view = await h.call("GET", f"/_sim/streams/{sent[0]['id']}")
        assert (view["state"], view["content"], view["frames"]) == ("done", "Hello world", 3)
        assert script.calls == ["hi"]


async def test_a_model_failing_midway_ends_the_stream_honestly(db_url: str) -> None:
    script = StreamingScript(["Part one", " and two"], fail_after=1)
    async with harness(db_url, script) as h:
        await h.user_says("u1", "hi")
        await wait_frames(h, "u1", 1)
        script.release(1)
        await wait_for(lambda: frames(h, "u1"), lambda got: any(f["stream"].get("done") for f in got))
        await h.idle()
        sent = await frames(h, "u1")
        check_rules(sent)
        assert sent[-1]["stream"]["text"] == "Part one\n\n（回复中断：模型出错）"
        # The stream's ending is the user's notice: no separate error message.
        assert all("stream" in f for f in await h.delivered("c2c", "u1"))


async def test_a_refused_stream_becomes_one_plain_reply(db_url: str) -> None:
    script = StreamingScript(["Hello", " there"])
    async with harness(db_url, script, stream_refused_code=11253) as h:
        await h.user_says("u1", "hi")
        await h.wait_for_request_code(11253)
        script.release(1)
        delivered = await h.wait_delivered("c2c", "u1", 1)
        await h.idle()
        delivered = await h.delivered("c2c", "u1")
        assert [(d["content"], "stream" in d) for d in delivered] == [("Hello there", False)]
        assert len([r for r in await h.requests() if r["path"].endswith("/stream_messages")]) == 1


async def test_groups_get_the_finished_text(db_url: str) -> None:
    script = StreamingScript(["Hello", " group"])
    script.release(1)
    async with harness(db_url, script) as h:
        await h.member_says("g1", "m1", "hi")
        delivered = await h.wait_delivered("group", "g1", 1)
        assert [(d["content"], "stream" in d) for d in delivered] == [("Hello group", False)]
        assert not [r for r in await h.requests() if "stream_messages" in r["path"]]


async def test_a_scope_can_turn_streaming_off(db_url: str) -> None:
    script = StreamingScript(["Hello", " you"])
    script.release(1)

    def no_streams(config: HeraldConfig) -> None:
        config.policy.users["u2"] = PolicyLayer(stream=False)

    async with harness(db_url, script, configure=no_streams) as h:
        await h.user_says("u2", "hi")
        delivered = await h.wait_delivered("c2c", "u2", 1)
        assert [(d["content"], "stream" in d) for d in delivered] == [("Hello you", False)]
        await h.user_says("u1", "hi")
        await wait_for(lambda: frames(h, "u1"), lambda got: any(f["stream"].get("done") for f in got))
        check_rules(await frames(h, "u1"))


async def test_a_restart_mid_stream_ends_it_without_a_second_reply(db_url: str) -> None:
    script = StreamingScript(["First half", " second half"])
    async with harness(db_url, script) as h:
        await h.user_says("u1", "hi")
        await wait_frames(h, "u1", 1)
        async with asyncio.timeout(WAIT_S):
            await h.stop()  # the model is still writing: its turn is left pending
        script.release(1)
        await h.start()
        await wait_for(lambda: frames(h, "u1"), lambda got: any(f["stream"].get("done") for f in got))
        await h.idle()
        sent = await frames(h, "u1")
        check_rules(sent)
        assert sent[-1]["stream"]["text"] == "First half\n\n（回复中断：服务重启）"
        # The resumed turn found its reply shown: the model was not asked again, nothing else sent.
        assert script.calls == ["hi"]
        assert all("stream" in f for f in await h.delivered("c2c", "u1"))


async def test_a_frame_that_arrived_but_was_not_recorded_is_continued_after_a_restart(db_url: str) -> None:
    script = StreamingScript(["First half", " second half", " more"])
    async with harness(db_url, script) as h:
        await h.user_says("u1", "hi")
        await wait_frames(h, "u1", 1)
        database = Database(db_url)
        try:
            async with database.session() as session:
                after_first = await session.scalar(
                    select(OutboxItem.stream).where(OutboxItem.state == "streaming")
                )
            await h.advance(1)
            script.release(1)
            await wait_frames(h, "u1", 2)
            async with asyncio.timeout(WAIT_S):
                await h.stop()
            # A crash after the platform took the second frame and before Herald stored its
            # answer: the row keeps the first frame's handle, and the second frame's text (stored
            # before it was sent).
            async with database.session() as session:
                await session.execute(
                    update(OutboxItem).where(OutboxItem.state == "streaming").values(stream=after_first)
                )
                await session.commit()
        finally:
            await database.dispose()
        script.release(2)
        await h.start()
        await wait_for(lambda: frames(h, "u1"), lambda got: any(f["stream"].get("done") for f in got))
        await h.idle()
        accepted = [f for f in await frames(h, "u1") if f["code"] == 0]
        check_rules(accepted)
        assert [f["stream"]["text"] for f in accepted] == [
            "First half",
            "First half second half",
            "First half second half\n\n（回复中断：服务重启）",
        ]
        # One refused try at the recorded index, then the next one: no rollback, no second reply.
        assert len([f for f in await frames(h, "u1") if f["code"] != 0]) == 1
        assert script.calls == ["hi"]


class PlainOnlyServer:
    """An OpenAI-compatible server that refuses streamed requests (as some proxies and local
    servers do) and answers plain ones with an echo."""

    def __init__(self) -> None:
        self.streamed: list[bool] = []  # per request: did it ask for a stream

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.streamed.append(bool(body.get("stream")))
        if body.get("stream"):
            return web.json_response({"error": {"message": "streaming is not supported"}}, status=400)
        text = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        return web.json_response(
            {
                "id": "chatcmpl-plain",
                "object": "chat.completion",
                "created": 0,
                "model": "plain",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"echo: {text}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )


async def test_a_model_server_that_refuses_streamed_requests_is_asked_plainly(db_url: str) -> None:
    server = PlainOnlyServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    model = openai_compatible(f"http://{host}:{port}/v1", "test", "plain")

    class PlainModel(Script):
        def choice(self) -> ModelChoice:
            return ModelChoice(model)

    try:
        async with harness(db_url, PlainModel()) as h:
            await h.user_says("plain-user", "你好")
            await h.wait_delivered("c2c", "plain-user", 1)
            await h.user_says("plain-user", "again")
            got = await h.wait_delivered("c2c", "plain-user", 2)
            assert [entry["content"] for entry in got] == ["echo: 你好", "echo: again"]
            assert not [entry for entry in await frames(h, "plain-user") if "stream" in entry]
            assert await h.errors() == []
    finally:
        await runner.cleanup()
    # The first turn tried a stream once, then asked plainly; later turns ask plainly at once.
    assert server.streamed == [True, False, False]
