"""What a sender gets back from the outbox: a receipt that resolves to the real outcome.

A receipt never reports success that did not happen: it resolves only when the outbox row is
final (delivered, failed, or dead), with the platform's code and reason when it failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from herald.core.platform import Sent


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    item_id: str
    delivered: bool
    sent: Sent | None
    code: int | None
    reason: str | None

    def describe(self) -> str:
        """One line for a tool result or a log: what happened, in words an agent can relay."""
        if self.delivered and self.sent is not None:
            sent = self.sent
            return f"delivered ({sent.route}, {sent.note})" if sent.note else f"delivered ({sent.route})"
        detail = f" (code {self.code})" if self.code is not None else ""
        return f"not delivered: {self.reason or 'unknown reason'}{detail}"


class Receipt:
    """Awaitable handle on one outbox item; `await receipt` gives its `DeliveryResult`."""

    __slots__ = ("_future", "item_id")

    def __init__(self, item_id: str, future: asyncio.Future[DeliveryResult]) -> None:
        self.item_id = item_id
        self._future = future

    @property
    def done(self) -> bool:
        return self._future.done()

    def result(self) -> DeliveryResult:
        """The outcome if final; raises `asyncio.InvalidStateError` while still pending."""
        return self._future.result()

    def __await__(self) -> Generator[Any, None, DeliveryResult]:
        # shield: one caller giving up (a cancelled tool call) must not cancel the shared future
        return asyncio.shield(self._future).__await__()

    def __repr__(self) -> str:
        state = "done" if self._future.done() else "pending"
        return f"Receipt({self.item_id!r}, {state})"
