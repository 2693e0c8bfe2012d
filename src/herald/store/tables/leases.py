"""Leases: which Herald instance holds a piece of work shared by several instances on one database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base


class Lease(Base):
    """A named lease (`scheduler`, `conversation:<key>`), held by one instance until `expires_at`.

    `expires_at` is set and compared on the database's clock, so instances on hosts whose clocks
    disagree still agree on who holds it.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
