"""Per-scope policy: which persona, model, temperature, tools, history budget and reply language a
turn gets, whether unmentioned group messages start one, and whether its reply is streamed.

The layers, least specific first: the configuration's own values (`[agent]`, `[llm]`, and an
operator's console edits), `[policy]`, then `[policy.scenes.<scene>]`, `[policy.guilds.<id>]`,
`[policy.groups.<id>]` or `[policy.channels.<id>]`, and `[policy.users.<openid>]` for the
message's author. Ids of a platform other than `qq` are written `<platform>:<id>`
(`[policy.groups."onebot:30001"]`), as in target keys. A key a layer sets wins over every layer
before it; a key it leaves unset falls through. Every resolved value remembers the layer it came
from (`herald policy show`).

Layers are flattened to plain dicts once, at start, so resolving one turn's policy is a handful of
dict lookups.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from herald.agent.settings import AgentSettings, SettingError, parse_policy
from herald.config import AgentConfig, LLMConfig, PolicyConfig, PolicyLayer
from herald.core.language import Language
from herald.core.target import Scene, Target, scoped_id

log = logging.getLogger(__name__)

FIELDS = (
    "system_prompt",
    "model",
    "temperature",
    "tools",
    "answer_unmentioned",
    "history_turns",
    "history_tokens",
    "language",
    "stream",
    "approve_tools",
    "approver",
    "approval_timeout_s",
)

DEFAULT_APPROVAL_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class Policy:
    system_prompt: str
    model: str | None  # a [llm.models.NAME]; None: the primary model (and its fallbacks)
    temperature: float | None
    tools: frozenset[str] | None  # offered (besides what an operator disabled); None: all
    answer_unmentioned: bool
    history_turns: int
    history_tokens: int
    language: Language
    stream: bool  # stream the reply where the platform can (C2C)
    sources: Mapping[str, str]  # field → the layer it came from
    approve_tools: frozenset[str] = frozenset()  # run only once a person approved the call
    approver: str = "user"  # user (the turn's author) | admin
    approval_timeout_s: float = DEFAULT_APPROVAL_TIMEOUT_S


def _set_values(layer: PolicyLayer) -> dict[str, Any]:
    return {name: getattr(layer, name) for name in FIELDS if getattr(layer, name) is not None}


class Policies:
    def __init__(
        self,
        policy: PolicyConfig,
        agent: AgentConfig,
        llm: LLMConfig,
        settings: AgentSettings | None = None,
    ) -> None:
        self.agent = agent
        self.llm = llm
        self.settings = settings or AgentSettings(agent)
        self._file = policy
        self._in_use: str | None = None  # the console's policy text the layers were built from
        self._use(policy)
        # A channel's turn does not carry its guild; its messages do, and say it here.
        self._guild_of: dict[str, str] = {}

    def _use(self, policy: PolicyConfig) -> None:
        self._global = _set_values(policy)
        self._scenes = {scene: _set_values(layer) for scene, layer in policy.scenes.items()}
        self._guilds = {key: _set_values(layer) for key, layer in policy.guilds.items()}
        self._groups = {key: _set_values(layer) for key, layer in policy.groups.items()}
        self._channels = {key: _set_values(layer) for key, layer in policy.channels.items()}
        self._users = {key: _set_values(layer) for key, layer in policy.users.items()}

    def _current(self) -> None:
        """Rebuild the layers when an operator changed the policy in the console (or reset it)."""
        text = self.settings.policy_text
        if text == self._in_use:
            return
        self._in_use = text
        # Checked when stored; a value that no longer parses (edited in the database) is ignored.
        try:
            self._use(parse_policy(text, self.remote_models) if text is not None else self._file)
        except SettingError as exc:
            log.error("the console's [policy] is not valid, so the file's applies: %s", exc)
            self._use(self._file)

    @property
    def remote_models(self) -> list[str]:
        """The `[llm.models.*]` a policy may pick."""
        return [name for name, model in self.llm.models.items() if model.provider != "local"]

    @property
    def origin(self) -> str:
        """Where the `[policy]` tables come from."""
        return "console " if self.settings.policy_text is not None else ""

    def note_guild(self, channel_id: str, guild_id: str) -> None:
        self._guild_of[channel_id] = guild_id

    def _base(self) -> tuple[dict[str, Any], dict[str, str]]:
        prompt_source = (
            "console" if self.settings.overridden("agent.system_prompt") else "[agent] system_prompt"
        )
        values: dict[str, Any] = {
            "system_prompt": self.settings.system_prompt,
            "model": None,
            "temperature": self.llm.temperature,
            "tools": None,
            "answer_unmentioned": self.agent.answer_unmentioned,
            "history_turns": self.agent.history_turns,
            "history_tokens": self.agent.history_tokens,
            "language": "zh+en",
            "stream": True,
            "approve_tools": None,
            "approver": "user",
            "approval_timeout_s": DEFAULT_APPROVAL_TIMEOUT_S,
        }
        sources = {
            "system_prompt": prompt_source,
            "model": "[llm]",
            "temperature": "[llm] temperature",
            "tools": "every tool",
            "answer_unmentioned": "[agent] answer_unmentioned",
            "history_turns": "[agent] history_turns",
            "history_tokens": "[agent] history_tokens",
            "language": "default",
            "stream": "default",
            "approve_tools": "none",
            "approver": "default",
            "approval_timeout_s": "default",
        }
        return values, sources

    def layers_for(
        self, target: Target, author_id: str | None = None, guild_id: str | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """The layers that apply to a turn, least specific first, with their names."""
        self._current()
        found: list[tuple[str, dict[str, Any]]] = [("[policy]", self._global)]
        scene = self._scenes.get(target.scene)
        if scene is not None:
            found.append((f"[policy.scenes.{target.scene.value}]", scene))
        if target.scene is Scene.CHANNEL:
            guild_id = guild_id or self._guild_of.get(target.id)
        elif target.scene is Scene.DM:
            guild_id = guild_id or target.id
        platform = target.platform
        if guild_id is not None and (guild := scoped_id(platform, guild_id)) in self._guilds:
            found.append((f"[policy.guilds.{guild}]", self._guilds[guild]))
        if target.scene is Scene.GROUP and target.scoped_id in self._groups:
            found.append((f"[policy.groups.{target.scoped_id}]", self._groups[target.scoped_id]))
        if target.scene is Scene.CHANNEL and target.scoped_id in self._channels:
            found.append((f"[policy.channels.{target.scoped_id}]", self._channels[target.scoped_id]))
        if author_id is not None and (author := scoped_id(platform, author_id)) in self._users:
            found.append((f"[policy.users.{author}]", self._users[author]))
        return found

    def resolve(self, target: Target, author_id: str | None = None, guild_id: str | None = None) -> Policy:
        values, sources = self._base()
        origin = self.origin
        for name, layer in self.layers_for(target, author_id, guild_id):
            values.update(layer)
            for key in layer:
                sources[key] = origin + name
        tools = values["tools"]
        return Policy(
            system_prompt=values["system_prompt"],
            model=values["model"],
            temperature=values["temperature"],
            tools=frozenset(tools) if tools is not None else None,
            answer_unmentioned=values["answer_unmentioned"],
            history_turns=values["history_turns"],
            history_tokens=values["history_tokens"],
            language=values["language"],
            stream=values["stream"],
            sources=sources,
            approve_tools=frozenset(values["approve_tools"] or ()),
            approver=values["approver"],
            approval_timeout_s=values["approval_timeout_s"],
        )
