"""The instructions the model gets on every request: the configured system prompt plus the facts
a turn needs (the current local time and zone, where it is talking)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from herald.core.target import Scene, Target

_SCENES = {
    Scene.C2C: "a private chat with one user",
    Scene.GROUP: "a group chat",
    Scene.CHANNEL: "a guild channel",
    Scene.DM: "a guild direct message",
}


def instructions(system_prompt: str, target: Target, now: datetime, timezone: str) -> str:
    local = now.astimezone(ZoneInfo(timezone))
    return (
        f"{system_prompt}\n\n"
        f"Current time: {local:%Y-%m-%d %H:%M:%S %A} ({timezone}). "
        f"You are in {_SCENES.get(target.scene, 'a conversation')}."
    )


def job_prompt(name: str, job_id: str, note: str, slot: datetime, timezone: str) -> str:
    local = slot.astimezone(ZoneInfo(timezone))
    return (
        f"[Scheduled task '{name}' (id {job_id}) fired at {local:%Y-%m-%d %H:%M} {timezone}.] "
        f"Your note for this moment: {note}"
    )
