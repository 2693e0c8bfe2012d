"""A scripted OpenAI-compatible chat model over real HTTP, for soaks of `herald run`.

`POST /v1/chat/completions` (plain; streamed as server-sent events with `"stream": true` when
started with `--streams`, else such a request is refused with 400) decides from the
conversation's last user message:
`send N [TAG]` is answered with N `send_message_to_user` tool calls whose texts are `TAG #1` …
`TAG #N`; once the tool results are in (a `tool` message after that user message), with the
final text `TAG done`. Anything else gets `echo: <text>`. The answer depends only on the
request, so a turn resumed after a crash is answered exactly as before.

Every request is appended to a record file as `<TAG>\\t<first|after>`, so a soak can tell a
message Herald never received from one it received but did not answer.

    python bench/scripted_llm.py --port 8091 --record /tmp/llm.log
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

from aiohttp import web

SEND = re.compile(r"send (\d+) \[([^\]\s]+)\]")
TOOL = "send_message_to_user"  # herald.agent.tools.SEND_MESSAGE


def _text(content: Any) -> str:
    """A message's content as text (OpenAI allows a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def decide(messages: list[dict[str, Any]]) -> tuple[str, str, dict[str, Any]]:
    """(tag or "", phase, the assistant message) for a chat request's messages."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    text = _text(messages[last_user].get("content")) if last_user >= 0 else ""
    match = SEND.search(text)
    if match is None:
        return "", "first", {"role": "assistant", "content": f"echo: {text.strip()}"}
    count, tag = int(match.group(1)), match.group(2)
    if any(m.get("role") == "tool" for m in messages[last_user + 1 :]):
        return tag, "after", {"role": "assistant", "content": f"{tag} done"}
    calls = [
        {
            "id": f"call_{tag}_{i}",
            "type": "function",
            "function": {"name": TOOL, "arguments": json.dumps({"text": f"{tag} #{i}"})},
        }
        for i in range(1, count + 1)
    ]
    return tag, "first", {"role": "assistant", "content": None, "tool_calls": calls}


def app(record: Path, *, streams: bool = False) -> web.Application:
    ids = itertools.count(1)
    log = record.open("a", buffering=1, encoding="utf-8")

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("stream") and not streams:
            # As some OpenAI-compatible servers do (Herald then asks plainly).
            return web.json_response(
                {"error": {"message": "the scripted model answers streamed requests only with --streams"}},
                status=400,
            )
        tag, phase, message = decide(body.get("messages", []))
        if tag:
            log.write(f"{tag}\t{phase}\n")
        head = {
            "id": f"chatcmpl-scripted-{next(ids)}",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
        }
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        if body.get("stream"):
            return await streamed(request, head, message, finish, usage)
        return web.json_response(
            {
                **head,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            }
        )

    async def streamed(
        request: web.Request, head: dict[str, Any], message: dict[str, Any], finish: str, usage: Any
    ) -> web.StreamResponse:
        """The same answer as chunks: the text in two pieces, or each tool call whole."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def chunk(delta: dict[str, Any], reason: str | None = None, **extra: Any) -> None:
            data = {
                **head,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
                **extra,
            }
            await response.write(f"data: {json.dumps(data)}\n\n".encode())

        text = message.get("content") or ""
        await chunk({"role": "assistant", "content": text[: len(text) // 2]})
        if text[len(text) // 2 :]:
            await chunk({"content": text[len(text) // 2 :]})
        for index, call in enumerate(message.get("tool_calls") or []):
            await chunk({"tool_calls": [{"index": index, **call}]})
        await chunk({}, finish)
        last = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
        await response.write(f"data: {json.dumps(last)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    application = web.Application()
    application.router.add_post("/v1/chat/completions", completions)
    application.router.add_get("/v1/models", models)
    return application


def run_llm(port: int, record: str, streams: bool = False) -> None:
    """Target of a `multiprocessing.Process`: the scripted model on `port` until terminated."""

    async def forever() -> None:
        runner = web.AppRunner(app(Path(record), streams=streams), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(forever())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--record", default="/dev/null")
    parser.add_argument("--streams", action="store_true", help="answer streamed requests too (else 400)")
    args = parser.parse_args()
    run_llm(args.port, args.record, args.streams)


if __name__ == "__main__":
    main()
