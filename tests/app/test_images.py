"""Images users send reach a model that sees images, fetched safely: the emulator serves a
message's picture and the model gets its bytes; a URL off the platform's media hosts, an image
declared too large, a redirect and a body larger than allowed are never given to the model (and
the first two are never fetched at all); the model is told which image it is not shown, and why."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from pydantic_ai.messages import BinaryContent, ModelMessage, ModelRequest, ModelResponse, UserPromptPart
from pydantic_ai.models.function import AgentInfo

from herald.app import ModelChoice
from herald.config import HeraldConfig
from tests.app.herald_harness import Script, harness

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Sees(Script):
    """A scripted model that sees images: records what each request's user message carried."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[Any]] = []

    async def respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        first = messages[-1]
        assert isinstance(first, ModelRequest)
        for part in first.parts:
            if isinstance(part, UserPromptPart):
                self.seen.append(list(part.content) if not isinstance(part.content, str) else [part.content])
        return await super().respond(messages, info)

    def choice(self) -> ModelChoice:
        return ModelChoice(self.model, vision=True)


@asynccontextmanager
async def other_host() -> AsyncIterator[tuple[str, list[str]]]:
    """A web server that is not the platform's media host; it counts what is asked of it."""
    asked: list[str] = []

    async def serve(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        if request.path == "/big.png":  # more than it admits to
            return web.Response(body=PNG * 4000, content_type="image/png")
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://localhost:{runner.addresses[0][1]}", asked
    finally:
        await runner.cleanup()


def media_hosts(config: HeraldConfig) -> None:
    config.agent.image_hosts = ["127.0.0.1"]  # the emulator's media host
    config.agent.image_max_bytes = 50_000


async def test_a_users_picture_reaches_a_model_that_sees_images(db_url: str) -> None:
    script = Sees()
    async with harness(db_url, script, configure=media_hosts) as h:
        stored = await h.call(
            "POST",
            "/_sim/attachments",
            {"data_base64": base64.b64encode(PNG).decode(), "content_type": "image/png"},
        )
        picture = {"content_type": "image/png", "filename": "dot.png", "url": stored["url"], "size": len(PNG)}
        await h.call("POST", "/_sim/c2c/p1/messages", {"content": "这是什么？", "attachments": [picture]})
        await h.wait_delivered("c2c", "p1", 1)
    text, image = script.seen[0]
    assert text == f"这是什么？\n[image: dot.png, {len(PNG)} bytes, {stored['url']}]"
    assert isinstance(image, BinaryContent) and image.data == PNG and image.media_type == "image/png"


async def test_images_that_are_not_safe_to_fetch_are_not_shown(db_url: str) -> None:
    script = Sees()
    async with other_host() as (elsewhere, asked), harness(db_url, script, configure=media_hosts) as h:
        redirect = await h.call(
            "POST",
            "/_sim/attachments",
            {"data_base64": "", "content_type": "image/png", "redirect": f"{elsewhere}/trap.png"},
        )
        media_host = elsewhere.replace("localhost", "127.0.0.1")  # the same server, named as a media host
        big = f"{media_host}/big.png"  # lies about its size
        pictures = [
            {"content_type": "image/png", "filename": "off-platform.png", "url": f"{elsewhere}/a.png"},
            {
                "content_type": "image/png",
                "filename": "huge.png",
                "url": f"{media_host}/b.png",
                "size": 10**9,
            },
            {"content_type": "image/png", "filename": "moved.png", "url": redirect["url"]},
            {"content_type": "image/png", "filename": "big.png", "url": big, "size": 100},
        ]
        await h.call("POST", "/_sim/c2c/p2/messages", {"content": "看图", "attachments": pictures})
        await h.wait_delivered("c2c", "p2", 1)
    shown = script.seen[0][1:]
    assert not any(isinstance(item, BinaryContent) for item in shown)
    assert shown[0].startswith(
        "[image off-platform.png not shown: localhost is not one of the platform's media hosts"
    )
    assert shown[1].startswith("[image huge.png not shown: 1000000000 bytes, over the 50000 allowed")
    assert shown[2].startswith("[image moved.png not shown: the host answered 302 to http://localhost:")
    assert shown[3] == "[image big.png not shown: over the 50000 bytes allowed ([agent] image_max_bytes)]"
    assert asked == ["/big.png"]  # the off-platform, oversized and redirected-to URLs were never asked for
