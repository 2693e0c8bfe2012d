"""Streamed replies: one outbox item shown growing while the model writes it.

The item is an outbox row (state `streaming`) written before the first frame, under the reply's
idempotency key, so the sender's own enqueue of the finished reply finds the key taken and sends
nothing twice. Every accepted frame's handle and text go to the row. Frames:

- the first as soon as there is text (after any earlier item of the conversation is delivered:
  order holds), then at most one per `stream_interval_s`, each carrying the whole text so far;
  the text only grows, so what the user already has is never changed;
- a final frame always: the finished text, or what was shown plus an honest ending when the
  writing stopped (the model failed; Herald restarted: `recover`);
- a refused opening frame means "not streamed here": the finished text goes out as an ordinary
  item (`Outbox.release`), one plain reply on the route the stream had reserved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select

from herald.config import DeliveryConfig
from herald.core.clock import Clock
from herald.core.errors import DeliveryError, ErrorKind
from herald.core.platform import Platform, SendRequest, StreamingPlatform
from herald.core.segments import Text
from herald.core.target import Target
from herald.delivery.codec import dump_segments, load_segments
from herald.delivery.outbox import PENDING, STREAMING, Outbox
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem

log = logging.getLogger(__name__)

# Earlier items of the conversation must be delivered before a stream opens; a stream that would
# wait longer than this for them is not opened (its reply goes out in order, plainly).
ORDER_WAIT_S = 10.0
# Tries of a final frame before the stream is left for `recover` (and the platform's timeout).
FINAL_TRIES = 3


def _text_of(segments: str) -> str:
    return "".join(s.text for s in load_segments(segments) if isinstance(s, Text))


class ReplyStreams:
    """Opens streamed replies and ends the ones a previous run left open."""

    def __init__(
        self, db: Database, outbox: Outbox, platform: Platform, clock: Clock, config: DeliveryConfig
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._platform = platform if isinstance(platform, StreamingPlatform) else None
        self._clock = clock
        self._cfg = config

    def can_stream(self, target: Target) -> bool:
        return self._platform is not None and self._platform.streams_to(target)

    async def taken(self, key: str) -> str | None:
        """The text of the item stored under `key` (a reply already shown or sent), or None."""
        async with self._db.session() as session:
            row = await session.scalar(select(OutboxItem.segments).where(OutboxItem.idempotency_key == key))
        return None if row is None else _text_of(row)

    def open(self, target: Target, *, key: str, origin: str, trigger_id: str | None) -> ReplyStream:
        assert self._platform is not None, "open() only where can_stream() is true"
        return ReplyStream(self, self._platform, target, key=key, origin=origin, trigger_id=trigger_id)

    async def recover(self, reason: str) -> int:
        """End every stream a previous run left open: the final frame shows what the user had plus
        the ending for `reason`. A stream whose opening frame got no answer goes out plainly (its
        reserved route makes a resend of an arrived frame a duplicate the platform drops)."""
        async with self._db.session() as session:
            rows = (await session.scalars(select(OutboxItem).where(OutboxItem.state == STREAMING))).all()
        ended = 0
        for row in rows:
            text = _text_of(row.segments)
            final = _with_ending(text, self._cfg.stream_cut_notice, reason)
            target = Target.parse(row.conversation)
            if row.stream is None or self._platform is None:
                await self._outbox.release(row.id, row.conversation, [Text(final)])
                continue
            request = SendRequest(row.id, target, (Text(final),), row.trigger_id)
            try:
                # The row's text may be a frame's that was sent but whose answer was never stored.
                frame = await self._platform.stream_frame(
                    request, row.stream, final, final=True, one_unrecorded=True
                )
            except DeliveryError as error:
                log.warning(
                    "stream %s could not be ended (%s); the platform's timeout ends it", row.id, error
                )
                continue
            await self._outbox.stream_delivered(row.id, row.conversation, row.origin, frame.sent, final)
            ended += 1
            log.info(
                "stream %s to %s ended after a restart (%d chars shown)", row.id, row.conversation, len(text)
            )
        return ended

    async def _wait_for_earlier(self, target: Target) -> bool:
        """True once no earlier item of the conversation is pending (within `ORDER_WAIT_S`)."""
        deadline = self._clock.monotonic() + ORDER_WAIT_S
        while True:
            async with self._db.session() as session:
                pending = await session.scalar(
                    select(OutboxItem.id)
                    .where(OutboxItem.conversation == target.key, OutboxItem.state == PENDING)
                    .limit(1)
                )
            if pending is None:
                return True
            if self._clock.monotonic() >= deadline:
                return False
            await self._clock.sleep(0.05)


def _with_ending(text: str, notice: str, reason: str) -> str:
    ending = notice.format(reason=reason)
    return f"{text}\n\n{ending}" if text else ending


class ReplyStream:
    """One reply being streamed. `update` with the whole text so far as it grows; then exactly one
    of `finish` (the finished text), `fail` (the writing stopped) or `cut` (the response turned
    into tool calls: what was shown stays, as a message of its own)."""

    def __init__(
        self,
        streams: ReplyStreams,
        platform: StreamingPlatform,
        target: Target,
        *,
        key: str,
        origin: str,
        trigger_id: str | None,
    ) -> None:
        self._streams = streams
        self._platform = platform
        self._outbox = streams._outbox
        self._cfg = streams._cfg
        self._clock = streams._clock
        self.target = target
        self.key = key
        self.origin = origin
        self.trigger_id = trigger_id
        self._latest = ""
        self._shown = ""  # what the last accepted frame showed
        self._handle: str | None = None
        self._item_id: str | None = None
        self._refused = False  # the opening frame was refused, or the stream was never opened
        self._changed = asyncio.Event()
        self._opened = asyncio.Event()  # the row exists, or the stream will not open
        self._pump: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()

    @property
    def shown(self) -> str:
        """The text the user has (the last accepted frame's)."""
        return self._shown

    @property
    def started(self) -> bool:
        """Whether any text came in (the stream is opened or opening)."""
        return self._pump is not None

    def update(self, text: str) -> None:
        """The whole reply so far (it only grows). The first text opens the stream."""
        text = text.strip()
        if not text or self._refused:
            return
        self._latest = text
        if self._pump is None:
            self._pump = asyncio.create_task(self._run(), name=f"stream:{self.key}")
        self._changed.set()

    async def _run(self) -> None:
        if not await self._streams._wait_for_earlier(self.target):
            log.info("%s: earlier messages still pending; the reply is sent when finished", self.target)
            self._refused = True
            self._opened.set()
            return
        receipt = await self._outbox.enqueue(
            self.target,
            [Text(self._latest)],
            origin=self.origin,
            trigger_id=self.trigger_id,
            idempotency_key=self.key,
            streaming=True,
        )
        self._item_id = receipt.item_id
        self._opened.set()
        while not self._refused:
            await self._changed.wait()
            self._changed.clear()
            started = self._clock.monotonic()
            await self._frame(final=False)
            rest = self._cfg.stream_interval_s - (self._clock.monotonic() - started)
            if rest > 0:
                await self._clock.sleep(rest)

    async def _frame(self, *, final: bool, text: str | None = None) -> bool:
        """Send one frame with `text` (default: the latest); True if the platform took it."""
        async with self._sending:
            text = self._latest if text is None else text
            if self._refused or self._item_id is None or (text == self._shown and not final):
                return False
            request = SendRequest(self._item_id, self.target, (Text(text),), self.trigger_id)
            if self._handle is not None:
                # Written ahead: if Herald dies before this frame's answer is stored, `recover`
                # ends the stream with this text (what the user may have), never with less.
                await self._outbox.update_stream(self._item_id, {"segments": _segments(text)})
            try:
                frame = await self._platform.stream_frame(request, self._handle, text, final=final)
            except DeliveryError as error:
                if self._handle is None:
                    log.info("%s: reply not streamed (%s); it is sent when finished", self.target, error)
                    self._refused = True
                elif error.kind is ErrorKind.BUG:
                    log.error("%s: stream frame refused as a bug: %s", self.target, error)
                else:
                    log.info(
                        "%s: stream frame not shown (%s); the next one carries its text", self.target, error
                    )
                return False
            self._handle, self._shown = frame.handle, text
            if final:
                await self._outbox.stream_delivered(
                    self._item_id, self.target.key, self.origin, frame.sent, text
                )
            else:
                await self._outbox.update_stream(
                    self._item_id, {"stream": frame.handle, "segments": _segments(text)}
                )
            return True

    async def _stop_pump(self) -> None:
        """Stop sending frames, never in the middle of one (the platform may take a frame whose
        answer was cut off, and the next index would be wrong)."""
        pump = self._pump
        if pump is None or pump.done():
            return
        if self._item_id is None:
            # Still waiting for earlier items, or storing the row: let that finish first.
            opened = asyncio.ensure_future(self._opened.wait())
            await asyncio.wait({opened, pump}, timeout=ORDER_WAIT_S + 5, return_when=asyncio.FIRST_COMPLETED)
            opened.cancel()
        async with self._sending:
            pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump

    async def _end(self, text: str) -> bool:
        """The final frame with `text` (the opening one too, when the writing ended before any
        frame went out); False when there is no stream item (the caller sends plainly)."""
        await self._stop_pump()
        if self._item_id is None:
            return False
        for attempt in range(FINAL_TRIES):
            if self._refused:
                break
            if await self._frame(final=True, text=text):
                return True
            if self._refused:
                break
            await self._clock.sleep(0.5 * (attempt + 1))
        if not self._refused:
            log.warning("%s: the stream's final frame failed; it is ended at the next start", self.target)
            return True
        await self._outbox.release(self._item_id, self.target.key, [Text(text)])
        return True

    async def finish(self, text: str) -> bool:
        """End with the finished text. True if the reply's item exists (shown, or handed to the
        outbox to send plainly); False if nothing was streamed (the caller sends it)."""
        text = text.strip()
        if self._shown and not text.startswith(self._shown):
            # The finished text is not a continuation of what was shown (a model's last-moment
            # cleanup); the shown text stays, the rest of the finished text after it is lost.
            log.warning(
                "%s: finished text differs from what was streamed; the stream ends as shown", self.target
            )
            text = self._shown
        return await self._end(text)

    async def fail(self, reason: str) -> bool:
        """The writing stopped: end with what was shown and an honest ending. True if anything was
        shown (then the stream's ending is the user's notice)."""
        await self._stop_pump()
        if self._handle is None:
            if self._item_id is not None:
                # Opened but nothing shown: the ending alone goes out plainly.
                await self._outbox.release(
                    self._item_id,
                    self.target.key,
                    [Text(_with_ending("", self._cfg.stream_cut_notice, reason))],
                )
                return True
            return False
        return await self._end(_with_ending(self._shown, self._cfg.stream_cut_notice, reason))

    async def cut(self) -> str:
        """The response turned into tool calls: end the stream with what was shown, as a message
        of its own (its key moves aside so the turn's final reply can still use the reply key)."""
        await self._stop_pump()
        if self._item_id is None:
            return ""
        shown = self._shown
        await self._outbox.update_stream(
            self._item_id, {"idempotency_key": f"{self.key}:before-tools:{self._item_id}"}
        )
        if self._handle is None:
            if shown or self._latest:
                await self._outbox.release(self._item_id, self.target.key, [Text(self._latest)])
            return self._latest
        await self._end(self._latest if self._latest.startswith(shown) else shown)
        return self._shown


def _segments(text: str) -> str:
    return dump_segments([Text(text)])
