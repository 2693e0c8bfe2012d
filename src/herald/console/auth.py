"""Who may use the console: one operator password (argon2 hash in the database), signed session
cookies (HttpOnly, SameSite=Strict), a CSRF token per session, and login attempts rate-limited."""

from __future__ import annotations

import hmac
import secrets
import time
from collections import defaultdict, deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import select

from herald.core.clock import Clock
from herald.store import Database
from herald.store.dialect import insert_for
from herald.store.tables.console import ConsoleSetting

PASSWORD_KEY = "password_hash"
MIN_PASSWORD = 8
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def password_matches(stored: str | None, given: str) -> bool:
    if stored is None:
        return False
    try:
        return _hasher.verify(stored, given)
    except (VerifyMismatchError, InvalidHashError):
        return False


async def load_password_hash(db: Database) -> str | None:
    async with db.session() as session:
        return await session.scalar(select(ConsoleSetting.value).where(ConsoleSetting.key == PASSWORD_KEY))


async def store_password_hash(db: Database, hashed: str, clock: Clock) -> None:
    insert = insert_for(db.is_postgresql)
    statement = insert(ConsoleSetting).values(key=PASSWORD_KEY, value=hashed, updated_at=clock.now())
    statement = statement.on_conflict_do_update(
        index_elements=["key"], set_={"value": hashed, "updated_at": clock.now()}
    )
    async with db.session() as session:
        await session.execute(statement)
        await session.commit()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


class LoginLimiter:
    """At most `limit` failed logins per client address in `window_s`."""

    def __init__(self, limit: int = 5, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def blocked(self, client: str) -> bool:
        failures = self._failures[client]
        cutoff = time.monotonic() - self.window_s
        while failures and failures[0] < cutoff:
            failures.popleft()
        return len(failures) >= self.limit

    def failed(self, client: str) -> None:
        self._failures[client].append(time.monotonic())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
