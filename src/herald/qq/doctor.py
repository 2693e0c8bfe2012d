"""`herald doctor`: checks a `[qq]` configuration against the platform, one line per check.

    checks = await run_checks(config.qq)      # list[Check]; each ok / failed (with a fix) / skipped

In order: credentials (a token), API reachability (`GET /users/@me`), then for the websocket
transport the gateway (`/gateway/bot`, identify, READY) and the intents (on 4013/4014 each intent
asked for is tried alone, to name the refused ones); for the webhook transport, the local
receiver (a signed op 13 validation POSTed to it, and its answer's signature checked).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass

import aiohttp

from herald.config import QQConfig
from herald.core.clock import SystemClock
from herald.qq.api import QQApi
from herald.qq.auth import AuthError, TokenManager
from herald.qq.errors import QQApiError
from herald.qq.gateway import INTENT_CODES, GatewayClient, GatewayError, intent_bits, intent_names


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool | None  # None: skipped because an earlier check failed or it does not apply
    detail: str
    fix: str = ""

    def render(self) -> str:
        mark = {True: "✓", False: "✗", None: "-"}[self.ok]
        line = f"{mark} {self.name}: {self.detail}"
        if self.fix:
            line += f"\n    fix: {self.fix}"
        return line


async def run_checks(config: QQConfig, *, timeout_s: float = 10.0) -> list[Check]:
    checks: list[Check] = []
    async with aiohttp.ClientSession() as session:
        tokens = TokenManager(session, config.app_id, config.secret, config.token_url, SystemClock())
        api = QQApi(session, tokens, config.api_base, timeout_s=timeout_s)
        credentials = await _credentials(tokens)
        checks.append(credentials)
        checks.append(await _api(api, session, config, have_token=bool(credentials.ok)))
        api_ok = bool(credentials.ok and checks[-1].ok)
        if config.transport == "websocket":
            checks.extend(await _gateway(api, tokens, config, timeout_s, enabled=api_ok))
        else:
            checks.append(Check("gateway", None, "not used (transport = webhook)"))
            checks.append(await _webhook(session, config, timeout_s))
    return checks


async def _credentials(tokens: TokenManager) -> Check:
    try:
        await tokens.get()
    except AuthError as exc:
        if exc.status == 0:
            return Check(
                "credentials",
                False,
                f"cannot reach the token endpoint {tokens.token_url}",
                "check the network and [qq] token_url",
            )
        detail, _, fix = exc.message.partition(" — ")
        return Check(
            "credentials", False, f"{detail} (code {exc.code})", fix or "check [qq] app_id and secret"
        )
    return Check(
        "credentials", True, f"app {tokens.app_id} got an access token (valid {int(tokens.expires_in)} s)"
    )


async def _api(api: QQApi, session: aiohttp.ClientSession, config: QQConfig, *, have_token: bool) -> Check:
    if have_token:
        try:
            me = await api.me()
        except QQApiError as exc:
            if exc.status == 0:
                return _unreachable(config.api_base)
            return Check("api", False, f"GET /users/@me failed: {exc}", "check [qq] api_base")
        return Check(
            "api",
            True,
            f"{config.api_base} answers: bot {me.get('username', '?')!r} (id {me.get('id', '?')})",
        )
    # Without a token, any HTTP answer still proves the API is reachable.
    try:
        async with session.get(
            config.api_base.rstrip("/") + "/gateway", timeout=aiohttp.ClientTimeout(total=10)
        ) as resp:
            status = resp.status
    except (aiohttp.ClientError, TimeoutError):
        return _unreachable(config.api_base)
    return Check("api", True, f"{config.api_base} is reachable (HTTP {status} without a token)")


def _unreachable(api_base: str) -> Check:
    return Check(
        "api",
        False,
        f"cannot reach {api_base}",
        "check the network and [qq] api_base (https://api.sgroup.qq.com or https://api.bot.qq.com)",
    )


async def _gateway(
    api: QQApi, tokens: TokenManager, config: QQConfig, timeout_s: float, *, enabled: bool
) -> list[Check]:
    if not enabled:
        return [
            Check("gateway", None, "skipped (needs credentials and the API)"),
            Check("intents", None, "skipped"),
        ]
    try:
        info = await api.gateway_bot()
    except QQApiError as exc:
        return [
            Check("gateway", False, f"GET /gateway/bot failed: {exc}", "check [qq] api_base"),
            Check("intents", None, "skipped"),
        ]
    url = str(info.get("url", ""))
    error, user = await _identify(api, tokens, config.intents, config.shard, timeout_s)
    if error is None:
        name = user.get("username", "?")
        return [
            Check("gateway", True, f"{url}: identified, READY as {name!r}"),
            Check("intents", True, ", ".join(intent_names(config.intents)) or "none asked"),
        ]
    if error.code in INTENT_CODES:
        refused = [
            bit
            for bit in intent_bits(config.intents)
            if await intent_refused(api, tokens, bit, config.shard, timeout_s)
        ]
        names = ", ".join(f"{intent_names(b)[0]} (1<<{b.bit_length() - 1})" for b in refused) or "unknown"
        allowed = config.intents & ~sum(refused)
        return [
            Check("gateway", True, f"{url}: reachable; identify refused with {error.code}"),
            Check(
                "intents",
                False,
                f"not permitted for this bot: {names}",
                f"remove them from [qq] intents (intents = {allowed}) or apply for them on q.qq.com",
            ),
        ]
    return [
        Check("gateway", False, f"{url}: {error.message}", _gateway_fix(error)),
        Check("intents", None, "skipped"),
    ]


def _gateway_fix(error: GatewayError) -> str:
    if error.code in (4914, 4915):
        return "see the bot's status on q.qq.com"
    if error.code is None:
        return "check that the gateway URL from /gateway/bot is reachable from this machine"
    return "a close code Herald does not know: see the platform's gateway documentation"


async def _identify(
    api: QQApi, tokens: TokenManager, intents: int, shard: tuple[int, int], timeout_s: float
) -> tuple[GatewayError | None, dict[str, object]]:
    """Identifies once; returns (None, READY user) or the refusal."""
    gateway = GatewayClient(api, tokens, intents, shard, None, backoff_base_s=0.2)
    task = asyncio.create_task(gateway.run())
    ready = asyncio.create_task(gateway.wait_ready())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            return None, dict(gateway.bot_user)
        if task in done:
            exc = task.exception()
            if isinstance(exc, GatewayError):
                return exc, {}
            return GatewayError(None, f"gateway stopped: {exc}"), {}
        return GatewayError(None, f"no READY within {timeout_s:.0f} s"), {}
    finally:
        ready.cancel()
        await gateway.stop()
        with contextlib.suppress(asyncio.CancelledError, GatewayError, Exception):
            await asyncio.wait_for(task, timeout_s)


async def intent_refused(
    api: QQApi, tokens: TokenManager, bit: int, shard: tuple[int, int], timeout_s: float = 10.0
) -> bool:
    """Whether identifying with this one intent alone is refused (4013/4014)."""
    error, _ = await _identify(api, tokens, bit, shard, timeout_s)
    return error is not None and error.code in INTENT_CODES


async def _webhook(session: aiohttp.ClientSession, config: QQConfig, timeout_s: float) -> Check:
    host = "127.0.0.1" if config.webhook_host in ("0.0.0.0", "") else config.webhook_host
    url = f"http://{host}:{config.webhook_port}{config.webhook_path}"
    # The receiver's module (its web framework and crypto) is loaded for this check only: `herald
    # run` imports this module with the CLI and, in gateway mode, needs neither.
    from herald.qq.webhook import Signer

    signer = Signer(config.secret)
    plain_token = secrets.token_urlsafe(15)
    event_ts = str(int(time.time()))
    body = json.dumps({"d": {"plain_token": plain_token, "event_ts": event_ts}, "op": 13}).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "QQBot-Callback",
        "X-Bot-Appid": config.app_id,
        "X-Signature-Timestamp": event_ts,
        "X-Signature-Ed25519": signer.sign(event_ts.encode() + body),
    }
    try:
        async with session.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            status = resp.status
            raw = await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Check(
            "webhook",
            False,
            f"nothing answers at {url} ({type(exc).__name__})",
            "start Herald with transport = webhook (`herald run`), and check [qq] webhook_host/port/path",
        )
    if status == 401:
        return Check(
            "webhook",
            False,
            f"{url} refused a request signed with [qq] secret (HTTP 401)",
            "the receiver runs with another secret: restart it with this configuration",
        )
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if status != 200 or not isinstance(answer, dict):
        return Check(
            "webhook", False, f"{url} answered HTTP {status} without a JSON object", "check webhook_path"
        )
    signature = str(answer.get("signature", ""))
    if answer.get("plain_token") != plain_token or not signer.verify(
        (event_ts + plain_token).encode(), signature
    ):
        return Check(
            "webhook",
            False,
            f"{url} answered op 13 with a wrong plain_token or signature",
            "the receiver signs with another key: check [qq] secret",
        )
    return Check(
        "webhook",
        True,
        f"{url} validates callbacks (op 13 signature checks out); on q.qq.com the public callback URL "
        "must be HTTPS on port 80, 443, 8080 or 8443 and reach this receiver",
    )
