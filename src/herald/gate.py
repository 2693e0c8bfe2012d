"""The gate in front of the model: who may talk to the bot, who is an admin, and how much each
user and group may use it. Everything here is decided from configuration, the platform's own
facts about the author and Herald's counters, never from anything a message or the model says,
so no prompt can lift a limit.

A refused message is still stored as a turn (finished with the reason), so nothing is dropped
silently; the user is told once per `notice_interval_s` and kind of refusal, not once per message,
so a flood is not answered with a flood.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from herald.config import AccessConfig, LimitsConfig
from herald.core.clock import Clock
from herald.core.events import InboundMessage
from herald.core.target import Scene, Target, scoped_id
from herald.store import Database
from herald.store.tables.agent import AgentTurn

log = logging.getLogger(__name__)

ADMIN_ONLY_TOOL = "refused: admin only. Tell the user that only an admin can do this."
SWEEP_EVERY = 4096  # checks between sweeps of idle counters


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: str  # access | admin | flood | tokens: one notice per kind and interval
    reason: str  # for the operator: the log line and the turn's stored error
    text: str  # what the user is told


@dataclass(frozen=True, slots=True)
class Verdict:
    refusal: Refusal | None
    admin: bool


class TokenLedger:
    """Model tokens spent today per author and per conversation. Each key's total is read from
    the stored turns once a day, then kept up to date in memory as turns end; the totals of
    earlier days are let go when the day turns."""

    def __init__(self, db: Database | None, clock: Clock, timezone: str) -> None:
        self.db = db
        self.clock = clock
        self.zone = ZoneInfo(timezone)
        self._day: datetime | None = None  # the midnight `_totals` count from
        self._totals: dict[tuple[str, str], int] = {}

    def _today(self) -> datetime:
        """Today's local midnight; the totals start again from nothing when the day turns."""
        local = self.clock.now().astimezone(self.zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if midnight != self._day:
            self._day = midnight
            self._totals.clear()
        return midnight

    async def today(self, by: str, key: str) -> int:
        """`by` is `author` or `conversation`."""
        midnight = self._today()
        cached = self._totals.get((by, key))
        if cached is not None:
            return cached
        total = await self._load(by, key, midnight)
        if self._day == midnight:  # not if the day turned while the store was read
            self._totals[(by, key)] = total
        return total

    async def _load(self, by: str, key: str, since: datetime) -> int:
        if self.db is None:
            return 0
        column = AgentTurn.author_id if by == "author" else AgentTurn.conversation
        query = select(func.sum(AgentTurn.input_tokens + AgentTurn.output_tokens)).where(
            column == key, AgentTurn.created_at >= since
        )
        async with self.db.session() as session:
            value = await session.scalar(query)
        return int(value or 0)

    def spent(self, conversation: str, author_id: str | None, tokens: int) -> None:
        """A turn ended having used `tokens`. Keys not loaded yet read them from the store later."""
        if tokens <= 0:
            return
        self._today()
        keys = [("conversation", conversation)] + ([("author", author_id)] if author_id else [])
        for key in keys:
            cached = self._totals.get(key)
            if cached is not None:
                self._totals[key] = cached + tokens


class RateWindow:
    """Messages accepted per key in the last minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        # Lists, not deques: there is one per user who wrote in the last minute, and a deque
        # holding one time takes 760 bytes where a list takes 88 (at most `per_minute` are kept).
        self._times: dict[str, list[float]] = {}

    def full(self, key: str, now: float) -> bool:
        times = self._times.get(key)
        if times is None:
            return False
        stale = 0
        while stale < len(times) and times[stale] <= now - 60.0:
            stale += 1
        del times[:stale]
        return len(times) >= self.per_minute

    def add(self, key: str, now: float) -> None:
        self._times.setdefault(key, []).append(now)

    def sweep(self, now: float) -> None:
        for key in [k for k, times in self._times.items() if not times or times[-1] <= now - 60.0]:
            del self._times[key]


class Gate:
    def __init__(
        self,
        access: AccessConfig,
        limits: LimitsConfig,
        clock: Clock,
        tokens: TokenLedger,
    ) -> None:
        self.access = access
        self.limits = limits
        self.clock = clock
        self.tokens = tokens
        self._allow_users = frozenset(access.allow_users)
        self._deny_users = frozenset(access.deny_users)
        self._allow_groups = frozenset(access.allow_groups)
        self._deny_groups = frozenset(access.deny_groups)
        self._allow_guilds = frozenset(access.allow_guilds)
        self._deny_guilds = frozenset(access.deny_guilds)
        self._admins = frozenset(access.admins)
        self._group_roles = frozenset(role.lower() for role in access.admin_group_roles)
        self._guild_roles = frozenset(access.admin_guild_roles)
        self._admin_commands = frozenset(access.admin_commands)
        self._admin_tools = frozenset(access.admin_tools)
        self._user_rate = RateWindow(limits.user_messages_per_minute)
        self._group_rate = RateWindow(limits.group_messages_per_minute)
        self._noticed: dict[tuple[str, str, str], float] = {}
        self._turn_admins: dict[int, bool] = {}
        self._checks = 0

    # --- who ----------------------------------------------------------------------------------

    def is_admin(self, target: Target, author_id: str | None, roles: Sequence[str] = ()) -> bool:
        if author_id is not None and scoped_id(target.platform, author_id) in self._admins:
            return True
        if target.scene is Scene.C2C:
            return False
        wanted = self._group_roles if target.scene is Scene.GROUP else self._guild_roles
        if target.scene is Scene.GROUP:
            return any(role.lower() in wanted for role in roles)
        return any(role in wanted for role in roles)

    def _denied(self, event: InboundMessage) -> str | None:
        """Why `event`'s author may not talk to the bot here, if they may not."""
        platform = event.target.platform
        author = scoped_id(platform, event.author_id)
        if author in self._deny_users:
            return "user denied"
        if self._allow_users and author not in self._allow_users and author not in self._admins:
            return "user not allowed"
        if event.target.scene is Scene.GROUP:
            group = event.target.scoped_id
            if group in self._deny_groups:
                return "group denied"
            if self._allow_groups and group not in self._allow_groups:
                return "group not allowed"
        if event.guild_id is not None:
            guild = scoped_id(platform, event.guild_id)
            if guild in self._deny_guilds:
                return "guild denied"
            if self._allow_guilds and guild not in self._allow_guilds:
                return "guild not allowed"
        return None

    # --- the check before a turn is stored ------------------------------------------------------

    async def check(self, event: InboundMessage, command: str | None) -> Verdict:
        """May `event` start a turn? `command` is the command's name, for a command."""
        admin = self.is_admin(event.target, event.author_id, event.author_roles)
        denied = self._denied(event)
        if denied is not None:
            return Verdict(Refusal("access", f"access: {denied}", self.access.refusal_text), admin)
        if (
            command is not None
            and command in self._admin_commands
            and event.target.scene is not Scene.C2C
            and not admin
        ):
            return Verdict(Refusal("admin", f"admin only: /{command}", self.access.admin_only_text), admin)
        if admin:
            return Verdict(None, admin)  # admins are the operator's people: no budgets
        refusal = self._flooding(event) or await self._over_budget(event)
        return Verdict(refusal, admin)

    def _flooding(self, event: InboundMessage) -> Refusal | None:
        now = self.clock.now().timestamp()
        self._checks += 1
        if self._checks % SWEEP_EVERY == 0:
            self._sweep(now)
        limits = self.limits
        if limits.user_messages_per_minute and self._user_rate.full(event.author_id, now):
            return Refusal(
                "flood",
                f"limit: {limits.user_messages_per_minute} messages per minute per user",
                limits.flood_text,
            )
        if (
            limits.group_messages_per_minute
            and event.target.scene is not Scene.C2C
            and self._group_rate.full(event.target.key, now)
        ):
            return Refusal(
                "flood",
                f"limit: {limits.group_messages_per_minute} messages per minute per group",
                limits.group_flood_text,
            )
        return None

    async def _over_budget(self, event: InboundMessage) -> Refusal | None:
        limits = self.limits
        if limits.user_tokens_per_day:
            spent = await self.tokens.today("author", event.author_id)
            if spent >= limits.user_tokens_per_day:
                reason = f"limit: {spent} of {limits.user_tokens_per_day} tokens today per user"
                return Refusal("tokens", reason, limits.tokens_text)
        if limits.group_tokens_per_day and event.target.scene is not Scene.C2C:
            spent = await self.tokens.today("conversation", event.target.key)
            if spent >= limits.group_tokens_per_day:
                reason = f"limit: {spent} of {limits.group_tokens_per_day} tokens today per group"
                return Refusal("tokens", reason, limits.group_tokens_text)
        return None

    def admitted(self, event: InboundMessage, turn_id: int, admin: bool) -> None:
        """`event` became turn `turn_id`: count it, and remember its author's standing for its tools."""
        now = self.clock.now().timestamp()
        if self.limits.user_messages_per_minute:
            self._user_rate.add(event.author_id, now)
        if self.limits.group_messages_per_minute and event.target.scene is not Scene.C2C:
            self._group_rate.add(event.target.key, now)
        if admin:
            self._turn_admins[turn_id] = True

    def should_tell(self, target: Target, author_id: str, refusal: Refusal) -> bool:
        """Tell the user about this refusal, or were they told within `notice_interval_s`?"""
        now = self.clock.now().timestamp()
        key = (target.key, author_id, refusal.kind)
        last = self._noticed.get(key)
        if last is not None and now - last < self.limits.notice_interval_s:
            return False
        self._noticed[key] = now
        return True

    def _sweep(self, now: float) -> None:
        self._user_rate.sweep(now)
        self._group_rate.sweep(now)
        horizon = now - self.limits.notice_interval_s
        for key in [k for k, at in self._noticed.items() if at <= horizon]:
            del self._noticed[key]

    # --- while a turn runs ----------------------------------------------------------------------

    def turn_admin(self, turn_id: int, target: Target, author_id: str | None) -> bool:
        """Is the author of turn `turn_id` an admin? Roles are known only for turns that came in
        since start; a resumed turn or a job firing counts configured admins alone."""
        return self._turn_admins.get(turn_id, False) or self.is_admin(target, author_id)

    def tool_refusal(self, tool: str, turn_id: int, target: Target, author_id: str | None) -> str | None:
        if tool in self._admin_tools and not self.turn_admin(turn_id, target, author_id):
            log.info("refused tool %s in %s for %s: admin only", tool, target.key, author_id)
            return ADMIN_ONLY_TOOL
        return None

    def hides(self, tool: str, turn_id: int, target: Target, author_id: str | None) -> bool:
        """Leave `tool` out of what the model is offered in this turn?"""
        return tool in self._admin_tools and not self.turn_admin(turn_id, target, author_id)

    def ended(self, turn_id: int, conversation: str, author_id: str | None, tokens: int) -> None:
        self._turn_admins.pop(turn_id, None)
        self.tokens.spent(conversation, author_id, tokens)
