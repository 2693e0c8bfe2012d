"""`QQPlatform`: Herald's `core.Platform` for the QQ Official Bot platform.

Inbound: gateway (or webhook) → `InboundPipeline` (parse, dedup) → reply ledger records the
anchor → the app's sink. Outbound: one outbox item → render into parts → for each part the
ledger plans a route (reserved: persisted, with its msg_seq) → the API → on a dead-anchor code the
anchor is marked and the part re-planned (bounded) → `Sent`, or `DeliveryError` whose kind comes
from the one error table in `qq/errors.py`.

The adapter composes: bodies are built by `render.py` (parts and their JSON), rate limits kept by
`ratelimit.py`, routes planned by the reply ledger (`reply.py`), media uploaded by `media.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiohttp

from herald.config import QQConfig
from herald.core.clock import Clock, SystemClock
from herald.core.errors import DeliveryError, ErrorKind
from herald.core.events import InboundEvent, Interaction, InteractionAnswer
from herald.core.platform import (
    Details,
    Endpoint,
    EventSink,
    Learned,
    NextSend,
    Reach,
    SendRequest,
    Sent,
    StreamFrame,
    TransportHealth,
)
from herald.core.target import DEFAULT_PLATFORM, Scene, Target, check_platform_name
from herald.qq.api import QQApi
from herald.qq.auth import TokenManager
from herald.qq.capabilities import (
    BOT_KEYBOARD_CODES,
    BOT_MARKDOWN_CODES,
    KEYBOARD,
    MARKDOWN,
    PROACTIVE,
    PROACTIVE_EVIDENCE,
    WITHDRAWN_WORDS,
    Capabilities,
    intent_capability,
)
from herald.qq.errors import QQApiError, meaning
from herald.qq.inbound import InboundPipeline
from herald.qq.media import MediaRefused, MediaUploader, check_scene
from herald.qq.ratelimit import SlidingWindow, previous_run_ended
from herald.qq.render import Part, message_body, render
from herald.qq.reply import (
    DeliveryMode,
    OutboundId,
    ReplyLedger,
    Route,
    Undeliverable,
    Unknown,
    Wait,
)
from herald.store.db import Database

log = logging.getLogger(__name__)

# How often one part may be re-planned after its route died before the item is retried later.
MAX_REPLANS = 8
# Interactive recall refusals: this period's recall is used; recall is not available to the user.
RECALL_PERIOD_USED = 40034122
RECALL_NOT_SUPPORTED = 40034123
# A proactive rate wait longer than this is handed back to the outbox as retry-later.
MAX_INLINE_WAIT_S = 90.0
# `/v2/users/{openid}/stream_messages` takes 50 requests a second per bot.
STREAM_QPS = 50


class QQPlatform:
    def __init__(
        self,
        config: QQConfig,
        db: Database,
        clock: Clock | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        rate_limits: bool = True,
        name: str = DEFAULT_PLATFORM,
    ) -> None:
        # The instance's name: every target this adapter hands out or is handed carries it.
        self.name = check_platform_name(name)
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.delivery = config.delivery
        self.capabilities = Capabilities(db, config.app_id, self.clock)
        self.ledger = ReplyLedger(db, self.clock, self.delivery, self.capabilities)
        self.targets = self.ledger.targets  # what each target takes, learned from the answers
        self._db = db
        self._session = session
        self._own_session = session is None
        self._rate_limits = rate_limits
        self.tokens: TokenManager | None = None
        self.api: QQApi | None = None
        self.media: MediaUploader | None = None
        self.pipeline: InboundPipeline | None = None
        self._sink: EventSink | None = None
        self._transport: asyncio.Task[None] | None = None
        self._stoppers: list[Any] = []
        self._stopped = False
        # Targets whose clients refused buttons: their keyboards go as numbered choices from now on.
        self._keyboard_refused: set[str] = set()
        self.gateway: Any = None  # herald.qq.gateway.GatewayClient when the transport is websocket
        self.webhook: Any = None  # herald.qq.webhook.WebhookReceiver when the transport is webhook
        self.webhook_port: int | None = None  # once the app serves the webhook
        # The real clock can tell when a previous run last sent (before this process started, or
        # this process's last answer): a first reply long after that need not wait a window.
        # Another clock (a test's virtual one) cannot, so its windows wait one from now.
        since = previous_run_ended() if isinstance(self.clock, SystemClock) else None
        self._limits = {
            "message": SlidingWindow(
                self.clock, int(self.delivery.message_qps), 1.0, primed=True, since=since
            ),
            "c2c_proactive": SlidingWindow(
                self.clock, int(self.delivery.c2c_bot_qps), 1.0, primed=True, since=since
            ),
            "group_proactive": SlidingWindow(self.clock, self.delivery.group_bot_per_minute, 60.0),
            "stream": SlidingWindow(self.clock, STREAM_QPS, 1.0, primed=True, since=since),
        }
        self._share = 1  # the processes the bot-wide windows are shared among (share_rates)

    # --- lifecycle -----------------------------------------------------------------------------

    async def connect(self) -> QQApi:
        """Outbound only: token manager and API client (what `send` needs). Idempotent."""
        if self.api is None:
            if self._session is None:
                self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
            self.tokens = TokenManager(
                self._session,
                self.config.app_id,
                self.config.secret,
                self.config.token_url,
                self.clock,
            )
            self.api = QQApi(self._session, self.tokens, self.config.api_base, clock=self.clock)
            self.media = MediaUploader(self.api, self._db, self.clock)
        if not self.capabilities.loaded:
            await self.capabilities.load()
        return self.api

    async def start(self, sink: EventSink) -> None:
        api = await self.connect()
        self._sink = sink
        self.pipeline = InboundPipeline(api, self._on_event, self.clock)
        if self.config.transport == "webhook":
            await self._start_webhook()
        else:
            from herald.qq.gateway import GatewayClient
            from herald.qq.resume import ResumePoint

            assert self.tokens is not None
            shard = self.config.shard
            gateway = GatewayClient(
                api,
                self.tokens,
                self._intents(),
                shard,
                self.pipeline.handle_dispatch,
                self.clock,
                # Persisted so a restart resumes and the platform replays what arrived meanwhile.
                resume_point=ResumePoint(self._db, self.config.app_id, shard, self.clock),
                order_key=self.pipeline.order_key,
            )
            self.gateway = gateway
            self._stoppers.append(gateway.stop)
            self._transport = asyncio.create_task(self._run_gateway(gateway), name="qq-gateway")

    def _intents(self) -> int:
        """The configured intents but those the platform refused this bot (not asked again)."""
        from herald.qq.gateway import intent_bits, intent_names

        intents = self.config.intents
        for bit in intent_bits(intents):
            name = intent_names(bit)[0]
            learned = self.capabilities.refused(intent_capability(name))
            if learned is not None:
                intents &= ~bit
                log.warning(
                    "qq gateway: not asking for intent %s: %s; `herald doctor --forget %s` once the "
                    "platform grants it",
                    name,
                    learned.reason,
                    learned.capability,
                )
        return intents

    async def _run_gateway(self, gateway: Any) -> None:
        """Run the gateway; on 4014 (an intent not permitted) find which ones by asking for each
        alone, remember them, and go on without them."""
        from herald.qq.doctor import intent_refused
        from herald.qq.gateway import GatewayError, intent_bits, intent_names

        while True:
            try:
                await gateway.run()
                return
            except GatewayError as error:
                if error.code != 4014 or self._stopped:
                    raise
                api, tokens = self.api, self.tokens
                assert api is not None and tokens is not None
                asked = intent_bits(gateway.intents)
                refused = [bit for bit in asked if await intent_refused(api, tokens, bit, self.config.shard)]
                if not refused or len(refused) == len(asked):
                    raise
                for bit in refused:
                    name = intent_names(bit)[0]
                    await self.capabilities.refuse(
                        intent_capability(name),
                        f"the gateway closed with 4014 (intent not permitted) when {name} was asked for",
                        4014,
                    )
                    gateway.intents &= ~bit
                log.warning(
                    "qq gateway: going on without %s (not permitted to this bot)",
                    ", ".join(intent_names(sum(refused))),
                )

    async def wait_ready(self) -> None:
        """Returns once the gateway session is identified (at once for the webhook transport)."""
        if self.gateway is not None:
            await self.gateway.wait_ready()

    def health(self) -> TransportHealth:
        last_event_at = self.pipeline.last_event_at if self.pipeline is not None else None
        expires_in = self.tokens.expires_in if self.tokens is not None and self.tokens.has_token else None
        if self.gateway is not None:
            opened = self.gateway.identifies + self.gateway.resumes
            return TransportHealth(
                "websocket",
                ready=self.gateway.ready.is_set(),
                reconnects=max(0, opened - 1),
                detail=f"session {self.gateway.session_id or 'none'}, last s {self.gateway.seq}",
                last_event_at=last_event_at,
                credential_expires_in_s=expires_in,
                renews_credential=True,
            )
        if self.webhook is not None:
            listening = self.webhook_port is not None
            return TransportHealth(
                "webhook",
                ready=listening,
                detail=f"port {self.webhook_port}, path {self.config.webhook_path}"
                if self.webhook_port is not None
                else f"not served yet (path {self.config.webhook_path})",
                last_event_at=last_event_at,
                credential_expires_in_s=expires_in,
                renews_credential=True,
            )
        return TransportHealth(self.config.transport, ready=False, detail="not started")

    def learned(self) -> tuple[Learned, ...]:
        return self.capabilities.all()

    async def reach(self, target: Target) -> Reach:
        return await self.ledger.reach(target)

    async def forecast(
        self, target: Target, times: Sequence[datetime], *, held: int = 0
    ) -> tuple[NextSend, ...]:
        return await self.ledger.forecast(target, times, held=held)

    async def item_details(self, item_id: str) -> tuple[Details, ...]:
        return await self.ledger.reservations(item_id)

    async def _start_webhook(self) -> None:
        from herald.qq.webhook import WebhookReceiver

        assert self.pipeline is not None
        self.webhook = WebhookReceiver(
            self.config.app_id,
            self.config.secret,
            self.pipeline.handle_dispatch,
            clock=self.clock,
            path=self.config.webhook_path,
        )
        self._stoppers.append(self.webhook.close)

    def endpoints(self) -> tuple[Endpoint, ...]:
        """The webhook, for the app to serve (the gateway needs none)."""
        if self.webhook is None:
            return ()
        return (
            Endpoint(
                self.webhook.app,
                self.config.webhook_host,
                self.config.webhook_port,
                "[qq] webhook_port",
                reuse_port=self.config.webhook_reuse_port,
                bound=self._listening,
            ),
        )

    def _listening(self, port: int) -> None:
        self.webhook_port = port

    async def stop(self) -> None:
        self._stopped = True
        self.webhook_port = None
        for stopper in reversed(self._stoppers):
            with contextlib.suppress(Exception):
                await stopper()
        self._stoppers.clear()
        if self._transport is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._transport, timeout=10)
            self._transport = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
        self.api = None

    async def acknowledge(self, interaction: Interaction, answer: InteractionAnswer) -> None:
        """Answer a click (`PUT /interactions/{id}`), once; a failure is logged."""
        if self.pipeline is not None:
            await self.pipeline.acknowledge(interaction, answer)

    def share_rates(self, processes: int) -> None:
        """Keep to 1/`processes` of the bot-wide windows (every message endpoint's rate, the
        proactive rates, the stream rate): the platform counts the bot's sends from every
        process together. The per-target windows need no share: they are counted in the
        database, which every process reads."""
        if processes == self._share:
            return
        log.info("bot-wide send rates: this process keeps to 1/%d of each", processes)
        self._share = processes
        for window in self._limits.values():
            window.share(processes)

    async def _on_event(self, event: InboundEvent) -> None:
        # QQ's parsers know scenes, not instances: the event's target is this instance's.
        if event.target.platform != self.name:
            event = dataclasses.replace(event, target=event.target.on(self.name))
        # The anchor is durable before the app sees the event, so any reply can use it.
        await self.ledger.record(event)
        if self._sink is not None:
            await self._sink(event)

    # --- streaming (C2C only: the platform has no group or guild stream endpoint) ----------------

    def streams_to(self, target: Target) -> bool:
        return target.scene is Scene.C2C

    async def stream_frame(
        self,
        request: SendRequest,
        handle: str | None,
        text: str,
        *,
        final: bool,
        one_unrecorded: bool = False,
    ) -> StreamFrame:
        """One frame of a C2C stream in `replace` mode: `content_raw` is the whole text so far.

        The stream is one reply: its route (anchor and msg_seq) is the reservation of the item's
        part 0, made here for the opening frame and kept in `handle` with the stream's id and the
        next `index`. Every frame carries the same msg_seq.
        """
        if self._stopped:
            raise DeliveryError(ErrorKind.RETRY_LATER, "the QQ platform adapter is stopped")
        api = await self.connect()
        target = request.target
        if not self.streams_to(target):
            raise DeliveryError(ErrorKind.BUG, f"{target.scene.value} has no stream endpoint")
        route: Route | None = None
        if handle is None:
            plan = await self.ledger.plan(request.item_id, 0, target, request.trigger_id)
            if not isinstance(plan, Route):
                raise DeliveryError(ErrorKind.RETRY_LATER, f"not streamed: {plan.reason}")
            if plan.mode not in (DeliveryMode.PASSIVE, DeliveryMode.EVENT) or plan.sent_id is not None:
                raise DeliveryError(ErrorKind.UNDELIVERABLE, "not streamed: no reply anchor to stream on")
            route = plan
            if not route.requested:
                await self.ledger.mark_requested(request.item_id, 0)
            state: dict[str, Any] = {
                "mode": route.mode.value,
                "anchor": route.anchor_id,
                "msg_seq": route.msg_seq,
                "id": None,
                "index": 0,
                "ref": None,
            }
        else:
            state = json.loads(handle)
        anchor_field = "msg_id" if state["mode"] == DeliveryMode.PASSIVE.value else "event_id"
        body: dict[str, Any] = {
            "input_mode": "replace",
            "input_state": 10 if final else 1,
            "index": state["index"],
            "content_type": "text",
            "content_raw": text,
            anchor_field: state["anchor"],
            "msg_seq": state["msg_seq"],
        }
        if state["id"]:
            body["stream_msg_id"] = state["id"]
        window = self._limits["stream"] if self._rate_limits else None
        if window is not None:
            await window.acquire()
        try:
            try:
                answer = await api.stream_message(target.id, body)
            except QQApiError as error:
                if not one_unrecorded or route is not None or error.kind is not ErrorKind.BUG:
                    raise
                # The unrecorded frame did arrive, so its index is taken: the next one.
                state["index"] += 1
                body["index"] = state["index"]
                answer = await api.stream_message(target.id, body)
        except QQApiError as error:
            if route is not None and not error.maybe_sent:
                # The opening frame was refused: the reservation is free for a plain send.
                if error.kind is ErrorKind.REPLAN:
                    await self.ledger.route_died(request.item_id, 0, route, error.code, error.message)
                else:
                    await self.ledger.answered(request.item_id, 0)
            raise error.to_delivery_error() from None
        finally:
            if window is not None:
                window.release()
        if not state["id"]:
            state["id"] = str(answer.get("id") or "")
            ext_info = answer.get("ext_info")
            ref = ext_info.get("ref_idx") if isinstance(ext_info, dict) else None
            state["ref"] = str(ref) if ref else None
        state["index"] += 1
        route = Route(DeliveryMode(state["mode"]), state["anchor"], state["msg_seq"])
        sent = route.sent((state["id"],) if state["id"] else (), state["ref"])
        return StreamFrame(json.dumps(state), sent)

    # --- sending -------------------------------------------------------------------------------

    async def send(self, request: SendRequest) -> Sent:
        if self._stopped:
            raise DeliveryError(ErrorKind.RETRY_LATER, "the QQ platform adapter is stopped")
        api = await self.connect()
        target = request.target
        markdown_ok = not await self.targets.markdown_refused(target)
        parts = self._render(request, markdown_ok)
        if not parts:
            raise DeliveryError(ErrorKind.BUG, "nothing to send: the message renders to no content")
        # Uploads come before any route is reserved: media the platform would refuse (too large,
        # a kind the scene does not take, voice that cannot be made SILK) fails the item here,
        # with nothing sent and no anchor spent.
        file_infos = await self._upload_media(target, parts)
        ids: list[str] = []
        first: Route | None = None
        first_ref: str | None = None
        for index, part in enumerate(parts):
            route, sent_id, ref = await self._send_part(
                api, request, index, len(parts), part, file_infos.get(index)
            )
            if first is None:
                first, first_ref = route, ref
            if sent_id:
                ids.append(sent_id)
        assert first is not None
        if first_ref is None and ids and target.scene in (Scene.CHANNEL, Scene.DM):
            first_ref = ids[0]  # guild messages are quoted by their id
        return first.sent(tuple(ids), first_ref)

    async def _upload_media(self, target: Target, parts: list[Part]) -> dict[int, str]:
        """The `file_info` of each media part (C2C and groups); guild scenes are only checked."""
        file_infos: dict[int, str] = {}
        for index, part in enumerate(parts):
            media = part.media
            if part.kind != "media" or media is None:
                continue
            try:
                if target.scene in (Scene.CHANNEL, Scene.DM):
                    check_scene(media.kind, target.scene, by_url=media.url is not None)
                    continue
                assert self.media is not None
                file_infos[index] = await self.media.file_info(target, media)
            except MediaRefused as refused:
                raise DeliveryError(ErrorKind.PERMANENT, str(refused)) from None
            except QQApiError as error:
                delivery = error.to_delivery_error()
                delivery.reason = f"uploading {media.kind.value} {media.file_name} failed: {delivery.reason}"
                raise delivery from None
        return file_infos

    def _render(self, request: SendRequest, markdown_ok: bool) -> list[Part]:
        return render(
            request.segments,
            request.target.scene,
            markdown_ok=markdown_ok,
            url_policy=self.delivery.group_url_policy,
            max_chars=self.delivery.max_text_chars,
            keyboard_ok=self.delivery.keyboards
            and request.target.key not in self._keyboard_refused
            and self.capabilities.refused(KEYBOARD) is None,
        )

    async def _send_part(
        self, api: QQApi, request: SendRequest, index: int, total: int, part: Part, file_info: str | None
    ) -> tuple[Route, str | None, str | None]:
        """The route this part took, its platform id, and its quoting handle (`ext_info.ref_idx`)."""
        target = request.target
        where = f" (part {index + 1} of {total})" if total > 1 else ""
        for _ in range(MAX_REPLANS):
            plan = await self.ledger.plan(request.item_id, index, target, request.trigger_id)
            if isinstance(plan, Unknown):
                raise DeliveryError(ErrorKind.OUTCOME_UNKNOWN, plan.reason + where)
            if isinstance(plan, Undeliverable):
                raise DeliveryError(ErrorKind.UNDELIVERABLE, plan.reason + where)
            if isinstance(plan, Wait):
                await self._wait(plan)
                continue
            route = plan
            if route.sent_id is not None:  # an earlier attempt of this item delivered this part
                return route, route.sent_id or None, None
            if route.mode is DeliveryMode.PROACTIVE:
                if not await self._group_allows_proactive(api, target):
                    await self.ledger.route_died(request.item_id, index, route, None, "proactive not allowed")
                    continue
                # Counted and marked requested when made, after every wait, on every attempt.
                refusal = await self.ledger.begin_proactive(request.item_id, index, target)
                if isinstance(refusal, Undeliverable):
                    raise DeliveryError(ErrorKind.UNDELIVERABLE, refusal.reason + where)
                if isinstance(refusal, Wait):
                    await self._wait(refusal)
                    continue
            elif not route.requested:
                await self.ledger.mark_requested(request.item_id, index)
            try:
                answer = await self._post(api, target, route, part, file_info)
            except QQApiError as error:
                outcome = await self._after_error(request, index, route, part, error)
                if outcome == "delivered":
                    await self.ledger.delivered(request.item_id, index, None)
                    return route, None, None
                if outcome == "as_text":
                    part = part.without_keyboard(markdown=False)
                    continue
                if outcome == "no_keyboard":
                    part = part.without_keyboard(markdown=True)
                    continue
                if outcome == "replan":
                    continue
                if outcome == "unknown":
                    raise self._unknown(error, route, where) from None
                raise self._delivery_error(error, where) from None
            sent_id = answer.get("id")
            outbound = OutboundId(str(sent_id)) if sent_id else None
            if route.mode is DeliveryMode.PROACTIVE:
                await self.capabilities.accepted(PROACTIVE)
            if route.mode in (DeliveryMode.PROACTIVE, DeliveryMode.RECALL):
                # A proactive or recall resend has no platform dedup, so this part's arrival must be
                # written down; a passive part's resend reuses its (msg_id, msg_seq) and gets 40054005.
                await self.ledger.delivered(request.item_id, index, outbound)
            ext_info = answer.get("ext_info")
            ref = ext_info.get("ref_idx") if isinstance(ext_info, dict) else None
            return route, outbound.value if outbound else None, str(ref) if ref else None
        raise DeliveryError(ErrorKind.RETRY_LATER, f"every route died while planning{where}; will retry")

    async def _wait(self, plan: Wait) -> None:
        if plan.seconds > MAX_INLINE_WAIT_S:
            raise DeliveryError(ErrorKind.RETRY_LATER, plan.reason, retry_after=plan.seconds)
        await self.clock.sleep(plan.seconds)

    def _unknown(self, error: QQApiError, route: Route, where: str) -> DeliveryError:
        if route.mode in (DeliveryMode.PROACTIVE, DeliveryMode.RECALL):
            why = f"the {route.mode.value} send got no answer ({error.message}); it may have arrived"
        else:
            why = (
                f"an earlier attempt on anchor {route.anchor_id} got no answer and the anchor has since "
                f"died ({error.message}); it may have arrived"
            )
        return DeliveryError(
            ErrorKind.OUTCOME_UNKNOWN,
            f"{why}, and a resend could duplicate it; not resent{where}",
            code=error.code,
            status=error.status or None,
            trace_id=error.trace_id,
        )

    async def _group_allows_proactive(self, api: QQApi, target: Target) -> bool:
        """For a group whose permission we never learned, ask `bot_state` once (2026 API)."""
        if target.scene is not Scene.GROUP or await self.targets.proactive_known(target):
            return True
        try:
            state = await api.group_bot_state(target.id)
        except QQApiError as error:
            log.info("qq %s: bot_state unavailable (%s); trying the send", target, error)
            return True
        allowed = state.get("allow_proactive_msg")
        if not isinstance(allowed, bool):
            return True
        reason = None if allowed else "the group does not allow proactive messages (bot_state)"
        await self.targets.set_proactive(target, allowed, reason)
        return allowed

    async def _after_error(
        self, request: SendRequest, index: int, route: Route, part: Part, error: QQApiError
    ) -> str:
        """What a refusal means for this part: "delivered", "replan", "as_text", "unknown" or "fail"."""
        target = request.target
        if error.maybe_sent:
            if route.mode in (DeliveryMode.PROACTIVE, DeliveryMode.RECALL):
                return "unknown"  # the mark stays: no later attempt resends it either
            return "fail"  # a passive resend reuses (msg_id, msg_seq): the platform dedups it
        row = meaning(error.code)
        if error.duplicate:
            if route.reused:
                # This (anchor, msg_seq) was sent by an earlier attempt: the platform has it.
                return "delivered"
            # A fresh msg_seq the platform had seen: skip it (never reuse it) and plan again.
            await self.ledger.route_died(request.item_id, index, Route(route.mode), error.code, error.message)
            return "replan"
        if error.kind is ErrorKind.REPLAN and route.anchor_id is not None:
            if route.reused and route.requested:
                # An earlier attempt on this anchor may have arrived unanswered; now the anchor is
                # dead, the platform's dedup can no longer tell, and a new route could duplicate.
                await self.ledger.route_died(
                    request.item_id, index, route, error.code, error.message, keep_reservation=True
                )
                return "unknown"
            verdict = await self.ledger.route_died(request.item_id, index, route, error.code, error.message)
            log.info(
                "qq %s: anchor %s %s (code %s); re-planning", target, route.anchor_id, verdict, error.code
            )
            return "replan"
        if route.mode is DeliveryMode.RECALL:
            if error.code == RECALL_PERIOD_USED:
                # The platform counts this period used: so does the ledger now (its reservation
                # keeps the period), and the part is planned again without it.
                log.info("qq %s: recall period already used (code %s); re-planning", target, error.code)
                await self.ledger.route_died(request.item_id, index, route, error.code, error.message)
                return "replan"
            await self.ledger.release_recall(request.item_id, index)
            if error.code == RECALL_NOT_SUPPORTED:
                await self.targets.refuse_recall(target, f"{error.message} ({error.code})")
                await self.ledger.route_died(request.item_id, index, route, error.code, error.message)
                return "replan"
        # The platform answered: it did not take this request, so a later attempt may make it.
        await self.ledger.answered(request.item_id, index)
        if row is not None and row.keyboard_refused and part.keyboard is not None:
            self._keyboard_refused.add(target.key)
            if error.code in BOT_KEYBOARD_CODES:
                await self.capabilities.refuse(KEYBOARD, f"{error.message} ({error.code})", error.code)
            log.warning(
                "qq %s: buttons refused (%s, code %s); they are sent as numbered choices (/choose N)",
                target,
                error.message,
                error.code,
            )
            return "no_keyboard"
        if row is not None and row.markdown_refused and part.kind == "markdown":
            if error.code in BOT_MARKDOWN_CODES:
                await self.capabilities.refuse(MARKDOWN, f"{error.message} ({error.code})", error.code)
            await self.targets.refuse_markdown(target)
            # Failed sends do not use up the msg_seq; the reservation is tried again as text.
            return "as_text"
        if row is not None and row.proactive_refused and route.mode is DeliveryMode.PROACTIVE:
            if await self._learn_proactive(target, error):
                # Not this target: the bot. Planned again, the part takes the route left (recall).
                await self.ledger.route_died(request.item_id, index, route, error.code, error.message)
                return "replan"
        return "fail"

    async def _learn_proactive(self, target: Target, error: QQApiError) -> bool:
        """Record a proactive refusal for the target, and what it says of the bot: True once the
        bot is known to be refused proactive messages."""
        reason = f"{error.message} ({error.code})"
        before = await self.targets.set_proactive(target, False, reason)
        if any(words in error.message for words in WITHDRAWN_WORDS):
            why = f"the platform says proactive push is withdrawn: {reason}"
            await self.capabilities.refuse(PROACTIVE, why, error.code)
            # Nothing was learned about the target itself.
            await self.targets.set_proactive(target, before, None)
            return True
        if before is True:
            # The platform said this target takes proactive messages, and refused one anyway.
            why = f"{target} allows proactive messages, yet the platform refused one: {reason}"
            await self.capabilities.refuse(PROACTIVE, why, error.code)
            return True
        learned = await self.capabilities.suspect(
            PROACTIVE, target.key, f"proactive sends refused: {reason}", error.code, PROACTIVE_EVIDENCE
        )
        return not learned.suspected

    def _delivery_error(self, error: QQApiError, where: str) -> DeliveryError:
        delivery = error.to_delivery_error()
        if error.kind is ErrorKind.REPLAN:
            # Only a proactive route gets here (quota or recall limit): no route is left for now.
            delivery = DeliveryError(
                ErrorKind.UNDELIVERABLE,
                f"proactive send refused: {error.message}",
                code=error.code,
                status=error.status or None,
                trace_id=error.trace_id,
            )
        if where:
            delivery.reason += where
        return delivery

    async def _post(
        self, api: QQApi, target: Target, route: Route, part: Part, file_info: str | None
    ) -> dict[str, Any]:
        body = message_body(target, route.body_fields(), part, file_info)
        windows = [self._limits["message"]] if self._rate_limits else []
        if self._rate_limits and route.mode is DeliveryMode.PROACTIVE:
            if target.scene is Scene.C2C:
                windows.append(self._limits["c2c_proactive"])
            elif target.scene is Scene.GROUP:
                windows.append(self._limits["group_proactive"])
        for window in windows:
            await window.acquire()
        try:
            return await api.post_message(target.scene, target.id, body)
        finally:
            for window in windows:
                window.release()
