"""App access tokens (rules 1-5): the token endpoint and the `Authorization` check of every OpenAPI call."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from herald.sim.errors import JsonResponse, SimError
from herald.sim.state import SimState

TOKEN_CODES = {"missing": 11241, "wrong": 11243, "expired": 11244}


async def token_endpoint(state: SimState, request: Request) -> Response:
    """`POST /app/getAppAccessToken`: failures are HTTP 200 with `{code, message}` (rule 2)."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = None
    app_id = body.get("appId") if isinstance(body, dict) else None
    secret = body.get("clientSecret") if isinstance(body, dict) else None
    settings = state.settings
    if app_id != settings.app_id:
        answer: dict[str, object] = {"code": 100007, "message": "appid invalid"}
    elif secret != settings.secret:
        answer = {"code": 100016, "message": "invalid appid or secret"}
    else:
        token = state.issue_token()
        remaining = max(1, round(token.expires_at - state.clock.time()))
        # A string, as in the official example: botpy concatenates it (rule 1).
        answer = {"access_token": token.value, "expires_in": str(remaining)}
    state.log_request("POST", request.url.path, 200, answer.get("code"))  # type: ignore[arg-type]
    return JsonResponse(answer)


def authorize(state: SimState, header: str | None, path: str = "") -> None:
    """Raise the platform's 401 unless the header is `QQBot <valid token>` (rules 4-5).

    `Bot <appid>.<token>` (the deprecated static token) passes only on guild APIs, and only when
    `settings.legacy_bot_token` is set and matches; v2 endpoints always refuse it.
    """
    if not header:
        raise SimError(11241, status=401)
    scheme, _, token = header.partition(" ")
    if scheme == "Bot":
        legacy = state.settings.legacy_bot_token
        if legacy and not path.startswith("/v2/") and token.strip() == f"{state.settings.app_id}.{legacy}":
            return
        raise SimError(11262, status=401)
    if scheme != "QQBot":
        raise SimError(11243, f"Authorization必须是QQBot <token>，收到{scheme!r}", status=401)
    status = state.check_token(token.strip())
    if status != "ok":
        raise SimError(TOKEN_CODES[status], status=401)
