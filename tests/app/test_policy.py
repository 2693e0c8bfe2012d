"""Per-scope policy over the emulator: a persona set for one group changes only that group's
system prompt; a group's tool list and a user's model apply to their turns only; unmentioned
messages are answered where a scene's policy says so."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from herald.app import ModelChoice
from herald.config import HeraldConfig, ModelConfig
from tests.app.herald_harness import Script, harness

PERSONA = "你是一只说话像海盗的鹦鹉。"


class WithNamedModel(Script):
    """The scripted primary model, and `careful`, a second model a policy can pick by name."""

    def __init__(self) -> None:
        super().__init__()
        self.careful_calls = 0

    async def careful(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.careful_calls += 1
        return ModelResponse(parts=[TextPart("careful answer")])

    def choice(self) -> ModelChoice:
        return ModelChoice(self.model, named={"careful": FunctionModel(self.careful)})


def configure(config: HeraldConfig) -> None:
    config.llm.models["careful"] = ModelConfig(
        provider="openai", base_url="http://127.0.0.1:9", api_key=SecretStr("x")
    )
    config.policy = config.policy.model_validate(
        {
            "groups": {"G1": {"system_prompt": PERSONA, "tools": ["send_message_to_user"]}},
            "users": {"VIP": {"model": "careful"}},
            "scenes": {"group": {"answer_unmentioned": True}},
        }
    )


async def test_each_scope_gets_its_own_policy(db_url: str) -> None:
    script = WithNamedModel()
    async with harness(db_url, script, configure=configure) as h:
        await h.member_says("G1", "m1", "hello from G1")
        await h.wait_delivered("group", "G1", 1)
        g1 = (script.instructions[-1] or "", script.offered[-1])
        await h.member_says("G2", "m2", "hello from G2")
        await h.wait_delivered("group", "G2", 1)
        g2 = (script.instructions[-1] or "", script.offered[-1])
        calls_before_vip = len(script.calls)
        await h.user_says("VIP", "hello")
        vip = await h.wait_delivered("c2c", "VIP", 1)
        # Not @-mentioned: the group scene's policy answers it anyway.
        quiet = {"member_openid": "m3", "content": "no at", "at_bot": False}
        await h.call("POST", "/_sim/groups/G2/messages", quiet)
        unmentioned = await h.wait_delivered("group", "G2", 2)
    assert PERSONA in g1[0] and PERSONA not in g2[0]
    assert g1[1] == ["send_message_to_user"]
    assert "future_task" in g2[1] and "send_message_to_user" in g2[1]
    assert vip[0]["content"] == "careful answer" and script.careful_calls == 1
    assert len(script.calls) == calls_before_vip + 1  # the unmentioned G2 message, not the VIP's
    assert unmentioned[-1]["content"] == "echo: [m3] no at"


async def test_herald_answers_commands_in_the_language_of_the_scope(db_url: str) -> None:
    def languages(config: HeraldConfig) -> None:
        config.policy = config.policy.model_validate(
            {"users": {"EN": {"language": "en"}}, "groups": {"ZH": {"language": "zh"}}}
        )

    async with harness(db_url, configure=languages) as h:
        await h.user_says("EN", "/jobs")
        english = (await h.wait_delivered("c2c", "EN", 1))[0]["content"]
        await h.member_says("ZH", "m1", "/jobs")
        chinese = (await h.wait_delivered("group", "ZH", 1))[0]["content"]
        await h.user_says("BOTH", "/jobs")
        both = (await h.wait_delivered("c2c", "BOTH", 1))[0]["content"]
    assert (english, chinese, both) == (
        "No scheduled jobs.",
        "没有定时任务。",
        "没有定时任务 (no scheduled jobs).",
    )
