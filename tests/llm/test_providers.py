"""Every provider kind, over its real wire protocol: Herald, configured by `[llm]` alone, talks to
a local fake server of that protocol (its provider's SDK, pydantic-ai's model), runs the tool
call the fake asks for, sends its result back, delivers the final answer, and stores the turn's
token usage for `/status`. OpenAI-compatible servers are reached both ways (`[llm] client`:
Herald's direct client, the default, and the openai SDK), plainly and streamed. The fallback
chain moves on from a failing or hanging model."""

from __future__ import annotations

import logging
from typing import Any, Literal

import pytest
from pydantic import SecretStr

from herald.app import Herald
from herald.config import LLMConfig, ModelConfig, PolicyConfig
from herald.core.clock import SystemClock
from tests.app.herald_harness import herald_config, wait_for
from tests.llm import fake_providers
from tests.llm.fake_providers import fake_server
from tests.sim_control import running_sim


def endpoint(kind: str, base: str) -> dict[str, Any]:
    """How each kind is pointed at the fake: only `base_url` differs from production use."""
    return {
        "openai": {"base_url": f"{base}/v1"},
        "openai-responses": {"base_url": f"{base}/v1"},
        "anthropic": {"base_url": base},
        "google": {"base_url": base},
        "groq": {"base_url": base},
        "mistral": {"base_url": f"{base}/mistral"},
        "bedrock": {"base_url": base, "region": "us-east-1"},
    }[kind]


async def converse(
    llm: LLMConfig, db_url: str, user: str, *, stream: bool = False, policy: dict[str, Any] | None = None
) -> tuple[list[str], Herald]:
    """One message through Herald with `llm`; the bot's delivered texts (a streamed reply's as its
    last frame shows it, marked `streamed: `), then /status's."""
    async with running_sim() as sim:
        config = herald_config(sim, db_url)
        config.llm = llm
        # The fakes speak each provider's plain (non-streamed) wire, and the OpenAI-compatible one
        # its streamed wire too (`stream`); streamed replies and the fallback for a server that
        # takes no streams are tests/app/test_stream*.py's.
        config.policy = PolicyConfig.model_validate({"stream": stream, **(policy or {})})
        config.plugins.enabled = []
        herald = Herald(config, clock=SystemClock(), rate_limits=False)
        await herald.start()
        try:
            await herald.wait_ready()
            import aiohttp

            async with aiohttp.ClientSession() as http:

                async def delivered() -> list[dict[str, Any]]:
                    url = f"{sim.base_url}/_sim/transcript?scene=c2c&target={user}"
                    async with http.get(url) as response:
                        entries: list[dict[str, Any]] = (await response.json())["entries"]
                    shown = []
                    for entry in entries:
                        frame = entry.get("stream")
                        if entry.get("status") != 200 or (frame is not None and not frame.get("done")):
                            continue
                        if frame is not None:
                            entry = {**entry, "content": f"streamed: {frame['text']}"}
                        shown.append(entry)
                    return shown

                for text, replies in (("go", 2), ("/status", 3)):
                    async with http.post(f"{sim.base_url}/_sim/c2c/{user}/messages", json={"content": text}):
                        pass

                    def enough(got: list[dict[str, Any]], n: int = replies) -> bool:
                        return len(got) >= n

                    await wait_for(delivered, enough)
                entries = await delivered()
        finally:
            await herald.stop()
    return [str(e["content"]) for e in entries], herald


KINDS = ["openai", "openai-responses", "anthropic", "google", "groq", "mistral", "bedrock"]


@pytest.mark.parametrize(
    ("kind", "client"), [(kind, None) for kind in KINDS] + [("openai", "sdk")], ids=[*KINDS, "openai-sdk"]
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_each_provider_kind_runs_a_tool_call_and_answers(
    kind: str, client: str | None, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_providers.requests.clear()
    # Bedrock's bearer keys need HTTPS; over the fake's HTTP it signs with AWS credentials instead.
    key = None if kind == "bedrock" else SecretStr("sk-test")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sk-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    async with fake_server() as base:
        llm = LLMConfig.model_validate(
            {
                "provider": kind,
                "model": f"fake-{kind}",
                "api_key": key,
                "client": client,
                **endpoint(kind, base),
            }
        )
        texts, _ = await converse(llm, db_url, f"user-{kind}")
    assert texts[0] == f"via {kind}"  # the tool call, delivered
    assert texts[1] == f"done via {kind}"  # the answer after the tool's result went back
    assert "tokens: last turn 22 in / 14 out" in texts[2] and "today 22 in / 14 out" in texts[2]
    first, second = fake_providers.requests[kind]
    assert "send_message_to_user" in str(first)  # the tools were offered
    assert "delivered" in str(second)  # the tool's result reached the provider
    assert "sk-test" in str(first["headers"])  # the key went where it belongs (and nowhere else)


@pytest.mark.parametrize("client", ["direct", "sdk"])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_openai_compatible_model_streams_the_reply(
    client: Literal["direct", "sdk"], db_url: str
) -> None:
    fake_providers.requests.clear()
    async with fake_server() as base:
        llm = LLMConfig(
            provider="openai",
            base_url=f"{base}/v1",
            api_key=SecretStr("sk-test"),
            model="fake",
            client=client,
        )
        texts, _ = await converse(llm, db_url, f"user-stream-{client}", stream=True)
    # The tool call arrived in pieces and ran; the final answer was shown as it was written.
    assert texts[:2] == ["via openai", "streamed: done via openai"]
    assert "tokens: last turn 22 in / 14 out" in texts[2]  # the streams' usage chunks, recorded
    first, second = fake_providers.requests["openai"]
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert "delivered" in str(second)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_model_a_policy_picks_answers_through_the_direct_client(db_url: str) -> None:
    fake_providers.requests.clear()
    async with fake_server() as base:
        llm = LLMConfig(
            provider="openai",
            base_url=f"{base}/v1",
            api_key=SecretStr("sk-test"),
            model="fake-primary",
            models={
                "other": ModelConfig(
                    provider="openai", base_url=f"{base}/v1", api_key=SecretStr("sk-test"), model="fake-other"
                )
            },
        )
        texts, _ = await converse(llm, db_url, "user-vip", policy={"users": {"user-vip": {"model": "other"}}})
    assert texts[:2] == ["via openai", "done via openai"]
    assert {r["model"] for r in fake_providers.requests["openai"]} == {"fake-other"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_fallback_chain_moves_past_a_failing_and_a_hanging_model(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake_providers.requests.clear()
    caplog.set_level(logging.WARNING, logger="herald.llm.provider")
    async with fake_server() as base:
        llm = LLMConfig(
            provider="openai",
            base_url=f"{base}/broken/v1",
            api_key=SecretStr("k"),
            model="primary-model",
            models={
                "slow": ModelConfig(
                    provider="openai",
                    base_url=f"{base}/slow/v1",
                    api_key=SecretStr("k"),
                    model="slow-model",
                    timeout_s=1,
                ),
                "claude": ModelConfig(
                    provider="anthropic", base_url=base, api_key=SecretStr("k"), model="fake-claude"
                ),
            },
            fallback=["slow", "claude"],
        )
        texts, _ = await converse(llm, db_url, "user-fallback")
    assert texts[:2] == ["via anthropic", "done via anthropic"]
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("model primary (primary-model) failed") for m in logged)
    assert any(m == "model slow (slow-model) did not answer within 1 s" for m in logged)
    assert "(fake-claude)" in texts[2]


def test_a_kind_whose_extra_is_missing_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from herald.llm.provider import MissingExtra, remote_model

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "anthropic" else real(name, *a)
    )
    with pytest.raises(MissingExtra, match=r"pip install 'herald\[anthropic\]'"):
        remote_model(ModelConfig(provider="anthropic", model="x", api_key=SecretStr("k")))
