"""The settings page: the effective configuration (secrets masked), the settings operators change
while Herald runs (system prompt, offered tools, per-scope policy), and the audit of changes."""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from herald.agent.settings import (
    DISABLED_TOOLS,
    MAX_PROMPT_CHARS,
    POLICY,
    SYSTEM_PROMPT,
    AgentSettings,
    SettingError,
)
from herald.console.base import Page
from herald.console.settings import effective_config, shorten
from herald.store.settings import recent_changes


class SettingsPages(Page):
    def _known_tools(self, agent: AgentSettings) -> list[str]:
        """Every tool the agent has now, and those disabled whose source is down right now."""
        return sorted({*self.ops.tools(), *agent.disabled_tools})

    async def settings(
        self,
        request: Request,
        status: int = 200,
        error: str | None = None,
        draft: str | None = None,
        policy_draft: str | None = None,
    ) -> Response:
        agent = self.ops.agent_settings
        sections = effective_config(self.ops.config, agent, os.environ) if self.ops.config is not None else []
        audit = [
            {
                "when": self._when(entry.at),
                "actor": entry.actor,
                "key": entry.key,
                "old": shorten(entry.old_value),
                "new": shorten(entry.new_value),
            }
            for entry in await recent_changes(self.ops.db, limit=50)
        ]
        tools = []
        if agent is not None:
            disabled = agent.disabled_tools
            tools = [{"name": name, "enabled": name not in disabled} for name in self._known_tools(agent)]
        return self.render(
            request,
            "settings.html",
            status,
            title="settings",
            error=error,
            sections=sections,
            editable=agent is not None and agent.store is not None,
            prompt=draft if draft is not None else (agent.system_prompt if agent is not None else ""),
            prompt_overridden=agent is not None and agent.overridden(SYSTEM_PROMPT),
            tools_overridden=agent is not None and agent.overridden(DISABLED_TOOLS),
            max_prompt=MAX_PROMPT_CHARS,
            tools=tools,
            audit=audit,
            prompt_key=SYSTEM_PROMPT,
            tools_key=DISABLED_TOOLS,
            policy_key=POLICY,
            policy=policy_draft
            if policy_draft is not None
            else (agent.policy_text if agent is not None else None) or "",
            policy_overridden=agent is not None and agent.overridden(POLICY),
        )

    async def change_prompt(self, request: Request) -> Response:
        form = await request.form()
        text = str(form.get("system_prompt") or "")
        try:
            changed = await self._agent().set_system_prompt(text, self._actor(request))
        except SettingError as exc:
            return await self.settings(request, 400, error=str(exc), draft=text)
        self.notify(
            request,
            *(
                ("system prompt saved", "系统提示词已保存")
                if changed
                else ("system prompt unchanged", "系统提示词未变")
            ),
        )
        return RedirectResponse("/settings", status_code=303)

    async def change_tools(self, request: Request) -> Response:
        form = await request.form()
        enabled = [str(name) for name in form.getlist("tools")]
        agent = self._agent()
        try:
            changed = await agent.set_enabled_tools(enabled, self._known_tools(agent), self._actor(request))
        except SettingError as exc:
            return await self.settings(request, 400, error=str(exc))
        self.notify(
            request, *(("tools saved", "工具设置已保存") if changed else ("tools unchanged", "工具设置未变"))
        )
        return RedirectResponse("/settings", status_code=303)

    async def change_policy(self, request: Request) -> Response:
        form = await request.form()
        text = str(form.get("policy") or "")
        agent = self._agent()
        known = self.ops.config.llm.models if self.ops.config is not None else {}
        remote = [name for name, model in known.items() if model.provider != "local"]
        try:
            changed = await agent.set_policy(text, remote, self._actor(request))
        except SettingError as exc:
            return await self.settings(request, 400, error=str(exc), policy_draft=text)
        self.notify(
            request, *(("policy saved", "策略已保存") if changed else ("policy unchanged", "策略未变"))
        )
        return RedirectResponse("/settings", status_code=303)

    async def reset_setting(self, request: Request) -> Response:
        form = await request.form()
        key = str(form.get("key") or "")
        try:
            changed = await self._agent().reset(key, self._actor(request))
        except SettingError as exc:
            return await self.settings(request, 400, error=str(exc))
        if changed:
            self.notify(request, f"{key} reset to the configured value", f"{key} 已恢复为配置中的值")
        else:
            self.notify(request, f"{key} unchanged", f"{key} 未变")
        return RedirectResponse("/settings", status_code=303)

    def _agent(self) -> AgentSettings:
        if self.ops.agent_settings is None:
            raise RuntimeError("the console was started without the agent's settings")
        return self.ops.agent_settings
