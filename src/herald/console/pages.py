"""The operator's pages: sign in, the conversations (each turn with its model steps, tool calls,
tokens and the deliveries it produced), the outbox (every item's route, anchor, msg_seq, attempts,
code and reason; retry or cancel), the jobs (each with its next firings and its past runs
with their deliveries; pause, resume, run now, cancel), the health and the settings (the
effective configuration, secrets masked; the system prompt and the enabled tools edited, every
change audited). Server-rendered (Jinja2); the live parts follow `/live` (server-sent events).

Every page needs a signed-in session; every change needs the session's CSRF token, or the API
token (`Authorization: Bearer`) for scripts.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from herald.agent.settings import (
    DISABLED_TOOLS,
    MAX_PROMPT_CHARS,
    POLICY,
    SYSTEM_PROMPT,
    AgentSettings,
    SettingError,
)
from herald.changes import ChangeFeed
from herald.config import HeraldConfig
from herald.console.auth import LoginLimiter, csrf_ok, load_password_hash, new_csrf_token, password_matches
from herald.console.conversations import conversation, errors_by_code, job_runs, recent_conversations
from herald.console.settings import effective_config, shorten
from herald.core.clock import Clock
from herald.core.jobs import Job, JobBook, JobError, next_firings
from herald.core.platform import Reach
from herald.core.target import Target
from herald.delivery.codec import load_segments
from herald.delivery.inspect import RETRYABLE, cancel, list_items, retry
from herald.delivery.outbox import DELIVERED, FINAL_STATES, PENDING
from herald.store import Database
from herald.store.settings import recent_changes

_templates = Environment(loader=PackageLoader("herald.console", "templates"), autoescape=select_autoescape())
Handler = Callable[[Request], Awaitable[Response]]
CANCELLED = "cancelled by the operator (console)"  # the end reason of a job cancelled here


@dataclass
class Operations:
    """What the pages read and change."""

    db: Database
    jobs: JobBook
    clock: Clock
    retry_for_s: float
    timezone: str
    # (component, ok, detail) for the health page: transport, model, MCP servers, plugins.
    components: Callable[[], list[tuple[str, bool, str]]] = lambda: []
    # The settings page: the configuration Herald started with, the values operators change, and
    # the names of every tool the agent has right now (its own, MCP servers', plugins').
    config: HeraldConfig | None = None
    agent_settings: AgentSettings | None = None
    tools: Callable[[], list[str]] = lambda: []
    changes: ChangeFeed = field(default_factory=ChangeFeed)
    # The platform's reply ledger for one conversation (`Platform.reach`); None: no platform.
    reach: Callable[[Target], Awaitable[Reach]] | None = None


def _short(anchor_id: str) -> str:
    """Platform ids run to 60 characters; their head and tail tell them apart on a page."""
    return anchor_id if len(anchor_id) <= 16 else f"{anchor_id[:8]}…{anchor_id[-6:]}"


def _time_left(seconds: float) -> str:
    """mm:ss (minutes may pass 59 for a long window); never negative."""
    whole = max(0, int(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _language(request: Request) -> str:
    chosen = request.query_params.get("lang") or request.session.get("lang")
    if chosen in ("zh", "en"):
        request.session["lang"] = chosen
        return str(chosen)
    return "zh" if "zh" in request.headers.get("accept-language", "")[:5] else "en"


class Pages:
    def __init__(self, ops: Operations, api_token: str | None) -> None:
        self.ops = ops
        self.api_token = api_token
        self.limiter = LoginLimiter()

    def routes(self) -> list[Route]:
        return [
            Route("/", self.home),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.changes(self.logout), methods=["POST"]),
            Route("/outbox", self.pages(self.outbox)),
            Route("/outbox/retry", self.changes(self.retry), methods=["POST"]),
            Route("/outbox/cancel", self.changes(self.cancel_items), methods=["POST"]),
            Route("/jobs", self.pages(self.job_list)),
            Route("/jobs/cancel", self.changes(self.cancel), methods=["POST"]),
            Route("/jobs/pause", self.changes(self.pause), methods=["POST"]),
            Route("/jobs/resume", self.changes(self.resume), methods=["POST"]),
            Route("/jobs/run", self.changes(self.run_now), methods=["POST"]),
            Route("/jobs/{id}", self.pages(self.job_page)),
            Route("/conversations", self.pages(self.conversations)),
            Route("/health", self.pages(self.health)),
            Route("/live", self.pages(self.live)),
            Route("/conversations/{key:path}", self.pages(self.conversation)),
            Route("/settings", self.pages(self.settings)),
            Route("/settings/prompt", self.changes(self.change_prompt), methods=["POST"]),
            Route("/settings/tools", self.changes(self.change_tools), methods=["POST"]),
            Route("/settings/policy", self.changes(self.change_policy), methods=["POST"]),
            Route("/settings/reset", self.changes(self.reset_setting), methods=["POST"]),
        ]

    # --- access ---------------------------------------------------------------------------

    def _bearer(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        return self.api_token is not None and hmac.compare_digest(
            given.encode(), f"Bearer {self.api_token}".encode()
        )

    def pages(self, handler: Handler) -> Handler:
        async def page(request: Request) -> Response:
            if not request.session.get("operator") and not self._bearer(request):
                return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
            return await handler(request)

        return page

    def changes(self, handler: Handler) -> Handler:
        async def change(request: Request) -> Response:
            if self._bearer(request):
                return await handler(request)
            if not request.session.get("operator"):
                return RedirectResponse("/login", status_code=303)
            form = await request.form()
            if not csrf_ok(request.session.get("csrf"), str(form.get("csrf") or "")):
                return HTMLResponse(
                    "refused: the form's CSRF token is missing or wrong; reload the page\n", 403
                )
            return await handler(request)

        return change

    def _actor(self, request: Request) -> str:
        """Who made a change, for the audit."""
        if self._bearer(request):
            return "api-token"
        return f"console {request.client.host if request.client else '?'}"

    def render(self, request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        lang = _language(request)
        if "csrf" not in request.session:
            request.session["csrf"] = new_csrf_token()

        def t(en: str, zh: str) -> str:
            return zh if lang == "zh" else en

        other = request.url.include_query_params(lang="en" if lang == "zh" else "zh")
        html = _templates.get_template(template).render(
            lang=lang,
            switch_language=f"{other.path}?{other.query}",
            t=t,
            csrf=request.session["csrf"],
            signed_in=bool(request.session.get("operator")),
            notice=request.session.pop("notice", None),
            **values,
        )
        return HTMLResponse(html, status_code=status)

    @staticmethod
    def notify(request: Request, en: str, zh: str) -> None:
        """Show a notice on the next page, in the operator's language."""
        request.session["notice"] = zh if _language(request) == "zh" else en

    # --- pages ----------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/outbox", status_code=303)

    async def login_form(self, request: Request) -> Response:
        return self.render(
            request, "login.html", title="login", next=request.query_params.get("next", "/outbox")
        )

    async def login(self, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        form = await request.form()
        target = str(form.get("next") or "/outbox")
        if not target.startswith("/") or target.startswith("//"):
            target = "/outbox"
        if self.limiter.blocked(client):
            return self.render(
                request,
                "login.html",
                429,
                title="login",
                next=target,
                error="Too many attempts; wait a minute.",
            )
        if not csrf_ok(request.session.get("csrf"), str(form.get("csrf") or "")):
            return self.render(
                request, "login.html", 403, title="login", next=target, error="Reload the page and try again."
            )
        stored = await load_password_hash(self.ops.db)
        if stored is None:
            error = "No console password is set: run `herald console set-password`."
            return self.render(request, "login.html", 403, title="login", next=target, error=error)
        if not password_matches(stored, str(form.get("password") or "")):
            self.limiter.failed(client)
            return self.render(
                request, "login.html", 401, title="login", next=target, error="Wrong password."
            )
        self.limiter.succeeded(client)
        request.session.clear()
        request.session["operator"] = True
        request.session["csrf"] = new_csrf_token()  # a new session, a new token
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    async def outbox(self, request: Request) -> Response:
        rows = await list_items(self.ops.db, (PENDING, *FINAL_STATES), limit=200)
        now = self.ops.clock.now()
        items = [
            {
                "id": row.id,
                "conversation": row.conversation,
                # A pending item that was refused and waits for its next try reads "waiting".
                "state": "waiting" if row.state == PENDING and row.code is not None else row.state,
                "next_attempt": self._when(row.next_attempt_at)
                if row.state == PENDING and row.next_attempt_at > now
                else None,
                "mode": row.mode,
                "anchor_id": row.anchor_id,
                "msg_seq": row.msg_seq,
                "attempts": row.attempts,
                "code": row.code,
                "reason": row.reason,
                "text": " ".join(str(getattr(s, "text", "")) for s in load_segments(row.segments))[:120],
            }
            for row in rows
        ]
        return self.render(
            request,
            "outbox.html",
            title="outbox",
            items=items,
            retryable=RETRYABLE,
            cancellable=(PENDING, "waiting"),
            delivered=DELIVERED,
            live="",
        )

    async def retry(self, request: Request) -> Response:
        form = await request.form()
        ids = [str(value) for value in form.getlist("ids")]
        done = [i for i in ids if await retry(self.ops.db, i, self.ops.clock.now(), self.ops.retry_for_s)]
        self.notify(
            request, f"retrying {len(done)} of {len(ids)} item(s)", f"正在重试 {len(done)}/{len(ids)} 条"
        )
        return RedirectResponse("/outbox", status_code=303)

    async def cancel_items(self, request: Request) -> Response:
        form = await request.form()
        ids = [str(value) for value in form.getlist("ids")]
        done = [i for i in ids if await cancel(self.ops.db, i, self.ops.clock.now())]
        en, zh = f"cancelled {len(done)} of {len(ids)} item(s)", f"已取消 {len(done)}/{len(ids)} 条"
        if len(done) < len(ids):
            en += " (only pending items not being sent at this moment can be cancelled)"
            zh += "（只能取消尚未发送、且此刻不在发送中的条目）"
        self.notify(request, en, zh)
        return RedirectResponse("/outbox", status_code=303)

    def _job_view(self, job: Job) -> dict[str, Any]:
        return {
            "id": job.id,
            "name": job.name,
            "conversation": job.conversation,
            "schedule": job.schedule.describe(),
            "action": f"send {job.text!r}" if job.action == "send" else job.note,
            "firings": [self._when(moment) for moment in next_firings(job)],
            "state": "ended" if not job.active else "paused" if job.paused else "active",
            "reason": job.end_reason if not job.active else job.pause_reason,
            "since": self._when(job.paused_at) if job.paused_at and job.active else None,
            "runs": job.runs,
            "last_run": self._when(job.last_run_at) if job.last_run_at else None,
        }

    async def job_list(self, request: Request) -> Response:
        every = await self.ops.jobs.list_jobs(include_ended=True)
        ended = sorted((job for job in every if not job.active), key=lambda job: job.created_at)[-20:]
        return self.render(
            request,
            "jobs.html",
            title="jobs",
            jobs=[self._job_view(job) for job in every if job.active],
            ended=[self._job_view(job) for job in reversed(ended)],
            back="/jobs",
        )

    async def job_page(self, request: Request) -> Response:
        job = await self.ops.jobs.get(request.path_params["id"])
        if job is None:
            missing = "没有这个任务。" if _language(request) == "zh" else "No such job."
            return self.render(
                request, "job.html", 404, title="job", job=None, runs=[], error=missing, back="/jobs"
            )
        runs = await job_runs(self.ops.db, job.id, job.conversation)
        return self.render(
            request,
            "job.html",
            title=f"job {job.id}",
            job=self._job_view(job),
            runs=runs,
            when=self._when,
            back=f"/jobs/{job.id}",
        )

    def _when(self, moment: datetime) -> str:
        return f"{moment.astimezone(ZoneInfo(self.ops.timezone)):%Y-%m-%d %H:%M:%S}"

    async def conversations(self, request: Request) -> Response:
        found = await recent_conversations(self.ops.db)
        return self.render(
            request,
            "conversations.html",
            title="conversations",
            conversations=found,
            when=self._when,
            live="",
        )

    async def conversation(self, request: Request) -> Response:
        key = request.path_params["key"]
        turns = await conversation(self.ops.db, key)
        ledger = await self._ledger(key)
        return self.render(
            request,
            "conversation.html",
            title=key,
            key=key,
            turns=turns,
            ledger=ledger,
            when=self._when,
            live=key,
        )

    async def _ledger(self, key: str) -> dict[str, Any] | None:
        """The reply ledger panel's values: times left on the console's clock, ids shortened."""
        if self.ops.reach is None:
            return None
        try:
            target = Target.parse(key)
        except ValueError:
            return None
        reach = await self.ops.reach(target)
        now = self.ops.clock.now()
        anchors = [
            {
                "id": anchor.id,
                "short": _short(anchor.id),
                "kind": anchor.kind,
                "left": _time_left((anchor.usable_until - now).total_seconds()),
                "replies_left": anchor.replies_left,
            }
            for anchor in reach.anchors
        ]
        chosen = next((a for a in anchors if a["id"] == reach.next_send.anchor_id), None)
        proactive = reach.proactive
        quota_left = None
        if proactive.used is not None and proactive.limit is not None:
            quota_left = max(0, proactive.limit - proactive.used)
        return {
            "anchors": anchors,
            "proactive": proactive,
            "quota_left": quota_left,
            "next_allowed": self._when(proactive.next_allowed_at) if proactive.next_allowed_at else None,
            "next": reach.next_send,
            "chosen": chosen,
            "recall": reach.recall,
            "recall_next": self._when(reach.recall.next_period_at)
            if reach.recall is not None and reach.recall.next_period_at is not None
            else None,
        }

    async def live(self, request: Request) -> Response:
        """Server-sent events: `change` with the keys of the conversations that changed (at most
        one event per half second; only for the given `conversation`, if asked), and a comment
        line as a heartbeat."""
        only = request.query_params.get("conversation") or None

        async def stream() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            async for batch in self.ops.changes.listen():
                if not batch:
                    yield ": alive\n\n"
                elif only is None:
                    yield f"event: change\ndata: {' '.join(sorted(batch))}\n\n"
                elif only in batch:
                    yield f"event: change\ndata: {only}\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def health(self, request: Request) -> Response:
        components = list(self.ops.components())
        try:
            errors = await errors_by_code(self.ops.db)
            components.append(("database", True, repr(self.ops.db)))
        except Exception as exc:
            errors = []
            components.append(("database", False, f"{type(exc).__name__}: {exc}"))
        return self.render(
            request, "health.html", title="health", components=components, errors=errors, when=self._when
        )

    async def _job_change(
        self, request: Request, change: Callable[[str, str], Awaitable[Job]], done: tuple[str, str]
    ) -> Response:
        """Apply one change to the form's job; back to the page the form was on, with a notice."""
        form = await request.form()
        job_id = str(form.get("id") or "")
        back = str(form.get("back") or "/jobs")
        if not back.startswith("/jobs"):
            back = "/jobs"
        try:
            job = await change(job_id, str(form.get("reason") or "").strip())
        except JobError as exc:
            self.notify(request, f"job {job_id}: {exc}", f"任务 {job_id}：{exc}")
        else:
            # Resuming a one-shot whose time passed ends it: say so rather than "resumed".
            state = f" · {job.state}" if not job.active and job.end_reason != CANCELLED else ""
            self.notify(
                request, f"{done[0]} {job.id} ({job.name}){state}", f"{done[1]} {job.id}（{job.name}）{state}"
            )
        return RedirectResponse(back, status_code=303)

    async def cancel(self, request: Request) -> Response:
        async def end(job_id: str, reason: str) -> Job:
            return await self.ops.jobs.end(job_id, reason=CANCELLED)

        return await self._job_change(request, end, ("cancelled", "已取消"))

    async def pause(self, request: Request) -> Response:
        async def pause(job_id: str, reason: str) -> Job:
            return await self.ops.jobs.pause(job_id, reason=reason or "from the console")

        return await self._job_change(request, pause, ("paused", "已暂停"))

    async def resume(self, request: Request) -> Response:
        async def resume(job_id: str, reason: str) -> Job:
            return await self.ops.jobs.resume(job_id)

        return await self._job_change(request, resume, ("resumed", "已恢复"))

    async def run_now(self, request: Request) -> Response:
        async def run(job_id: str, reason: str) -> Job:
            return await self.ops.jobs.run_now(job_id)

        return await self._job_change(request, run, ("running now:", "正在立即运行"))

    # --- settings -------------------------------------------------------------------------

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
