"""Delivery: the durable outbox and the receipts that report each item's real outcome."""

from herald.delivery.outbox import Outbox, OutboxObserver
from herald.delivery.receipts import DeliveryResult, Receipt

__all__ = ["DeliveryResult", "Outbox", "OutboxObserver", "Receipt"]
