"""What every operator page shares: the operations it reads and changes, sign-in and CSRF checks,
the API token for scripts, rendering in the operator's language, and notices.

Every page needs a signed-in session; every change needs the session's CSRF token, or the API
token (`Authorization: Bearer`) for scripts.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from herald.agent.settings import AgentSettings
from herald.changes import ChangeFeed
from herald.config import HeraldConfig
from herald.console.auth import LoginLimiter, csrf_ok, new_csrf_token
from herald.core.clock import Clock
from herald.core.jobs import JobBook
from herald.core.platform import Reach
from herald.core.target import Target
from herald.store import Database

_templates = Environment(loader=PackageLoader("herald.console", "templates"), autoescape=select_autoescape())
Handler = Callable[[Request], Awaitable[Response]]


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


def language_of(request: Request) -> str:
    """`zh` or `en`: the operator's choice (`?lang=`, kept in the session), else the browser's."""
    chosen = request.query_params.get("lang") or request.session.get("lang")
    if chosen in ("zh", "en"):
        request.session["lang"] = chosen
        return str(chosen)
    return "zh" if "zh" in request.headers.get("accept-language", "")[:5] else "en"


class Page:
    """The base of the operator's pages (each group of pages is a subclass; `Pages` has them all)."""

    def __init__(self, ops: Operations, api_token: str | None) -> None:
        self.ops = ops
        self.api_token = api_token
        self.limiter = LoginLimiter()

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
        lang = language_of(request)
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
        request.session["notice"] = zh if language_of(request) == "zh" else en

    def _when(self, moment: datetime) -> str:
        return f"{moment.astimezone(ZoneInfo(self.ops.timezone)):%Y-%m-%d %H:%M:%S}"
