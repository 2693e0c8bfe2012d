"""The app access token: fetched with `{appId, clientSecret}`, cached,
refreshed ahead of expiry, one refresh at a time.

    tokens = TokenManager(session, app_id, secret, token_url, clock)
    token = await tokens.get()          # cached; refreshed `refresh_margin_s` before expiry
    tokens.invalidate(token)            # after a 401: the next `get()` fetches a new one

The token endpoint answers HTTP 200 even on failure, so the body's `code` is what counts:
`100016` wrong app id or secret, `100007` unknown (or banned/deleted) app, `10004` no such bot.
These raise `AuthError`, worded with the cause and the fix. The secret never appears in a repr,
a log line or an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
from pydantic import SecretStr

from herald.core.clock import Clock, SystemClock
from herald.core.errors import ErrorKind
from herald.qq.errors import QQApiError

log = logging.getLogger(__name__)

DEFAULT_TOKEN_URL = "https://bots.qq.com/app/getAppAccessToken"
REFRESH_MARGIN_S = 60.0

# Token endpoint codes (§1.1) -> what is wrong and how to fix it.
AUTH_FAILURES: dict[int, str] = {
    100016: "the app id or app secret is wrong: copy AppSecret from q.qq.com → 开发 → 开发设置 "
    "into [qq] secret (or HERALD_QQ__SECRET), and check [qq] app_id",
    100007: "the app id is unknown (or the bot was banned/deleted): check [qq] app_id against "
    "q.qq.com → 开发 → 开发设置 (AppID)",
    10004: "the bot does not exist: check [qq] app_id",
    100001: "the token endpoint is rate limiting this app (too many token requests); wait and retry",
}


class AuthError(QQApiError):
    """The token endpoint refused the credentials (or could not be reached)."""


class TokenManager:
    """Caches the app access token and refreshes it shortly before it expires."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        app_id: str,
        secret: str | SecretStr,
        token_url: str = DEFAULT_TOKEN_URL,
        clock: Clock | None = None,
        *,
        refresh_margin_s: float = REFRESH_MARGIN_S,
        timeout_s: float = 10.0,
    ) -> None:
        self.session = session
        self.app_id = app_id
        self._secret = secret if isinstance(secret, SecretStr) else SecretStr(secret)
        self.token_url = token_url
        self.clock: Clock = clock or SystemClock()
        self.refresh_margin_s = refresh_margin_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._token: str | None = None
        self._expires_at = 0.0  # clock.monotonic() deadline
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many times the endpoint was asked (observability, tests)

    def __repr__(self) -> str:
        return f"TokenManager(app_id={self.app_id!r}, token_url={self.token_url!r}, secret=**********)"

    @property
    def secret(self) -> SecretStr:
        return self._secret

    def _fresh(self) -> bool:
        return self._token is not None and self.clock.monotonic() < self._expires_at - self.refresh_margin_s

    @property
    def has_token(self) -> bool:
        return self._token is not None

    @property
    def expires_in(self) -> float:
        """Seconds until the cached token expires (0 if there is none)."""
        if self._token is None:
            return 0.0
        return max(0.0, self._expires_at - self.clock.monotonic())

    async def get(self) -> str:
        """A valid token; fetches one if there is none or it is within the refresh margin."""
        token = self._token
        if token is not None and self._fresh():
            return token
        async with self._lock:
            token = self._token
            if token is not None and self._fresh():
                return token  # another task refreshed it while we waited
            return await self._fetch()

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still `token`, when given): a 401 proved it bad."""
        if token is None or token == self._token:
            self._token = None
            self._expires_at = 0.0

    async def _fetch(self) -> str:
        payload = {"appId": self.app_id, "clientSecret": self._secret.get_secret_value()}
        self.fetches += 1
        try:
            async with self.session.post(self.token_url, json=payload, timeout=self.timeout) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AuthError(
                0,
                None,
                f"cannot reach the token endpoint {self.token_url} ({type(exc).__name__}: {exc}); "
                "check the network and [qq] token_url",
                kind=ErrorKind.RETRY_LATER,
            ) from None
        body: Any = None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise AuthError(
                status,
                None,
                f"the token endpoint {self.token_url} answered HTTP {status} without a JSON object; "
                "check [qq] token_url",
                kind=ErrorKind.RETRY_LATER if status >= 500 or status == 429 else ErrorKind.BUG,
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._failure(status, body)
        expires_in = _seconds(body.get("expires_in"))
        self._token = token
        self._expires_at = self.clock.monotonic() + expires_in
        log.info("qq token fetched for app %s (expires in %ss)", self.app_id, int(expires_in))
        return token

    def _failure(self, status: int, body: dict[str, Any]) -> AuthError:
        code_value = body.get("code", body.get("err_code"))
        code = _int_or_none(code_value)
        platform_message = str(body.get("message", "")) or "no access_token in the answer"
        explanation = AUTH_FAILURES.get(code) if code is not None else None
        if code in (100016, 100007, 10004):
            kind = ErrorKind.PERMANENT
        elif code == 100001 or status >= 500 or status == 429:
            kind = ErrorKind.RETRY_LATER
        else:
            kind = ErrorKind.PERMANENT
        message = f"token refused for app {self.app_id}: {platform_message}"
        if explanation:
            message += f" — {explanation}"
        log.warning("qq token request failed: code=%s http=%s %s", code, status, platform_message)
        return AuthError(status, code, message, trace_id=_str_or_none(body.get("trace_id")), kind=kind)


def _seconds(value: Any) -> float:
    """`expires_in` is documented as a number but sent as a string ("7200")."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 7200.0
    return seconds if seconds > 0 else 7200.0


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
