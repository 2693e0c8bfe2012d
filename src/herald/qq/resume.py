"""The gateway's resume point, persisted (nothing inbound is lost).

    point = ResumePoint(db, app_id, shard, clock)
    saved = await point.load()            # Saved(session_id, seq, updated_at) | None
    await point.save(session_id, seq)     # a new session (READY): written before events count
    point.advance(session_id, seq)        # after the event numbered `seq` is stored
    await point.flush()                   # on stop: the newest point is written

`advance` never waits for the database: the newest point is written by one background unit of
the shared group commit (`Database.writes`) at a time, at most every `min_interval_s`, so under
load many events coalesce into one row update that rides in a batch with the writes of the
events themselves, instead of costing each event a transaction (or even a statement) of its own.
The row therefore may lag the events already stored; a
Resume from a lagging point only makes the platform replay events that inbound dedup (reply
ledger, turn store) drops. It never runs ahead of them: `advance` is called only after the
event's handler returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from herald.core.clock import Clock, SystemClock
from herald.store.db import Database
from herald.store.dialect import insert_for
from herald.store.tables.gateway import GatewaySession

log = logging.getLogger(__name__)

# How often the row is written at most. A lag costs only a longer (deduplicated) replay after a
# crash; writing after every event cost about 0.5 ms of CPU per message (bench/turns.py).
MIN_INTERVAL_S = 0.25

TABLE = cast(Table, GatewaySession.__table__)


@dataclass(frozen=True)
class Saved:
    session_id: str
    seq: int
    updated_at: datetime


class ResumePoint:
    def __init__(
        self,
        db: Database,
        app_id: str,
        shard: tuple[int, int],
        clock: Clock | None = None,
        *,
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        self._db = db
        self.min_interval_s = min_interval_s
        self._key = {"app_id": app_id, "shard": f"{shard[0]}/{shard[1]}"}
        self._clock: Clock = clock or SystemClock()
        upsert = insert_for(db.is_postgresql)
        statement = upsert(TABLE)
        self._upsert = statement.on_conflict_do_update(
            index_elements=["app_id", "shard"],
            set_={
                "session_id": statement.excluded.session_id,
                "seq": statement.excluded.seq,
                "updated_at": statement.excluded.updated_at,
            },
        )
        self._pending: tuple[str, int] | None = None
        self._written: tuple[str, int] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0  # rows written (observability, tests)

    async def load(self) -> Saved | None:
        async with self._db.session() as session:
            row = await session.get(GatewaySession, (self._key["app_id"], self._key["shard"]))
        if row is None:
            return None
        self._written = (row.session_id, row.seq)
        return Saved(row.session_id, row.seq, row.updated_at)

    def advance(self, session_id: str, seq: int) -> None:
        """The event numbered `seq` in `session_id` (and every one before it) is stored."""
        self._pending = (session_id, seq)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="qq-gateway-resume-point")

    async def save(self, session_id: str, seq: int) -> None:
        """Write this point now and return once it is committed (a new session's first point:
        until it is written, nothing published in the session could be asked for again)."""
        self._pending = (session_id, seq)
        await self.flush()

    async def flush(self) -> None:
        """Write the newest point now (stop); a failure is logged, never raised."""
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()  # it may be pausing between writes; a cancelled write changes nothing
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        if self._pending is not None and self._pending != self._written:
            self._writer = asyncio.create_task(self._write(pause=False))
            await self._writer

    async def _write(self, *, pause: bool = True) -> None:
        while self._pending is not None and self._pending != self._written:
            point = self._pending
            values: dict[str, Any] = {
                **self._key,
                "session_id": point[0],
                "seq": point[1],
                "updated_at": self._clock.now(),
            }

            async def work(session: AsyncSession, values: dict[str, Any] = values) -> None:
                await session.execute(self._upsert, values)

            try:
                await self._db.writes.run(work)
            except Exception as exc:
                # The next stored event writes it again; until then a restart replays a little more.
                log.warning(
                    "qq gateway: resume point s=%s not saved (%s: %s)", point[1], type(exc).__name__, exc
                )
                return
            self._written = point
            self.writes += 1
            if pause:
                # Real time, not the Clock: this paces database load, like the heartbeat.
                await asyncio.sleep(self.min_interval_s)
