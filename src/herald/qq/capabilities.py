"""What the platform refuses this bot as a whole, learned from its answers and kept.

`platform_mode` says what the operator believes the bot may do; the platform's answers say what
it actually may. Four things are learned:

- **proactive**: the platform withdrew proactive push from bots (new bots since 2025-04-21), or
  never granted it. Its refusal code (`40034105`) is the one it also gives when one user has not
  allowed proactive messages ("主动消息发送失败，无权限"), so the code alone proves nothing about
  the bot. It is learned at once when the message says the push is no longer offered
  ("…不再提供": the platform's documents say a withdrawn push answers with an error message, the
  emulator words it so), or when a target the platform said takes proactive messages (a
  `C2C_MSG_RECEIVE`/`GROUP_MSG_RECEIVE` or `bot_state`) refuses one anyway; else after
  `PROACTIVE_EVIDENCE` different targets refused with no proactive send accepted in between.
  Targets that said they take proactive messages are still tried, and one accepted proactive send
  drops both a suspicion and a learned refusal: the platform has just shown it wrong.
- **markdown**: "no markdown template permission" (`40034127`, `304036`) is a permission of the
  bot, not of the target.
- **keyboard**: custom keyboards not granted to the bot (`304057`) or no permission for message
  buttons (`304037`): every keyboard goes as numbered choices (`/choose N`).
- **intent:<NAME>**: the gateway closed with 4014; each asked intent was tried alone to find the
  refused ones, and the session goes on without them.

Each is persisted per bot, so a restart does not ask again; `herald doctor` lists them and
`herald doctor --forget NAME` drops one once the platform grants it (e.g. after applying on
q.qq.com): markdown, keyboards and intents are never tried again until then. Several instances on one
database each read them at start and learn on their own.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import delete, select

from herald.core.clock import Clock
from herald.core.platform import Learned
from herald.qq.tables import LearnedCapability
from herald.store.db import Database

log = logging.getLogger(__name__)

PROACTIVE = "proactive"
MARKDOWN = "markdown"
KEYBOARD = "keyboard"
PROACTIVE_EVIDENCE = 3  # different targets refused, none accepted in between
WITHDRAWN_WORDS = ("不再提供",)  # "no longer offered", in a refusal's message
BOT_MARKDOWN_CODES = frozenset({40034127, 304036})  # "no markdown template permission"
BOT_KEYBOARD_CODES = frozenset({304057, 304037})  # custom keyboards / buttons not granted
REFUSED = "refused"
SUSPECTED = "suspected"


def intent_capability(name: str) -> str:
    return f"intent:{name}"


class Capabilities:
    """The learned refusals of one bot, read at start and kept in memory (the send path asks
    `refused()` on every plan, so it does no I/O)."""

    def __init__(self, db: Database, bot: str, clock: Clock) -> None:
        self._db = db
        self._bot = bot
        self._clock = clock
        self._known: dict[str, Learned] = {}
        self.loaded = False

    async def load(self) -> None:
        async with self._db.session() as session:
            rows = await session.scalars(select(LearnedCapability).where(LearnedCapability.bot == self._bot))
            self._known = {row.capability: _learned(row) for row in rows}
        self.loaded = True

    def all(self) -> tuple[Learned, ...]:
        return tuple(sorted(self._known.values(), key=lambda learned: learned.capability))

    def refused(self, capability: str) -> Learned | None:
        learned = self._known.get(capability)
        return None if learned is None or learned.suspected else learned

    async def refuse(self, capability: str, reason: str, code: int | None = None) -> Learned:
        """The platform refuses `capability` to this bot: remember it (idempotent)."""
        known = self.refused(capability)
        if known is not None:
            return known
        learned = Learned(capability, reason, self._clock.now(), code)
        await self._write(learned)
        log.warning("qq: learned that the platform refuses %s to this bot: %s", capability, reason)
        return learned

    async def suspect(
        self, capability: str, seen: str, reason: str, code: int | None, needed: int
    ) -> Learned:
        """One more piece of evidence (`seen`, e.g. a target) that `capability` is refused; it is
        learned as refused once `needed` different pieces are in."""
        known = self._known.get(capability)
        if known is not None and not known.suspected:
            return known
        evidence = tuple(dict.fromkeys((*(known.evidence if known else ()), seen)))
        if len(evidence) >= needed:
            summary = f"{reason}; refused for {len(evidence)} different targets with none accepted between"
            learned = Learned(capability, summary, self._clock.now(), code, evidence=evidence, needed=needed)
            log.warning("qq: learned that the platform refuses %s to this bot: %s", capability, summary)
        else:
            learned = Learned(
                capability, reason, self._clock.now(), code, suspected=True, evidence=evidence, needed=needed
            )
        await self._write(learned)
        return learned

    async def accepted(self, capability: str) -> None:
        """The platform took a request that needs `capability`: what was learned or suspected
        against it is wrong (or no longer true)."""
        known = self._known.get(capability)
        if known is not None:
            if not known.suspected:
                log.warning("qq: the platform accepted %s again; no longer treated as refused", capability)
            await self.forget(capability)

    async def forget(self, capability: str) -> bool:
        async with self._db.session() as session:
            result = await session.execute(
                delete(LearnedCapability).where(
                    LearnedCapability.bot == self._bot, LearnedCapability.capability == capability
                )
            )
            await session.commit()
        self._known.pop(capability, None)
        return bool(getattr(result, "rowcount", 0))

    async def _write(self, learned: Learned) -> None:
        async with self._db.session() as session:
            row = await session.get(LearnedCapability, (self._bot, learned.capability))
            if row is None:
                row = LearnedCapability(bot=self._bot, capability=learned.capability)
                session.add(row)
            row.state = SUSPECTED if learned.suspected else REFUSED
            row.code = learned.code
            row.reason = learned.reason
            row.evidence = json.dumps(list(learned.evidence), ensure_ascii=False)
            row.learned_at = learned.learned_at
            await session.commit()
        self._known[learned.capability] = learned


def _learned(row: LearnedCapability) -> Learned:
    evidence = json.loads(row.evidence or "[]")
    return Learned(
        row.capability,
        row.reason,
        row.learned_at,
        row.code,
        suspected=row.state == SUSPECTED,
        evidence=tuple(str(item) for item in evidence),
        needed=PROACTIVE_EVIDENCE if row.capability == PROACTIVE else 1,
    )
