"""Several platforms in one process, seen by the rest of Herald as one `Platform`.

`Platforms` holds the named platform instances (the QQ bot "qq", a second bot, a OneBot account)
and implements the protocol by handing each call to the instance the target names
(`Target.platform`). It starts and stops them all, is ready when all are, and adds up what they
learned. Each instance hands out events whose targets carry its own name, so a reply finds its
way back to the instance it came from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime

from herald.core.errors import DeliveryError, ErrorKind
from herald.core.events import Interaction, InteractionAnswer
from herald.core.platform import (
    Acknowledges,
    Details,
    Endpoint,
    EventSink,
    Learned,
    NextSend,
    Platform,
    Reach,
    SendRequest,
    Sent,
    Serves,
    StreamFrame,
    StreamingPlatform,
    TransportHealth,
)
from herald.core.target import Target


class UnknownPlatform(LookupError):
    """A target names a platform instance this process does not run."""


class Platforms:
    name = "platforms"

    def __init__(self, members: Mapping[str, Platform]) -> None:
        if not members:
            raise ValueError("no platform configured: set [qq] (see docs/configuration.md)")
        for key, member in members.items():
            if member.name != key:
                raise ValueError(f"platform registered as {key!r} calls itself {member.name!r}")
        self.members = dict(members)

    def only(self) -> Platform | None:
        """The one member, when there is one (what tests and single-platform tools reach for)."""
        return next(iter(self.members.values())) if len(self.members) == 1 else None

    def member(self, target: Target) -> Platform:
        found = self.members.get(target.platform)
        if found is None:
            running = ", ".join(sorted(self.members))
            raise UnknownPlatform(
                f"{target.key}: no platform named {target.platform!r} runs here (running: {running})"
            )
        return found

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        started: list[Platform] = []
        try:
            for member in self.members.values():
                await member.start(sink)
                started.append(member)
        except BaseException:
            for member in reversed(started):
                await member.stop()
            raise

    def endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(
            endpoint
            for member in self.members.values()
            if isinstance(member, Serves)
            for endpoint in member.endpoints()
        )

    async def wait_ready(self) -> None:
        await asyncio.gather(*(member.wait_ready() for member in self.members.values()))

    async def stop(self) -> None:
        # Every member stops even when one fails; the first failure is raised after.
        results = await asyncio.gather(
            *(member.stop() for member in self.members.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def health(self) -> TransportHealth:
        if len(self.members) == 1:
            return next(iter(self.members.values())).health()
        each = {name: member.health() for name, member in self.members.items()}
        seen = [h.last_event_at for h in each.values() if h.last_event_at is not None]
        expiring = [h.credential_expires_in_s for h in each.values() if h.credential_expires_in_s is not None]
        return TransportHealth(
            transport=", ".join(f"{name}: {h.transport}" for name, h in each.items()),
            ready=all(h.ready for h in each.values()),
            reconnects=sum(h.reconnects for h in each.values()),
            detail="; ".join(
                f"{name} {'ready' if h.ready else 'not ready'}{f' ({h.detail})' if h.detail else ''}"
                for name, h in each.items()
            ),
            last_event_at=max(seen) if seen else None,
            credential_expires_in_s=min(expiring) if expiring else None,
            renews_credential=any(h.renews_credential for h in each.values()),
        )

    def learned(self) -> tuple[Learned, ...]:
        if len(self.members) == 1:
            return next(iter(self.members.values())).learned()
        return tuple(
            Learned(
                f"{name}: {item.capability}",
                item.reason,
                item.learned_at,
                item.code,
                item.suspected,
                item.evidence,
                item.needed,
            )
            for name, member in self.members.items()
            for item in member.learned()
        )

    # --- one target: its own platform ----------------------------------------------------------

    async def reach(self, target: Target) -> Reach:
        return await self.member(target).reach(target)

    async def forecast(
        self, target: Target, times: Sequence[datetime], *, held: int = 0
    ) -> tuple[NextSend, ...]:
        return await self.member(target).forecast(target, times, held=held)

    async def send(self, request: SendRequest) -> Sent:
        try:
            member = self.member(request.target)
        except UnknownPlatform as exc:
            # Not this item's fault alone, but no retry brings the platform back: the operator
            # sees why (e.g. a platform removed from the config with items still waiting).
            raise DeliveryError(ErrorKind.UNDELIVERABLE, str(exc)) from None
        return await member.send(request)

    async def item_details(self, item_id: str) -> tuple[Details, ...]:
        # Item ids are unique across platforms: only the platform that sent it has details.
        for member in self.members.values():
            details = await member.item_details(item_id)
            if details:
                return details
        return ()

    # --- optional abilities, where the target's platform has them -------------------------------

    def streams_to(self, target: Target) -> bool:
        member = self.members.get(target.platform)
        return isinstance(member, StreamingPlatform) and member.streams_to(target)

    async def stream_frame(
        self,
        request: SendRequest,
        handle: str | None,
        text: str,
        *,
        final: bool,
        one_unrecorded: bool = False,
    ) -> StreamFrame:
        member = self.members.get(request.target.platform)
        if not isinstance(member, StreamingPlatform):
            raise DeliveryError(
                ErrorKind.UNDELIVERABLE, f"not streamed: {request.target.platform} cannot stream"
            )
        return await member.stream_frame(request, handle, text, final=final, one_unrecorded=one_unrecorded)

    async def acknowledge(self, interaction: Interaction, answer: InteractionAnswer) -> None:
        member = self.members.get(interaction.target.platform)
        if isinstance(member, Acknowledges):
            await member.acknowledge(interaction, answer)
