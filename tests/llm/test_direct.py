"""Herald's direct client for OpenAI-compatible servers (`[llm] client = "direct"`) against the
openai SDK's (`"sdk"`), over the wire: a local server answers both the same way, and both must
come back with the same response, usage and, on failure, the same error (type and text, which is
what a turn's failure and the model's health show), after the same number of tries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
from aiohttp import web
from pydantic import SecretStr
from pydantic_ai.direct import model_request, model_request_stream
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolReturnPart, UserPromptPart
from pydantic_ai.models import Model, ModelRequestParameters

from herald.agent.tools import TOOL_DEFINITIONS
from herald.config import ModelConfig
from herald.llm.direct import DirectChatModel
from herald.llm.provider import ModelHandle, remote_model
from tests.llm.fake_providers import openai_chat, openai_chunks

Client = Literal["direct", "sdk"]
CLIENTS: list[Client] = ["direct", "sdk"]
PARAMETERS = ModelRequestParameters(function_tools=list(TOOL_DEFINITIONS), allow_text_output=True)


class Fake:
    """`/<scenario>/v1/chat/completions`: what the server does, and every request it saw."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    def tries(self, scenario: str) -> int:
        return sum(1 for r in self.requests if r["scenario"] == scenario)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        scenario = request.match_info["scenario"]
        body = await request.json()
        self.requests.append({"scenario": scenario, **body})
        self.headers.append({name.lower(): value for name, value in request.headers.items()})
        done = '"role": "tool"' in json.dumps(body)
        if scenario == "ok" or (scenario == "flaky" and self.tries("flaky") > 2):
            answer = openai_chat("openai", body, done)
            if not body.get("stream"):
                return web.json_response(answer)
            return await self.sse(request, openai_chunks(answer))
        if scenario == "lenient":
            # What some servers send: no `created`, a null finish reason, an unknown field.
            answer = openai_chat("openai", body, True)
            answer["created"] = None
            answer["choices"][0]["finish_reason"] = None
            answer["choices"][0]["message"]["reasoning_content"] = "thought about it"
            if not body.get("stream"):
                return web.json_response(answer)
            return await self.sse(request, openai_chunks(answer))
        if scenario.startswith("status-"):
            status = int(scenario.removeprefix("status-"))
            error = {"message": f"refused with {status}", "type": "invalid_request_error", "code": "nope"}
            response = web.json_response({"error": error}, status=status, headers={"retry-after-ms": "10"})
            response.enable_compression()  # as proxies in front of model servers do
            return response
        if scenario == "flaky":
            return web.json_response(
                {"error": {"message": "busy"}}, status=503, headers={"retry-after-ms": "10"}
            )
        if scenario == "not-json":
            return web.Response(text="<html>a proxy's page</html>", content_type="text/html")
        if scenario == "long-chunk":
            # One tool call whose arguments come in one chunk of 300 kB (a long text to send).
            answer = openai_chat("openai", body, False)
            answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = json.dumps(
                {"text": "长" * 100_000}
            )
            chunk = openai_chunks(answer)
            return await self.sse(request, chunk)
        if scenario == "stream-error":
            error = {"message": "overloaded midway", "type": "server_error", "code": "overloaded"}
            first = openai_chunks(openai_chat("openai", body, True))[:2]
            return await self.sse(request, [*first, {"error": error}])
        raise web.HTTPNotFound()

    async def sse(self, request: web.Request, chunks: list[dict[str, Any]]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@pytest.fixture
async def fake() -> AsyncIterator[tuple[Fake, str]]:
    server = Fake()
    app = web.Application()
    app.router.add_post("/{scenario}/v1/chat/completions", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def model(client: Client, base_url: str) -> Model:
    config = ModelConfig(
        provider="openai", base_url=base_url, api_key=SecretStr("sk-test"), model="fake", client=client
    )
    return remote_model(config)


def prompt(*, with_result: bool = False) -> list[ModelMessage]:
    messages: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart("hello")])]
    if with_result:
        messages += [
            ModelResponse(parts=[]),
            ModelRequest(parts=[ToolReturnPart("send_message_to_user", "delivered", tool_call_id="call_1")]),
        ]
    return messages


async def ask(m: Model, messages: list[ModelMessage], *, stream: bool) -> ModelResponse:
    try:
        if not stream:
            return await model_request(m, messages, model_request_parameters=PARAMETERS)
        async with model_request_stream(m, messages, model_request_parameters=PARAMETERS) as streamed:
            async for _ in streamed:
                pass
            return streamed.get()
    finally:
        await ModelHandle(m).close()


def comparable(response: ModelResponse) -> dict[str, Any]:
    """What a turn keeps of a response (not the local receive time)."""
    return {
        "parts": [
            (type(p).__name__, getattr(p, "content", None), getattr(p, "args", None)) for p in response.parts
        ],
        "calls": [(c.tool_name, c.args_as_dict(), c.tool_call_id) for c in response.tool_calls],
        "usage": (response.usage.input_tokens, response.usage.output_tokens),
        "model_name": response.model_name,
        "finish_reason": response.finish_reason,
        "provider_response_id": response.provider_response_id,
    }


def test_the_default_client_for_openai_is_the_direct_one() -> None:
    config = ModelConfig(
        provider="openai", base_url="http://127.0.0.1:1/v1", api_key=SecretStr("k"), model="m"
    )
    assert isinstance(remote_model(config), DirectChatModel)
    assert not isinstance(remote_model(config.model_copy(update={"client": "sdk"})), DirectChatModel)


def test_client_is_refused_for_other_provider_kinds() -> None:
    with pytest.raises(ValueError, match="client applies to provider = 'openai' only"):
        ModelConfig(provider="anthropic", model="m", client="direct")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_both_clients_read_the_same_tool_call_answer_and_usage(
    fake: tuple[Fake, str], stream: bool
) -> None:
    server, base = fake
    answers: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for client in CLIENTS:
        asked = await ask(model(client, f"{base}/ok/v1"), prompt(), stream=stream)
        answered = await ask(model(client, f"{base}/ok/v1"), prompt(with_result=True), stream=stream)
        answers[client] = (comparable(asked), comparable(answered))
    assert answers["direct"] == answers["sdk"]
    call, final = answers["direct"]
    assert call["calls"] == [("send_message_to_user", {"text": "via openai"}, "call_1")]
    assert call["usage"] == (11, 7) and call["finish_reason"] == "tool_call"
    assert final["parts"] == [("TextPart", "done via openai", None)]
    # Both sent the same request body: the tools, the messages, the stream options.
    sent_direct, sent_sdk = [r for r in server.requests if r["scenario"] == "ok"][::2][:2]
    assert sent_direct == sent_sdk
    assert [t["function"]["name"] for t in sent_direct["tools"]] == ["send_message_to_user", "future_task"]
    assert server.headers[0]["authorization"] == "Bearer sk-test"


async def test_each_request_carries_its_own_tools_though_the_direct_client_encodes_them_once(
    fake: tuple[Fake, str],
) -> None:
    server, base = fake
    fewer = ModelRequestParameters(function_tools=list(TOOL_DEFINITIONS)[:1], allow_text_output=True)
    for client in CLIENTS:
        m = model(client, f"{base}/ok/v1")
        try:
            for parameters in (PARAMETERS, PARAMETERS, fewer, PARAMETERS):
                await model_request(m, prompt(), model_request_parameters=parameters)
        finally:
            await ModelHandle(m).close()
    sent = [r for r in server.requests if r["scenario"] == "ok"]
    direct, sdk = sent[:4], sent[4:]
    assert direct == sdk
    names = [[t["function"]["name"] for t in body["tools"]] for body in direct]
    both = ["send_message_to_user", "future_task"]
    assert names == [both, both, both[:1], both]


async def test_both_clients_send_the_organization_and_project_of_the_environment(
    fake: tuple[Fake, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, base = fake
    monkeypatch.setenv("OPENAI_ORG_ID", "org-herald")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-herald")
    for client in CLIENTS:
        await ask(model(client, f"{base}/ok/v1"), prompt(), stream=False)
    sent = [(h.get("openai-organization"), h.get("openai-project")) for h in server.headers]
    assert sent == [("org-herald", "proj-herald")] * 2


async def test_a_streamed_chunk_of_any_length_is_read(fake: tuple[Fake, str]) -> None:
    _, base = fake
    answers = [await ask(model(c, f"{base}/long-chunk/v1"), prompt(), stream=True) for c in CLIENTS]
    assert [a.tool_calls[0].args_as_dict() for a in answers] == [{"text": "长" * 100_000}] * 2


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_both_clients_read_a_lenient_server_alike(fake: tuple[Fake, str], stream: bool) -> None:
    _, base = fake
    answers = [
        comparable(await ask(model(c, f"{base}/lenient/v1"), prompt(), stream=stream)) for c in CLIENTS
    ]
    assert answers[0] == answers[1]
    assert answers[0]["parts"][-1] == ("TextPart", "done via openai", None)
    assert answers[0]["parts"][0] == ("ThinkingPart", "thought about it", None)


@pytest.mark.parametrize(
    ("scenario", "stream", "tries"),
    [
        ("status-400", False, 1),  # a refused request is not tried again
        ("status-401", False, 1),
        ("status-404", True, 1),
        ("status-429", False, 3),  # rate limited: tried again twice, then given up
        ("status-500", False, 3),
        ("status-503", True, 3),
        ("not-json", False, 1),
        ("stream-error", True, 1),
    ],
)
async def test_both_clients_fail_alike(
    fake: tuple[Fake, str], scenario: str, stream: bool, tries: int
) -> None:
    server, base = fake
    errors = {}
    for client in CLIENTS:
        before = server.tries(scenario)
        with pytest.raises(Exception) as caught:
            await ask(model(client, f"{base}/{scenario}/v1"), prompt(), stream=stream)
        # How a turn's failure and the model's health name the cause (runner: ModelFailure).
        errors[client] = f"{type(caught.value).__name__}: {caught.value}"
        assert server.tries(scenario) - before == tries, client
    assert errors["direct"] == errors["sdk"]
    if scenario.startswith("status-"):
        assert f"status_code: {scenario[-3:]}, model_name: fake" in errors["direct"]
        assert f"refused with {scenario[-3:]}" in errors["direct"]


async def test_both_clients_ride_out_a_server_that_recovers(fake: tuple[Fake, str]) -> None:
    server, base = fake
    for client in CLIENTS:
        server.requests.clear()
        response = await ask(model(client, f"{base}/flaky/v1"), prompt(), stream=False)
        assert server.tries("flaky") == 3, client  # two 503s, then the answer
        assert response.tool_calls[0].args_as_dict() == {"text": "via openai"}


async def test_both_clients_fail_alike_when_nothing_listens() -> None:
    errors = {}
    for client in CLIENTS:
        with pytest.raises(Exception) as caught:
            await ask(model(client, "http://127.0.0.1:9/v1"), prompt(), stream=False)
        errors[client] = type(caught.value).__name__
    assert errors == {"direct": "ModelConnectionError", "sdk": "ModelConnectionError"}
