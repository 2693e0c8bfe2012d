"""The agent's settings operators change while Herald runs: the system prompt and which tools the
model is offered. Read on every turn, so a change applies to the next turn without a restart.

An operator's value (in the settings store) wins over the configuration's (`[agent]`, itself
environment over file over default). Tools are stored as the set *disabled*, so a tool that appears
later (a new plugin, an MCP server's new tool) is offered until an operator turns it off.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Collection

from pydantic import ValidationError

from herald.config import AgentConfig, PolicyConfig
from herald.store.settings import SettingsStore

SYSTEM_PROMPT = "agent.system_prompt"
DISABLED_TOOLS = "agent.disabled_tools"
POLICY = "agent.policy"  # TOML of a whole [policy], replacing the file's
KEYS = (SYSTEM_PROMPT, DISABLED_TOOLS, POLICY)
MAX_POLICY_CHARS = 100_000
# Sent with every model request: a prompt this long already costs thousands of tokens per turn.
MAX_PROMPT_CHARS = 20_000


class SettingError(ValueError):
    """A value refused, worded for the operator."""


class AgentSettings:
    def __init__(self, config: AgentConfig, store: SettingsStore | None = None) -> None:
        self.config = config
        self.store = store

    def _stored(self, key: str) -> str | None:
        return self.store.get(key) if self.store is not None else None

    @property
    def system_prompt(self) -> str:
        stored = self._stored(SYSTEM_PROMPT)
        return stored if stored is not None else self.config.system_prompt

    @property
    def disabled_tools(self) -> frozenset[str]:
        stored = self._stored(DISABLED_TOOLS)
        return frozenset(json.loads(stored)) if stored is not None else frozenset()

    @property
    def policy_text(self) -> str | None:
        """The operator's `[policy]` (TOML), which replaces the configuration's; None: the file's."""
        return self._stored(POLICY)

    async def set_policy(self, text: str, known_models: Collection[str], actor: str) -> bool:
        """Replace the configuration's `[policy]` with `text` (its tables, with or without a
        `[policy]` prefix). False when it is the one in effect already."""
        text = text.replace("\r\n", "\n").strip()
        if not text:
            raise SettingError("the policy is empty: reset it to use the configuration's [policy]")
        if len(text) > MAX_POLICY_CHARS:
            raise SettingError(f"the policy has {len(text)} characters; at most {MAX_POLICY_CHARS}")
        parse_policy(text, known_models)
        return await self._change(POLICY, text, actor)

    def overridden(self, key: str) -> bool:
        return self._stored(key) is not None

    async def set_system_prompt(self, text: str, actor: str) -> bool:
        """False when it is the prompt already in effect."""
        text = text.replace("\r\n", "\n").strip()
        if not text:
            raise SettingError("the system prompt cannot be empty (reset it to use the configured one)")
        if len(text) > MAX_PROMPT_CHARS:
            raise SettingError(
                f"the system prompt has {len(text)} characters; at most {MAX_PROMPT_CHARS} are allowed"
            )
        return await self._change(SYSTEM_PROMPT, text, actor)

    async def set_enabled_tools(self, enabled: Collection[str], known: Collection[str], actor: str) -> bool:
        """Offer exactly `enabled` of the `known` tools. False when nothing changes."""
        unknown = sorted(set(enabled) - set(known))
        if unknown:
            raise SettingError(
                f"unknown tool(s): {', '.join(unknown)}; the agent has: {', '.join(sorted(known)) or 'none'}"
            )
        # A tool disabled before but not known now (its server is down) stays disabled.
        disabled = (self.disabled_tools | set(known)) - set(enabled)
        value = json.dumps(sorted(disabled)) if disabled else None
        return await self._change(DISABLED_TOOLS, value, actor)

    async def reset(self, key: str, actor: str) -> bool:
        """Back to the configuration's value."""
        if key not in KEYS:
            raise SettingError(f"{key!r} is not a setting operators can change")
        return await self._change(key, None, actor)

    async def _change(self, key: str, value: str | None, actor: str) -> bool:
        if self.store is None:
            raise SettingError("settings cannot be changed: no settings store")
        return await self.store.change(key, value, actor)


def parse_policy(text: str, known_models: Collection[str]) -> PolicyConfig:
    """A `[policy]` written in TOML, checked as the configuration's would be."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingError(f"not valid TOML: {exc}") from None
    if set(data) == {"policy"} and isinstance(data["policy"], dict):
        data = data["policy"]
    try:
        policy = PolicyConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'policy'}: {error['msg']}" for error in exc.errors()
        )
        raise SettingError(f"not a valid [policy]: {problems}") from None
    for name, layer in policy.layers():
        if layer.model is not None and layer.model not in known_models:
            defined = ", ".join(known_models) or "none"
            raise SettingError(
                f"{name} model = {layer.model!r} is not a remote [llm.models.NAME] table (defined: {defined})"
            )
    return policy
