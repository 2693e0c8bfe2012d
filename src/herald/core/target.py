"""Where a message goes: a scene and the platform's id of the conversation in that scene."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scene(StrEnum):
    C2C = "c2c"  # private chat; target id = user_openid
    GROUP = "group"  # group chat; target id = group_openid
    CHANNEL = "channel"  # guild channel; target id = channel_id
    DM = "dm"  # guild direct message; target id = the DM session's guild_id


@dataclass(frozen=True, slots=True)
class Target:
    """One conversation on the platform. Also the key of a conversation's history and order."""

    scene: Scene
    id: str

    @property
    def key(self) -> str:
        return f"{self.scene.value}:{self.id}"

    @classmethod
    def parse(cls, key: str) -> Target:
        scene, sep, ident = key.partition(":")
        if not sep or not ident:
            raise ValueError(f"not a target key (want '<scene>:<id>'): {key!r}")
        return cls(Scene(scene), ident)

    def __str__(self) -> str:
        return self.key
