"""Per-scope policy: the most specific layer that sets a key wins, every value names its layer,
and a policy naming a model that does not exist is a config error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.agent.policy import FIELDS, Policies
from herald.config import AgentConfig, HeraldConfig, LLMConfig, PolicyConfig
from herald.core.target import Scene, Target

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "system_prompt": st.text(min_size=1, max_size=8),
    "temperature": st.floats(min_value=0, max_value=2),
    "tools": st.lists(st.sampled_from(["send_message_to_user", "future_task", "dice"]), unique=True),
    "answer_unmentioned": st.booleans(),
    "history_turns": st.integers(min_value=0, max_value=50),
    "history_tokens": st.integers(min_value=0, max_value=9000),
    "language": st.sampled_from(["zh", "en", "zh+en"]),
}
KEYS = list(VALUES)  # `model` needs [llm.models.*]: tested on its own below


@st.composite
def layer(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=4))
    return {key: draw(VALUES[key]) for key in chosen}


# (scope kind, key in the config, does it apply to a message by U1 in group G1)
SCOPES = [
    ("scenes", "group", True),
    ("scenes", "c2c", False),
    ("groups", "G1", True),
    ("groups", "G2", False),
    ("users", "U1", True),
    ("users", "U2", False),
    ("guilds", "X", False),
]
ORDER = ["scenes", "guilds", "groups", "channels", "users"]  # least specific first, after [policy]


@settings(max_examples=200, deadline=None)
@given(top=layer(), scoped=st.lists(st.tuples(st.sampled_from(SCOPES), layer()), max_size=7))
def test_the_most_specific_layer_that_sets_a_key_wins(
    top: dict[str, Any], scoped: list[tuple[tuple[str, str, bool], dict[str, Any]]]
) -> None:
    tables: dict[str, Any] = dict(top)
    for (kind, key, _), values in scoped:
        tables.setdefault(kind, {})[key] = values  # a later draw for the same table replaces it
    policy_config = PolicyConfig.model_validate(tables)
    agent = AgentConfig()
    policy = Policies(policy_config, agent, LLMConfig()).resolve(Target(Scene.GROUP, "G1"), "U1")

    scopes = sorted(
        (
            (f"[policy.{kind}.{key}]", tables[kind][key])
            for (kind, key, applies) in {scope for scope, _ in scoped}
            if applies
        ),
        key=lambda item: ORDER.index(item[0].split(".")[1]),
    )
    applying = [("[policy]", top), *scopes]
    for field in KEYS:
        setting = [(name, values[field]) for name, values in applying if field in values]
        if setting:
            name, expected = setting[-1]
            got = getattr(policy, field)
            assert (sorted(got) if field == "tools" else got) == (
                sorted(expected) if field == "tools" else expected
            )
            assert policy.sources[field] == name
        else:
            assert not policy.sources[field].startswith("[policy")


def test_unset_keys_fall_through_to_the_configuration() -> None:
    agent = AgentConfig(system_prompt="base", history_turns=7)
    policies = Policies(
        PolicyConfig.model_validate({"groups": {"G1": {"system_prompt": "pirate"}}}), agent, LLMConfig()
    )
    in_group = policies.resolve(Target(Scene.GROUP, "G1"), "U1")
    elsewhere = policies.resolve(Target(Scene.GROUP, "G2"), "U1")
    assert (in_group.system_prompt, in_group.sources["system_prompt"]) == ("pirate", "[policy.groups.G1]")
    assert (elsewhere.system_prompt, elsewhere.sources["system_prompt"]) == ("base", "[agent] system_prompt")
    assert in_group.history_turns == 7 and set(in_group.sources) == set(FIELDS)


def test_a_channel_gets_its_guilds_policy_once_a_message_said_which_guild() -> None:
    policies = Policies(
        PolicyConfig.model_validate({"guilds": {"G9": {"language": "en"}}}), AgentConfig(), LLMConfig()
    )
    channel = Target(Scene.CHANNEL, "CH1")
    assert policies.resolve(channel).language == "zh+en"
    assert policies.resolve(channel, guild_id="G9").language == "en"
    policies.note_guild("CH1", "G9")
    assert policies.resolve(channel).language == "en"


def test_a_scope_of_another_platform_is_named_with_it() -> None:
    groups = {"30001": {"system_prompt": "qq group"}, "onebot:30001": {"system_prompt": "onebot group"}}
    users = {"onebot:20001": {"language": "en"}}
    policies = Policies(
        PolicyConfig.model_validate({"groups": groups, "users": users}), AgentConfig(), LLMConfig()
    )
    on_qq = policies.resolve(Target(Scene.GROUP, "30001"), "20001")
    on_onebot = policies.resolve(Target(Scene.GROUP, "30001", "onebot"), "20001")
    assert (on_qq.system_prompt, on_qq.language) == ("qq group", "zh+en")
    assert (on_onebot.system_prompt, on_onebot.language) == ("onebot group", "en")
    assert on_onebot.sources["system_prompt"] == "[policy.groups.onebot:30001]"


def test_a_policy_model_must_be_a_configured_remote_model() -> None:
    with pytest.raises(ValueError, match=r"\[policy.groups.G1\] model = 'big' is not a \[llm.models.NAME\]"):
        HeraldConfig.model_validate({"policy": {"groups": {"G1": {"model": "big"}}}})
    with pytest.raises(ValueError, match="can pick a remote model only"):
        HeraldConfig.model_validate(
            {"llm": {"models": {"big": {"provider": "local"}}}, "policy": {"model": "big"}}
        )
