"""Media through the whole of Herald: the agent's send tool sends pictures and files by URL and by
path (only from `[agent] media_dirs`), a plugin tool sees the message's attachments and sends
media by bytes, and the model reads what a user attached (kind, name, size, URL)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import RunContext
from pydantic_ai.messages import ModelResponse

from herald.config import HeraldConfig
from herald.plugin import Attachment, Media, MediaKind, Plugin, ToolCall
from tests.app.herald_harness import harness
from tests.extensions.scripts import CallsTools

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
PDF = b"%PDF-1.4\n" + b"x" * 2_200_000


class FirstLine(CallsTools):
    """`call <tool> <json>` on the message's first line (the lines after it describe attachments)."""

    def first(self, text: str) -> ModelResponse:
        return super().first(text.split("\n", 1)[0])


async def test_the_agent_sends_a_file_by_path_and_a_picture_by_url(db_url: str, tmp_path: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(PDF[:5000])
    outside = tmp_path.parent / "secret.txt"

    def media_dirs(config: HeraldConfig) -> None:
        config.agent.media_dirs = [str(tmp_path)]

    async with harness(db_url, FirstLine(), configure=media_dirs) as h:
        stored = await h.call(
            "POST",
            "/_sim/attachments",
            {"data_base64": base64.b64encode(PNG).decode(), "content_type": "image/png"},
        )
        media = [{"kind": "file", "path": str(report)}, {"kind": "image", "url": stored["url"]}]
        args = json.dumps({"text": "two things", "media": media})
        await h.user_says("a1", f"call send_message_to_user {args}")
        delivered = await h.wait_delivered("c2c", "a1", 4)
        refused = json.dumps({"media": [{"kind": "file", "path": str(outside)}]})
        await h.user_says("a1", f"call send_message_to_user {refused}")
        (*_, reply) = await h.wait_delivered("c2c", "a1", 5)
    assert [e["msg_type"] for e in delivered] == [0, 7, 7, 0]
    assert [(e["media"]["file_type"], e["media"]["name"]) for e in delivered[1:3]] == [
        (4, "report.pdf"),
        (1, ""),
    ]
    assert delivered[3]["content"] == "got: delivered (passive)"
    assert "is outside the folders files may be sent from" in reply["content"]


async def test_a_plugin_tool_sees_the_attachments_and_sends_media_by_bytes(db_url: str) -> None:
    charts = Plugin("charts")
    seen: list[tuple[Attachment, ...]] = []

    @charts.tool
    async def draw(ctx: RunContext[ToolCall]) -> str:
        """Draw a chart of the attached data and send it."""
        seen.append(ctx.deps.attachments)
        return await ctx.deps.send(Media(MediaKind.IMAGE, data=PNG, name="chart.png"))

    data = {
        "content_type": "file",
        "filename": "data.csv",
        "size": 2_200_000,
        "url": "https://files.example/d",
    }
    async with harness(db_url, FirstLine(), plugins=[charts]) as h:
        await h.call(
            "POST", "/_sim/c2c/p1/messages", {"content": "call charts_draw {}", "attachments": [data]}
        )
        picture, reply = await h.wait_delivered("c2c", "p1", 2)
        seen_text = h.script.calls[-1]
    (attachments,) = seen
    assert attachments == (Attachment("file", "https://files.example/d", "data.csv", 2_200_000),)
    assert picture["media"] == {"file_type": 1, "size": len(PNG), "name": "chart.png", "format": "png"}
    assert reply["content"] == "got: delivered (passive)"
    assert seen_text == "call charts_draw {}\n[file: data.csv, 2.1 MB, https://files.example/d]"


async def test_the_model_reads_every_kind_of_attachment(db_url: str) -> None:
    attached: list[dict[str, Any]] = [
        {
            "content_type": "image/jpeg",
            "filename": "a.jpg",
            "size": 52_000,
            "width": 640,
            "height": 480,
            "url": "u1",
        },
        {"content_type": "video/mp4", "filename": "b.mp4", "size": 3_500_000, "url": "https://v.example/b"},
        {"content_type": "voice", "filename": "c.silk", "size": 900, "url": "https://v.example/c"},
        {"content_type": "file", "filename": "d.zip", "url": "https://v.example/d"},
    ]
    async with harness(db_url) as h:
        await h.call("POST", "/_sim/c2c/m1/messages", {"content": "看看", "attachments": attached})
        await h.wait_delivered("c2c", "m1", 1)
    assert h.script.calls[-1].split("\n") == [
        "看看",
        "[image: a.jpg, 51 KB, 640x480, https://u1]",
        "[video: b.mp4, 3.3 MB, https://v.example/b]",
        "[voice: c.silk, 900 bytes, https://v.example/c]",
        "[file: d.zip, https://v.example/d]",
    ]
