"""What one target (a user, a group) takes, as the platform said and as Herald counted: its
proactive permission and proactive sends (the quota windows), whether it refused markdown, and
whether it refused interactive recall. Rows of `target_permissions` and `proactive_sends`.

The reply ledger (`reply.py`) plans each send with these; the adapter records what the platform's
answers teach. What the platform refuses the bot as a whole is `capabilities.py`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from herald.config import QQDeliveryConfig
from herald.core.clock import Clock
from herald.core.platform import Permission
from herald.core.target import Scene, Target
from herald.qq.capabilities import MARKDOWN, PROACTIVE, Capabilities
from herald.qq.tables import ProactiveSend, TargetPermission
from herald.store.db import Database


class TargetCapabilities:
    def __init__(
        self, db: Database, clock: Clock, config: QQDeliveryConfig, capabilities: Capabilities | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self._cfg = config
        self.capabilities = capabilities
        # The targets known to refuse markdown, read from the database once, on first use.
        self._markdown_refused: set[str] = set()
        self._markdown_loaded = False

    # --- proactive permission ------------------------------------------------------------------

    async def set_proactive(
        self, target: Target, allowed: bool | None, reason: str | None = None
    ) -> bool | None:
        """Record what we learned about proactive permission (relation event, bot_state, a
        refusal); returns what was known before."""
        async with self._db.session() as session:
            before = await self.set_permission(session, target, allowed, reason)
            await session.commit()
        return before

    async def set_permission(
        self, session: AsyncSession, target: Target, allowed: bool | None, reason: str | None
    ) -> bool | None:
        now = self._clock.now()
        row = await session.get(TargetPermission, target.key)
        before = None if row is None else row.proactive
        if row is None:
            session.add(
                TargetPermission(
                    target=target.key,
                    proactive=allowed,
                    proactive_reason=reason,
                    markdown_refused=False,
                    updated_at=now,
                )
            )
        else:
            row.proactive = allowed
            row.proactive_reason = reason
            row.updated_at = now
        return before

    async def proactive_known(self, target: Target) -> bool:
        """Whether the platform ever told us if this target takes proactive messages."""
        async with self._db.session() as session:
            row = await session.get(TargetPermission, target.key)
        return row is not None and row.proactive is not None

    # --- markdown ------------------------------------------------------------------------------

    async def markdown_refused(self, target: Target) -> bool:
        if self.capabilities is not None and self.capabilities.refused(MARKDOWN) is not None:
            return True
        # A database fact that only ever turns true, and rare (a refusal of the whole bot is
        # `capabilities`'), so all of it is read once and kept: a memo per target asked about
        # grew with every user the bot ever answered. A refusal another instance records later
        # costs this one at most one refused attempt.
        if not self._markdown_loaded:
            async with self._db.session() as session:
                refused = await session.scalars(
                    select(TargetPermission.target).where(TargetPermission.markdown_refused.is_(True))
                )
                self._markdown_refused.update(refused)
            self._markdown_loaded = True
        return target.key in self._markdown_refused

    async def refuse_markdown(self, target: Target) -> None:
        self._markdown_refused.add(target.key)
        async with self._db.session() as session:
            row = await session.get(TargetPermission, target.key)
            if row is None:
                session.add(
                    TargetPermission(target=target.key, markdown_refused=True, updated_at=self._clock.now())
                )
            else:
                row.markdown_refused = True
            await session.commit()

    # --- interactive recall -------------------------------------------------------------------

    async def refuse_recall(self, target: Target, reason: str) -> None:
        """The platform said this user cannot get recall messages (40034123): never ask again."""
        async with self._db.session() as session:
            row = await session.get(TargetPermission, target.key)
            if row is None:
                session.add(
                    TargetPermission(
                        target=target.key,
                        markdown_refused=False,
                        recall_refused=reason,
                        updated_at=self._clock.now(),
                    )
                )
            else:
                row.recall_refused = reason
            await session.commit()

    async def recall_refused(self, session: AsyncSession, target: Target) -> str | None:
        """Why the platform refused interactive recall to this user, if it did."""
        row = await session.get(TargetPermission, target.key)
        return row.recall_refused if row is not None else None

    # --- planning reads: permission and quota ---------------------------------------------------

    async def permission(self, session: AsyncSession, target: Target) -> tuple[Permission, str]:
        """Whether the target takes proactive messages, as far as the platform mode and it said."""
        guild = target.scene not in (Scene.C2C, Scene.GROUP)
        if self._cfg.platform_mode == "2025" and not guild:
            return Permission.REFUSED, "proactive messages are not offered in platform mode 2025"
        row = await session.get(TargetPermission, target.key)
        known = None if row is None else row.proactive
        if known is False and not guild:
            return Permission.REFUSED, (row.proactive_reason if row else None) or "proactive messages refused"
        if known is True:
            # Tried even when the bot is learned refused: a success shows the lesson wrong.
            return Permission.ALLOWED, "the platform said this target takes proactive messages"
        learned = None if self.capabilities is None else self.capabilities.refused(PROACTIVE)
        if learned is not None and not guild:
            when = learned.learned_at.strftime("%Y-%m-%d")
            return Permission.REFUSED, f"the platform refuses this bot proactive messages (learned {when})"
        if guild:
            return Permission.UNKNOWN, "guild scenes: the platform's own limits apply, Herald counts none"
        if target.scene is Scene.GROUP:
            return Permission.UNKNOWN, "never said; the group's bot_state is asked before the first one"
        return Permission.UNKNOWN, "never said; the platform's answer to a send will tell"

    async def rate_wait(
        self, session: AsyncSession, target: Target, now: datetime
    ) -> tuple[float, str] | None:
        """(seconds to wait, why) when a proactive send to `target` now would pass its rate limit."""
        # Each window is widened by a margin: the platform counts a send when it receives it, a
        # little after we count it, and its clock is not ours.
        margin = timedelta(seconds=self._cfg.proactive_rate_margin_s)
        for span, limit, label in self.rate_windows():
            since = now - span - margin
            used = await self.proactive_count(session, target, since)
            if used >= limit:
                # The window frees up when its oldest counted send ages out (plus the margin).
                oldest = await session.scalar(
                    select(ProactiveSend.sent_at)
                    .where(ProactiveSend.target == target.key, ProactiveSend.sent_at > since)
                    .order_by(ProactiveSend.sent_at)
                    .offset(used - limit)
                    .limit(1)
                )
                seconds = ((oldest or now) + span + margin - now).total_seconds()
                why = f"proactive limit {limit} {label} for {target}"
                return max(seconds, margin.total_seconds()), why
        return None

    def rate_windows(self) -> tuple[tuple[timedelta, int, str], ...]:
        return (
            (timedelta(minutes=1), self._cfg.proactive_per_target_per_minute, "per minute"),
            (timedelta(days=1), self._cfg.proactive_per_target_per_day, "per day"),
        )

    async def proactive_count(self, session: AsyncSession, target: Target, since: datetime) -> int:
        count = await session.scalar(
            select(func.count())
            .select_from(ProactiveSend)
            .where(ProactiveSend.target == target.key, ProactiveSend.sent_at > since)
        )
        return int(count or 0)
