"""The agent's settings operators change while Herald runs: the system prompt and which tools the
model is offered. Read on every turn, so a change applies to the next turn without a restart.

An operator's value (in the settings store) wins over the configuration's (`[agent]`, itself
environment over file over default). Tools are stored as the set *disabled*, so a tool that appears
later (a new plugin, an MCP server's new tool) is offered until an operator turns it off.
"""

from __future__ import annotations

import json
from collections.abc import Collection

from herald.config import AgentConfig
from herald.store.settings import SettingsStore

SYSTEM_PROMPT = "agent.system_prompt"
DISABLED_TOOLS = "agent.disabled_tools"
KEYS = (SYSTEM_PROMPT, DISABLED_TOOLS)
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
