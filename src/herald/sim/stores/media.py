"""Media the bot uploaded (`file_info` records), chunked uploads in progress, and the bytes the
emulator serves at the attachment URLs of injected messages."""

from __future__ import annotations

from dataclasses import dataclass, field

from herald.sim.stores.anchors import Scene


@dataclass(slots=True)
class FileRecord:
    file_info: str
    file_uuid: str
    scene: Scene
    file_type: int
    size: int
    expires_at: float | None
    # What the upload was: for tests and the transcript (not part of any platform answer).
    name: str = ""
    format: str | None = None
    source: str = ""  # url | file_data | upload_id
    parts: int = 0  # chunked uploads: how many parts were merged
    max_parts_in_flight: int = 0  # chunked uploads: most part PUTs the sim saw at once


@dataclass(slots=True)
class Source:
    """What an upload's single source held."""

    kind: str  # url | file_data | upload_id
    size: int
    head: bytes | None  # the first bytes, when the sim saw them
    parts: int = 0
    max_parts_in_flight: int = 0


@dataclass
class Upload:
    """A chunked upload between `upload_prepare` and the merging `/files` call."""

    upload_id: str
    scene: Scene
    file_type: int
    file_name: str
    size: int
    md5: str
    sha1: str
    block_size: int
    indexes: list[int]
    data: dict[int, bytes] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    in_flight: int = 0
    max_in_flight: int = 0


@dataclass(slots=True)
class Served:
    """What an attachment URL of an injected message serves (or where it redirects)."""

    data: bytes
    content_type: str
    redirect: str | None = None


@dataclass
class MediaStore:
    files: dict[str, FileRecord] = field(default_factory=dict)  # by file_info
    uploads: dict[str, Upload] = field(default_factory=dict)  # by upload_id
    attachments: dict[str, Served] = field(default_factory=dict)  # by attachment id
    part_failures: int = 0  # upload_part_finish calls still to fail (a fault)
