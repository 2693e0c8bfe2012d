"""HTTP POST as the implementation runs it (communication/http-post.md): each event POSTed as JSON
to the bot's URL with `X-Self-ID` and, with a secret, `X-Signature: sha1=<HMAC-SHA1 of the body>`;
a JSON answer is a quick operation (`Actions.quick_operation`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

import aiohttp

from herald.sim.onebot.account import Account
from herald.sim.onebot.actions import Actions

log = logging.getLogger(__name__)


class Poster:
    def __init__(self, account: Account, actions: Actions) -> None:
        self.account = account
        self.actions = actions
        self.posted = 0
        self.failures = 0
        self.last_error = ""
        self._http: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.account.settings.post_url)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def post(self, event: dict[str, Any]) -> str | None:
        """POST one event; None when it was taken (and its quick operation done), else why not."""
        settings = self.account.settings
        if self._http is None:
            self._http = aiohttp.ClientSession()
        body = json.dumps(event, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "X-Self-ID": str(settings.self_id)}
        if settings.secret:
            digest = hmac.new(settings.secret.encode(), body, hashlib.sha1).hexdigest()
            headers["X-Signature"] = f"sha1={digest}"
        timeout = aiohttp.ClientTimeout(total=settings.post_timeout_s or None)
        try:
            async with self._http.post(
                settings.post_url, data=body, headers=headers, timeout=timeout
            ) as resp:
                raw = await resp.read()
                if resp.status not in (200, 204):
                    return self._failed(f"HTTP {resp.status} from {settings.post_url}: {raw[:200]!r}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._failed(f"POST to {settings.post_url} failed: {exc or type(exc).__name__}")
        self.posted += 1
        if resp.status == 200 and raw.strip():
            try:
                operation = json.loads(raw)
            except ValueError:
                return self._failed(f"the quick operation is not JSON: {raw[:200]!r}")
            if isinstance(operation, dict) and operation:
                self.account.actions.append(
                    {
                        "action": ".handle_quick_operation",
                        "params": operation,
                        "retcode": 0,
                        "via": "http-post",
                    }
                )
                self.actions.quick_operation(event, operation)
        return None

    def _failed(self, why: str) -> str:
        self.failures += 1
        self.last_error = why
        self.account.actions.append({"action": "(http post)", "params": {}, "retcode": -1, "via": "http-post",
                                     "error": why})  # fmt: skip
        log.warning("OneBot sim: %s", why)
        return why
