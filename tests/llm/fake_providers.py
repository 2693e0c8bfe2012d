"""Local fake servers of each provider's wire protocol (one Starlette app, one route per protocol).

Each answers like its provider: first a call of `send_message_to_user` with the text
`via <kind>`, then (once the request carries the tool's result) the text `done via <kind>`, with
token usage 11 in / 7 out. The OpenAI-compatible chat route also answers a streamed request
(`"stream": true`) as OpenAI does: server-sent chunks, the usage in the last one, then `[DONE]`.
`/broken/...` answers 500 and `/slow/...` never answers in time, for the fallback tests. Every
request body is kept in `requests`, by kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOOL = "send_message_to_user"
requests: dict[str, list[dict[str, Any]]] = {}


def _text(kind: str) -> str:
    return f"done via {kind}"


def _args(kind: str) -> dict[str, str]:
    return {"text": f"via {kind}"}


def _has_result(kind: str, body: dict[str, Any]) -> bool:
    dumped = json.dumps(body)
    marker = {
        "openai": '"role": "tool"',
        "groq": '"role": "tool"',
        "mistral": '"role": "tool"',
        "openai-responses": '"function_call_output"',
        "anthropic": '"tool_result"',
        "google": '"functionResponse"',
        "bedrock": '"toolResult"',
    }[kind]
    return marker in dumped


def openai_chat(kind: str, body: dict[str, Any], done: bool) -> dict[str, Any]:
    message: dict[str, Any] = (
        {"role": "assistant", "content": _text(kind)}
        if done
        else {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": TOOL, "arguments": json.dumps(_args(kind))},
                }
            ],
        }
    )
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": message, "finish_reason": "stop" if done else "tool_calls"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def openai_responses(kind: str, body: dict[str, Any], done: bool) -> dict[str, Any]:
    item: dict[str, Any] = (
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": _text(kind), "annotations": []}],
        }
        if done
        else {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": TOOL,
            "arguments": json.dumps(_args(kind)),
            "status": "completed",
        }
    )
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": body.get("model", "fake"),
        "status": "completed",
        "output": [item],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 11,
            "output_tokens": 7,
            "total_tokens": 18,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def anthropic(kind: str, body: dict[str, Any], done: bool) -> dict[str, Any]:
    content = (
        [{"type": "text", "text": _text(kind)}]
        if done
        else [{"type": "tool_use", "id": "toolu_1", "name": TOOL, "input": _args(kind)}]
    )
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "fake"),
        "content": content,
        "stop_reason": "end_turn" if done else "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 7},
    }


def google(kind: str, body: dict[str, Any], done: bool) -> dict[str, Any]:
    part = {"text": _text(kind)} if done else {"functionCall": {"name": TOOL, "args": _args(kind)}}
    return {
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18},
        "modelVersion": "fake",
    }


def bedrock(kind: str, body: dict[str, Any], done: bool) -> dict[str, Any]:
    content = (
        [{"text": _text(kind)}]
        if done
        else [{"toolUse": {"toolUseId": "tooluse_1", "name": TOOL, "input": _args(kind)}}]
    )
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "end_turn" if done else "tool_use",
        "usage": {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18},
        "metrics": {"latencyMs": 1},
    }


def openai_chunks(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat completion as OpenAI streams it: the text in pieces, each tool call's name and then
    its arguments in two pieces, the finish reason, the usage."""
    head = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    choice = completion["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return head | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    if message.get("reasoning_content"):  # DeepSeek's and Moonshot's thinking
        chunks.append(chunk({"reasoning_content": message["reasoning_content"]}))
    text = message.get("content") or ""
    chunks += [chunk({"content": text[i : i + 4]}) for i in range(0, len(text), 4)]
    for index, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        first = {"name": call["function"]["name"], "arguments": arguments[:half]}
        chunks.append(
            chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function", "function": first}]})
        )
        chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]}))
    chunks.append(chunk({}, choice["finish_reason"]))
    chunks.append(head | {"choices": [], "usage": completion["usage"]})
    return chunks


def server_sent(chunks: list[dict[str, Any]]) -> StreamingResponse:
    async def events() -> Any:
        for data in chunks:
            yield f"data: {json.dumps(data)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _route(kind: str, build: Any) -> Any:
    async def handle(request: Request) -> Response:
        body = await request.json()
        requests.setdefault(kind, []).append(
            {"path": request.url.path, "headers": dict(request.headers), **body}
        )
        answer = build(kind, body, _has_result(kind, body))
        if body.get("stream") and build is openai_chat and kind == "openai":
            return server_sent(openai_chunks(answer))
        return JSONResponse(answer)

    return handle


async def broken(request: Request) -> Response:
    return JSONResponse(
        {"error": {"message": "the fake provider is down", "type": "server_error"}}, status_code=500
    )


async def slow(request: Request) -> Response:
    await asyncio.sleep(3)  # past the 1 s the test allows; short, as the server waits for it to stop
    return JSONResponse({})


app = Starlette(
    routes=[
        Route("/v1/chat/completions", _route("openai", openai_chat), methods=["POST"]),
        Route("/v1/responses", _route("openai-responses", openai_responses), methods=["POST"]),
        Route("/v1/messages", _route("anthropic", anthropic), methods=["POST"]),
        Route("/v1beta/models/{model}:generateContent", _route("google", google), methods=["POST"]),
        Route("/openai/v1/chat/completions", _route("groq", openai_chat), methods=["POST"]),
        Route("/mistral/v1/chat/completions", _route("mistral", openai_chat), methods=["POST"]),
        Route("/model/{model}/converse", _route("bedrock", bedrock), methods=["POST"]),
        Route("/broken/v1/chat/completions", broken, methods=["POST"]),
        Route("/slow/v1/chat/completions", slow, methods=["POST"]),
    ]
)


@contextlib.asynccontextmanager
async def fake_server() -> AsyncIterator[str]:
    """`app` on a free loopback port, until the block ends; its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(60):
            while not server.started:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
