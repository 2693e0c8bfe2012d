"""Herald (the whole app) connected to a running `herald sim` over loopback sockets, with a
scripted pydantic-ai `FunctionModel`. Time is virtual on both sides: `advance()` moves the sim's
clock and Herald's `VirtualClock` together."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import SecretStr
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from herald.app import Herald, ModelChoice
from herald.config import (
    DeliveryConfig,
    HeraldConfig,
    OneBotConfig,
    QQConfig,
    QQDeliveryConfig,
    StorageConfig,
)
from herald.core.clock import VirtualClock
from herald.onebot import OneBotPlatform
from herald.plugin import Plugin
from herald.sim.app import RunningSim
from herald.sim.onebot import OneBotSimSettings, RunningOneBotSim, serve_onebot
from tests.sim_control import running_sim

WAIT_S = 60.0  # a safety limit so a broken stack fails instead of hanging; never a timing assertion


def qq_config(sim: RunningSim, **rules: Any) -> QQConfig:
    s = sim.state.settings
    return QQConfig(
        app_id=s.app_id,
        secret=SecretStr(s.secret),
        api_base=sim.base_url,
        token_url=sim.token_url,
        delivery=QQDeliveryConfig(**rules),
    )


def herald_config(
    sim: RunningSim, db_url: str, delivery: dict[str, Any] | None = None, rules: dict[str, Any] | None = None
) -> HeraldConfig:
    """`delivery`: the outbox's settings; `rules`: QQ's (`[qq.delivery]`)."""
    return HeraldConfig(
        qq=qq_config(sim, **(rules or {})),
        storage=StorageConfig(url=db_url),
        delivery=DeliveryConfig(**(delivery or {})),
    )


def last_user_text(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


def tool_results(message: ModelMessage) -> list[str]:
    if not isinstance(message, ModelRequest):
        return []
    return [str(part.content) for part in message.parts if isinstance(part, ToolReturnPart | RetryPromptPart)]


def sends(*texts: str) -> ModelResponse:
    return ModelResponse(parts=[ToolCallPart("send_message_to_user", {"text": text}) for text in texts])


class Script:
    """A scripted model: decides from the turn's user text; records every call and tool result."""

    def __init__(self) -> None:
        self.calls: list[str] = []  # the user text of the turn, per model request
        self.results: list[str] = []  # every tool result the model was shown
        self.instructions: list[str | None] = []  # the system prompt (with the turn's facts), per request
        self.offered: list[list[str]] = []  # the names of the tools offered, per request
        self.model = FunctionModel(self.respond)

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        text = last_user_text(messages)
        self.calls.append(text)
        self.instructions.append(info.instructions)
        self.offered.append([tool.name for tool in info.function_tools])
        results = tool_results(messages[-1])
        self.results.extend(results)
        if results:
            return self.after_tools(text, results)
        return self.first(text)

    def first(self, text: str) -> ModelResponse:
        if "连续发送3条" in text:
            return sends("测试消息 1", "测试消息 2", "测试消息 3")
        if match := re.search(r"send (\d+) messages", text):
            tag = text.split()[-1]
            return sends(*(f"{tag} #{i}" for i in range(1, int(match.group(1)) + 1)))
        if "心跳任务" in text:
            return ModelResponse(
                parts=[
                    ToolCallPart(
                        "future_task",
                        {
                            "action": "create",
                            "name": "心跳",
                            "cron_expression": "* * * * *",
                            "note": "发送心跳信号",
                        },
                    )
                ]
            )
        if text.startswith("[Scheduled task"):
            return sends("💓 心跳")
        return ModelResponse(parts=[TextPart(f"echo: {text}")])

    def after_tools(self, text: str, results: list[str]) -> ModelResponse:
        if text.startswith("[Scheduled task"):
            return ModelResponse(parts=[TextPart("")])  # the heartbeat was the message; nothing more
        if "心跳任务" in text:
            return ModelResponse(parts=[TextPart("已启用心跳任务，每分钟一次。")])
        return ModelResponse(parts=[TextPart(f"done: {len(results)} sent")])

    def choice(self) -> ModelChoice:
        return ModelChoice(self.model)


class Harness:
    def __init__(
        self,
        sim: RunningSim,
        db_url: str,
        script: Script,
        plugins: list[Plugin] | None = None,
        delivery: dict[str, Any] | None = None,
        rules: dict[str, Any] | None = None,
    ) -> None:
        self.sim = sim
        self.db_url = db_url
        self.script = script
        self.plugins = plugins
        self.config = herald_config(sim, db_url, delivery, rules)
        self.clock = VirtualClock(datetime.fromtimestamp(sim.state.clock.time(), UTC))
        self.http = aiohttp.ClientSession()
        self.herald: Herald | None = None
        # A OneBot account beside the QQ bot (`harness(..., onebot=True)`), in the same process.
        self.onebot: RunningOneBotSim | None = None

    async def start(self) -> Herald:
        self.herald = Herald(
            self.config, model=self.script.choice(), clock=self.clock, rate_limits=False, plugins=self.plugins
        )
        await self.herald.start()
        if self.onebot is not None:
            assert self.herald.platforms is not None and self.config.onebot is not None
            platform = self.herald.platforms.members[self.config.onebot.name]
            assert isinstance(platform, OneBotPlatform)
            self.onebot.connect_to(platform.connection.url)  # its port is new on every start
        async with asyncio.timeout(WAIT_S):
            await self.herald.wait_ready()
        return self.herald

    async def stop(self) -> None:
        if self.herald is not None:
            await self.herald.stop()
            self.herald = None

    async def restart(self) -> Herald:
        await self.stop()
        return await self.start()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.sim.base_url + path, json=body) as resp:
            data = await resp.json(content_type=None)
            assert resp.status == 200, (path, resp.status, data)
            return data

    async def user_says(self, openid: str, content: str) -> str:
        injected = await self.call("POST", f"/_sim/c2c/{openid}/messages", {"content": content})
        return str(injected["msg_id"])

    async def member_says(self, group: str, member: str, content: str, role: str | None = None) -> str:
        """`role`: the member's `member_role` (owner / admin / member), sent only when given."""
        body: dict[str, Any] = {"member_openid": member, "content": content, "at_bot": True}
        if role is not None:
            body["member_role"] = role
        injected = await self.call("POST", f"/_sim/groups/{group}/messages", body)
        return str(injected["msg_id"])

    async def transcript(self, scene: str, target: str) -> list[dict[str, Any]]:
        data = await self.call("GET", f"/_sim/transcript?scene={scene}&target={target}")
        return list(data["entries"])

    async def delivered(self, scene: str, target: str) -> list[dict[str, Any]]:
        return [e for e in await self.transcript(scene, target) if e.get("status") == 200]

    async def requests(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/_sim/requests"))["requests"])

    async def errors(self) -> list[dict[str, Any]]:
        """Requests the sim answered with an error."""
        return [r for r in await self.requests() if r["status"] >= 400 or r["code"]]

    async def advance_until_delivered(self, scene: str, target: str, count: int, step_s: float = 5.0) -> None:
        """Move the clocks on in steps until `count` messages arrived: a retry or poll comes due on
        Herald's clock, and a step taken before Herald scheduled it must not leave it waiting."""
        async with asyncio.timeout(WAIT_S):
            while len(await self.delivered(scene, target)) < count:
                await self.advance(step_s)
                await asyncio.sleep(0.02)

    async def wait_for_request_code(self, code: int) -> list[dict[str, Any]]:
        """Until the emulator has answered a request with platform error `code`."""
        return await wait_for(self.requests, lambda got: any(r["code"] == code for r in got))

    async def wait_delivered(self, scene: str, target: str, count: int) -> list[dict[str, Any]]:
        return await wait_for(lambda: self.delivered(scene, target), lambda got: len(got) >= count)

    # --- the OneBot account ---------------------------------------------------------------------

    async def onebot_call(self, method: str, path: str, body: Any = None) -> Any:
        assert self.onebot is not None
        async with self.http.request(method, self.onebot.base_url + path, json=body) as resp:
            data = await resp.json(content_type=None)
            assert resp.status == 200, (path, resp.status, data)
            return data

    async def friend_says(self, user_id: str, text: str) -> int:
        """A private message to the OneBot account; its message_id."""
        injected = await self.onebot_call(
            "POST", f"/_sim/onebot/private/{user_id}/messages", {"message": text}
        )
        return int(injected["message_id"])

    async def onebot_sent(self, chat: str, chat_id: str) -> list[dict[str, Any]]:
        """What the OneBot account was asked to send there and did (failed sends left out)."""
        data = await self.onebot_call("GET", f"/_sim/onebot/transcript?type={chat}&id={chat_id}")
        return [e for e in data["entries"] if e["status"] == "ok"]

    async def wait_onebot_sent(self, chat: str, chat_id: str, count: int) -> list[dict[str, Any]]:
        return await wait_for(lambda: self.onebot_sent(chat, chat_id), lambda got: len(got) >= count)

    async def advance(self, seconds: float) -> None:
        """Move both clocks (the sim first), then let Herald's scheduler finish what came due."""
        await self.call("POST", "/_sim/clock/advance", {"seconds": seconds})
        await self.clock.advance(seconds, settle=0.005)
        assert self.herald is not None and self.herald.scheduler is not None
        async with asyncio.timeout(WAIT_S):
            await self.herald.scheduler.wait_idle()

    async def idle(self) -> None:
        assert self.herald is not None and self.herald.dispatcher is not None
        async with asyncio.timeout(WAIT_S):
            await self.herald.dispatcher.lanes.wait_idle()

    async def close(self) -> None:
        await self.stop()
        await self.http.close()


async def wait_for(
    probe: Callable[[], Awaitable[list[dict[str, Any]]]], done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    async with asyncio.timeout(WAIT_S):
        while True:
            got = await probe()
            if done(got):
                return got
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def harness(
    db_url: str,
    script: Script | None = None,
    delivery: dict[str, Any] | None = None,
    *,
    rules: dict[str, Any] | None = None,
    configure: Callable[[HeraldConfig], None] | None = None,
    plugins: list[Plugin] | None = None,
    onebot: bool = False,
    **sim_settings: Any,
) -> AsyncIterator[Harness]:
    """`configure` edits the config before Herald starts; `plugins` load beside the installed ones;
    `onebot`: a OneBot account (its own emulator) runs beside the QQ bot, in the same Herald."""
    async with running_sim(**sim_settings) as sim, contextlib.AsyncExitStack() as stack:
        h = Harness(sim, db_url, script or Script(), plugins, delivery, rules)
        if onebot:
            h.onebot = await stack.enter_async_context(serve_onebot(OneBotSimSettings()))
            h.config.onebot = OneBotConfig(port=0, access_token=SecretStr(h.onebot.settings.access_token))
        if configure is not None:
            configure(h.config)
        await h.start()
        try:
            yield h
        finally:
            await h.close()
