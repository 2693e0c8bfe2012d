"""The operator's pages, all together: sign in, the conversations (each turn with its model steps,
tool calls, tokens and deliveries, under its reply ledger), the outbox, the jobs, the health and
the settings. Server-rendered (Jinja2); the live parts follow `/live` (server-sent events).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from herald.console.auth import csrf_ok, load_password_hash, new_csrf_token, password_matches
from herald.console.conversation_pages import ConversationPages
from herald.console.conversations import errors_by_code
from herald.console.job_pages import JobPages
from herald.console.outbox_pages import OutboxPages
from herald.console.settings_pages import SettingsPages


class Pages(ConversationPages, OutboxPages, JobPages, SettingsPages):
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
