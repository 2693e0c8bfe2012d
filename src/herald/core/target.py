"""Where a message goes: the platform instance, a scene and the platform's id of the conversation
in that scene."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Scene(StrEnum):
    C2C = "c2c"  # private chat; target id = user_openid
    GROUP = "group"  # group chat; target id = group_openid
    CHANNEL = "channel"  # guild channel; target id = channel_id
    DM = "dm"  # guild direct message; target id = the DM session's guild_id


# The platform every key stored before platforms were named belongs to: its keys stay `scene:id`.
DEFAULT_PLATFORM = "qq"
_PLATFORM_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_SCENES = frozenset(scene.value for scene in Scene)


def scoped_id(platform: str, id: str) -> str:
    """How configuration names an id of `platform` (a user's, a group's, a guild's): bare for the
    platform named `qq`, `<platform>:<id>` for the others, as target keys are written. A OneBot
    group 30001 is `onebot:30001`, and never matches a QQ group's entry."""
    return id if platform == DEFAULT_PLATFORM else f"{platform}:{id}"


def check_platform_name(name: str) -> str:
    """`name` if it can name a platform instance in a key, else ValueError saying why."""
    if not _PLATFORM_NAME.fullmatch(name) or name in _SCENES:
        raise ValueError(
            f"platform name {name!r}: use a lowercase letter, then letters, digits, '-' or '_' "
            f"(at most 32), and not a scene name ({', '.join(sorted(_SCENES))})"
        )
    return name


@dataclass(frozen=True, slots=True)
class Target:
    """One conversation on one platform instance. Also the key of a conversation's history and
    order: `scene:id` on the platform named "qq" (every key stored so far is one), else
    `platform:scene:id`."""

    scene: Scene
    id: str
    platform: str = DEFAULT_PLATFORM

    @property
    def scoped_id(self) -> str:
        """How configuration names this conversation's id (`[access]` lists, `[policy.groups.<id>]`):
        see `scoped_id`."""
        return scoped_id(self.platform, self.id)

    @property
    def key(self) -> str:
        if self.platform == DEFAULT_PLATFORM:
            return f"{self.scene.value}:{self.id}"
        return f"{self.platform}:{self.scene.value}:{self.id}"

    @classmethod
    def parse(cls, key: str) -> Target:
        first, sep, rest = key.partition(":")
        if sep and first not in _SCENES:  # `platform:scene:id`
            platform = first
            first, sep, rest = rest.partition(":")
        else:
            platform = DEFAULT_PLATFORM
        if not sep or not rest or first not in _SCENES:
            raise ValueError(f"not a target key (want '<scene>:<id>' or '<platform>:<scene>:<id>'): {key!r}")
        try:
            check_platform_name(platform)
        except ValueError as exc:
            raise ValueError(f"not a target key: {key!r}: {exc}") from None
        return cls(Scene(first), rest, platform)

    def on(self, platform: str) -> Target:
        """The same conversation as seen by the platform instance named `platform`."""
        return Target(self.scene, self.id, platform)

    def __str__(self) -> str:
        return self.key
