"""What happened, for people and tests: each conversation's transcript (inbound and outbound, in
order) and the log of the last requests the bot made."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from herald.sim.stores.anchors import Scene


@dataclass
class Transcripts:
    conversations: dict[tuple[Scene, str], list[dict[str, Any]]] = field(default_factory=dict)
    last_activity: dict[tuple[Scene, str], float] = field(default_factory=dict)

    def record(self, scene: Scene, target: str, entry: dict[str, Any], now: float) -> None:
        key = (scene, target)
        entries = self.conversations.get(key)
        if entries is None:
            entries = self.conversations[key] = []
        entry["n"] = len(entries)
        entries.append(entry)
        self.last_activity[key] = now

    def of(self, scene: Scene, target: str) -> list[dict[str, Any]]:
        return self.conversations.get((scene, target), [])


@dataclass
class RequestLog:
    limit: int = 1000
    count: int = 0  # every request ever, beyond the `limit` kept
    entries: deque[dict[str, Any]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.entries = deque(self.entries, maxlen=self.limit)

    def log(self, method: str, path: str, status: int, code: int | None, now: float) -> None:
        self.count += 1
        self.entries.append(
            {"n": self.count, "at": now, "method": method, "path": path, "status": status, "code": code}
        )
