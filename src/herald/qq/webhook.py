"""The webhook receiver: an ASGI app the platform POSTs events to.

    receiver = WebhookReceiver(app_id, secret, on_dispatch, clock=clock)
    web_app.mount("/qq/webhook", receiver.app)      # or: webhook_app(app_id, secret, on_dispatch)
    ...
    await receiver.close()                          # handles what was accepted, then stops

Every request is checked before anything in it is parsed: the body size (413 past `max_body`),
then the Ed25519 signature in `X-Signature-Ed25519` over `X-Signature-Timestamp` + the raw body,
with the public key derived from the app secret (seed = secret repeated to ≥ 32 bytes, cut to
32). A missing, forged or tampered signature, or a timestamp further than `max_age_s` from wall
time, answers 401; a signed body that is not a valid envelope answers 400. Each rejection is
logged (without the secret or the body).

Op 13 (callback URL validation) is answered with `{"plain_token", "signature"}` signed over
`event_ts + plain_token`. The documentation does not say whether the platform signs op 13, so an
unsigned one is answered too, but only when `event_ts` is all digits and `plain_token` is a plain
token (letters, digits, `._-`): a signature over such a string can never pass as a push, whose
signed message is a timestamp followed by a JSON object. Anything else unsigned is refused, so the
validation answer cannot be used as a signing oracle to forge pushes.

Op 0 pushes are queued; one worker task hands them to `on_dispatch(envelope)` in arrival order
(the gateway's contract), and each push is answered only once its turn is done: 200 `{"op": 12}`
when `on_dispatch` returned (the event is stored), 503 when it raised, so the platform redelivers
it (nothing inbound is lost). To keep the order, after a failed push X every other push is
answered 503 too (the platform redelivers those later) until X arrives again and is stored, or X
failed `BUG_ATTEMPTS` times for a reason other than storage (a bug: X is given up with an ERROR
and 200), or `hold_s` passed without X coming back (a WARNING: order may not hold from there).

Bodies are parsed with a nesting limit: a deeply nested body is a 400 like any other malformed
one, never a RecursionError; a timestamp that is not a finite number (`inf`, `nan`) is a 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from herald.core.clock import Clock, SystemClock
from herald.qq.inbound import BUG_ATTEMPTS, error_cause, storage_unavailable

log = logging.getLogger(__name__)

_DIGITS = re.compile(r"[0-9]{1,20}")
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,256}")

OnDispatch = Callable[[dict[str, Any]], Awaitable[None]]

SEED_SIZE = 32
MAX_BODY = 1 << 20  # 1 MiB: real pushes are a few KB
MAX_AGE_S = 300.0
SIGNATURE_HEADER = "X-Signature-Ed25519"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
HOLD_S = 300.0  # how long later pushes wait (503) for a failed push to be redelivered


def seed_from_secret(secret: str) -> bytes:
    """The Ed25519 seed: the secret repeated until it is at least 32 bytes, cut to 32 (§3.3)."""
    if not secret:
        raise ValueError("an empty app secret cannot seed a signing key")
    seed = secret
    while len(seed) < SEED_SIZE:
        seed += seed
    return seed[:SEED_SIZE].encode()


class Signer:
    """The bot's Ed25519 key pair, derived from its app secret."""

    def __init__(self, secret: str | SecretStr) -> None:
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        self._private = Ed25519PrivateKey.from_private_bytes(seed_from_secret(raw))
        self.public: Ed25519PublicKey = self._private.public_key()

    def __repr__(self) -> str:
        return "Signer(secret=**********)"

    def sign(self, message: bytes) -> str:
        return self._private.sign(message).hex()

    def validation_signature(self, event_ts: str, plain_token: str) -> str:
        return self.sign((event_ts + plain_token).encode())

    def verify(self, message: bytes, signature_hex: str) -> bool:
        """The check the docs prescribe: 64 bytes, top 3 bits of the last byte clear, Ed25519."""
        try:
            signature = bytes.fromhex(signature_hex)
        except ValueError:
            return False
        if len(signature) != 64 or signature[63] & 224:
            return False
        try:
            self.public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class _Rejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WebhookReceiver:
    def __init__(
        self,
        app_id: str,
        secret: str | SecretStr,
        on_dispatch: OnDispatch,
        *,
        clock: Clock | None = None,
        max_age_s: float | None = MAX_AGE_S,
        max_body: int = MAX_BODY,
        path: str = "/",
        wall_time: Callable[[], float] = time.time,
        hold_s: float = HOLD_S,
    ) -> None:
        self.app_id = app_id
        self.signer = Signer(secret)
        self.on_dispatch = on_dispatch
        # `clock` is accepted for symmetry with the other parts, but freshness is judged on wall
        # time: the platform stamps pushes with wall time, and a virtual clock that tests move
        # by hours must not make every push look stale.
        self.clock: Clock = clock or SystemClock()
        self.wall_time = wall_time
        self.max_age_s = max_age_s
        self.max_body = max_body
        self.path = path
        self.hold_s = hold_s
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[None]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        # The push that failed last and has not been stored since: (id, first failure, attempts).
        self._held: tuple[str, float, int] | None = None
        # Counters (observability, tests).
        self.refused = 0  # pushes answered 503 (not stored; the platform redelivers)
        self.accepted = 0
        self.rejected = 0
        self.validations = 0
        self.app = Starlette(routes=[Route(path, self.endpoint, methods=["POST"])])

    def __repr__(self) -> str:
        return f"WebhookReceiver(app_id={self.app_id!r}, path={self.path!r})"

    # -- HTTP ---------------------------------------------------------------------------------
    async def endpoint(self, request: Request) -> Response:
        try:
            body = await self._read_body(request)
            if self._unsigned(request):
                return self._unsigned_validation(body)
            self._verify(request, body)
            envelope = self._envelope(body)
        except _Rejected as exc:
            self.rejected += 1
            client = request.client.host if request.client else "?"
            log.warning(
                "qq webhook: rejected a request from %s: %s (HTTP %s)", client, exc.reason, exc.status
            )
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        op = envelope["op"]
        if op == 13:
            return self._validate(envelope)
        if op == 0:
            return await self._push(envelope)
        return JSONResponse({"op": 12})

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise _Rejected(400, "bad Content-Length")
            if int(declared) > self.max_body:
                raise _Rejected(413, f"body over {self.max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body:
                    raise _Rejected(413, f"body over {self.max_body} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise _Rejected(400, "client disconnected mid-body") from None
        return b"".join(chunks)

    @staticmethod
    def _unsigned(request: Request) -> bool:
        return not request.headers.get(SIGNATURE_HEADER) and not request.headers.get(TIMESTAMP_HEADER)

    def _unsigned_validation(self, body: bytes) -> Response:
        """Answer an unsigned op 13 whose answer cannot be replayed as a push signature."""
        try:
            envelope = self._envelope(body)
        except _Rejected as exc:
            if exc.status == 400 and "nested" in exc.reason:
                raise  # not a body anyone could have signed: a bad request, whoever sent it
            raise _Rejected(401, "missing signature headers") from None
        d = envelope.get("d")
        if (
            envelope["op"] != 13
            or not isinstance(d, dict)
            or not _DIGITS.fullmatch(str(d["event_ts"]))
            or not _PLAIN_TOKEN.fullmatch(str(d["plain_token"]))
        ):
            raise _Rejected(401, "missing signature headers")
        return self._validate(envelope)

    def _verify(self, request: Request, body: bytes) -> None:
        signature = request.headers.get(SIGNATURE_HEADER)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise _Rejected(401, "missing signature headers")
        if not self.signer.verify(timestamp.encode() + body, signature):
            raise _Rejected(401, "bad signature")
        if self.max_age_s is not None:
            try:
                sent_at = float(timestamp)
            except ValueError:
                raise _Rejected(401, "timestamp is not a number") from None
            if not math.isfinite(sent_at):
                raise _Rejected(401, "timestamp is not a finite number")
            age = self.wall_time() - sent_at
            if abs(age) > self.max_age_s:
                raise _Rejected(401, f"stale timestamp ({int(age)} s old)")

    @staticmethod
    def _envelope(body: bytes) -> dict[str, Any]:
        try:
            envelope = json.loads(body)
        except ValueError:
            raise _Rejected(400, "body is not JSON") from None
        except RecursionError:
            raise _Rejected(400, "body is JSON nested too deeply") from None
        if not isinstance(envelope, dict):
            raise _Rejected(400, "body is not a JSON object")
        op = envelope.get("op")
        if not isinstance(op, int) or isinstance(op, bool):
            raise _Rejected(400, "no integer op")
        if op == 13:
            d = envelope.get("d")
            if (
                not isinstance(d, dict)
                or not isinstance(d.get("plain_token"), str)
                or not isinstance(d.get("event_ts"), str | int)
            ):
                raise _Rejected(400, "op 13 without d.plain_token/d.event_ts")
        elif op == 0:
            if not isinstance(envelope.get("t"), str) or "d" not in envelope:
                raise _Rejected(400, "op 0 without t/d")
        return envelope

    def _validate(self, envelope: dict[str, Any]) -> Response:
        d = envelope["d"]
        plain_token = str(d["plain_token"])
        event_ts = str(d["event_ts"])
        self.validations += 1
        log.info("qq webhook: answered a callback URL validation (op 13)")
        return JSONResponse(
            {"plain_token": plain_token, "signature": self.signer.validation_signature(event_ts, plain_token)}
        )

    # -- processing ---------------------------------------------------------------------------
    async def _push(self, envelope: dict[str, Any]) -> Response:
        """Answered once the push is handled: 200 if stored, 503 (redeliver) if not."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((envelope, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="qq-webhook-dispatch")
        try:
            # Shielded: a platform that gives up waiting must not cancel the handling half-way.
            await asyncio.shield(future)
        except _NotStored as exc:
            self.refused += 1
            return JSONResponse({"error": f"not stored: {exc.reason}; redeliver"}, status_code=503)
        self.accepted += 1
        return JSONResponse({"op": 12})

    async def _work(self) -> None:
        while True:
            envelope, future = await self._queue.get()
            try:
                await self._handle(envelope)
            except _NotStored as exc:
                future.set_exception(exc)
            except BaseException as exc:
                future.set_exception(_NotStored(f"{type(exc).__name__}"))
                raise
            else:
                future.set_result(None)
            finally:
                self._queue.task_done()

    async def _handle(self, envelope: dict[str, Any]) -> None:
        envelope_id = str(envelope.get("id") or "")
        what = f"{envelope.get('t')} {envelope_id or '(no id)'}"
        held = self._held
        if held is not None and held[0] != envelope_id:
            if self.wall_time() - held[1] <= self.hold_s:
                raise _NotStored(f"waiting for {held[0]}, which was not stored, to be redelivered first")
            log.warning(
                "qq webhook: %s was not redelivered within %.0f s; taking later pushes again, so "
                "it may be missing or arrive out of order",
                held[0],
                self.hold_s,
            )
            self._held = held = None
        try:
            await self.on_dispatch(envelope)
        except Exception as exc:
            attempts = held[2] + 1 if held is not None else 1
            first = held[1] if held is not None else self.wall_time()
            cause = error_cause(exc)
            if attempts >= BUG_ATTEMPTS and not storage_unavailable(exc):
                self._held = None
                log.error(
                    "qq webhook: %s failed %d times (%s): a bug, not storage; giving it up so that "
                    "later pushes are handled. The event is NOT stored",
                    what,
                    attempts,
                    cause,
                    exc_info=exc,
                )
                return
            self._held = (envelope_id, first, attempts)
            log.warning(
                "qq webhook: %s was not stored (%s); answered 503 so the platform redelivers it, "
                "and later pushes wait for it",
                what,
                cause,
                exc_info=None if storage_unavailable(exc) else exc,
            )
            raise _NotStored(cause) from None
        if held is not None:
            log.info("qq webhook: %s stored on redelivery; taking later pushes again", what)
        self._held = None

    async def drain(self) -> None:
        """Waits until every accepted push has been handed to `on_dispatch`."""
        await self._queue.join()

    async def close(self) -> None:
        await self.drain()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker


class _NotStored(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def webhook_app(
    app_id: str,
    secret: str | SecretStr,
    on_dispatch: OnDispatch,
    *,
    clock: Clock | None = None,
    max_age_s: float | None = MAX_AGE_S,
    max_body: int = MAX_BODY,
) -> Starlette:
    """A Starlette app serving the receiver at "/"; the receiver is `app.state.receiver`."""
    receiver = WebhookReceiver(
        app_id, secret, on_dispatch, clock=clock, max_age_s=max_age_s, max_body=max_body
    )
    receiver.app.state.receiver = receiver
    return receiver.app
