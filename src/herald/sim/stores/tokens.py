"""Access tokens the token endpoint issued (rule 3): they outlive a reset of the traffic, so a
connected bot keeps working."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Literal

TokenStatus = Literal["ok", "missing", "wrong", "expired"]


@dataclass(slots=True)
class Token:
    value: str
    expires_at: float


@dataclass
class Tokens:
    issued: dict[str, Token] = field(default_factory=dict)
    current: Token | None = None

    def issue(self, now: float, ttl_s: float) -> Token:
        """Same token while more than 60 s remain; a new one in the last 60 s (rule 3)."""
        current = self.current
        if current is not None and current.expires_at - now > 60:
            return current
        token = Token(value=secrets.token_urlsafe(32), expires_at=now + ttl_s)
        self.issued[token.value] = token
        self.current = token
        return token

    def check(self, token: str, now: float) -> TokenStatus:
        """`token` is the raw access token (without the `QQBot ` prefix)."""
        if not token:
            return "missing"
        known = self.issued.get(token)
        if known is None:
            return "wrong"
        if now >= known.expires_at:
            return "expired"
        return "ok"

    def expire(self, now: float) -> int:
        for token in self.issued.values():
            token.expires_at = min(token.expires_at, now)
        self.current = None
        return len(self.issued)
