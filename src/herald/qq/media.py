"""Rich media: upload to the same scene's `/files`, and reuse the `file_info` until its ttl ends.

A file_info is scene-bound (C2C vs group) but not target-bound, so the cache key is the scene
plus the content (the URL, or the bytes' size, md5 and sha1). The cache is in the database so a
restart does not re-upload.

Before anything is uploaded the media is checked against the platform's limits (`LIMITS`): a
picture, video or voice clip over its size limit would arrive as a plain file, and anything over
200 MB is refused, so both are refused here with the limit named (`MediaRefused`). A voice clip
that is not SILK is converted first (`herald.qq.voice`). Bytes up to `inline_max` go inline as
`file_data`; larger ones (and local files over it) go through the chunked upload, read part by
part. A URL is handed to the platform, which fetches it (its size is the platform's to check).
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

from herald.core.clock import Clock
from herald.core.segments import Media, MediaKind
from herald.core.target import DEFAULT_PLATFORM, Scene, Target
from herald.qq.api import BytesSource, FileHashes, FileSource, QQApi, UploadSource
from herald.qq.tables import MediaUpload
from herald.qq.voice import VoiceError, is_silk, to_silk
from herald.store.db import Database

FILE_TYPES = {MediaKind.IMAGE: 1, MediaKind.VIDEO: 2, MediaKind.VOICE: 3, MediaKind.FILE: 4}
MB = 1024 * 1024
# The platform's limits per kind: over its own limit a picture, video or voice clip is silently
# downgraded to a file upload; nothing over 200 MB is accepted (850031).
LIMITS = {
    MediaKind.IMAGE: 20 * MB,
    MediaKind.VIDEO: 30 * MB,
    MediaKind.VOICE: 20 * MB,
    MediaKind.FILE: 200 * MB,
}
KIND_NAMES = {MediaKind.IMAGE: "pictures", MediaKind.VIDEO: "videos", MediaKind.VOICE: "voice clips"}
# Bytes up to this size go inline (base64 `file_data`); larger ones through the chunked upload.
INLINE_MAX = 5 * MB
# Stop using a file_info a little before the platform's ttl ends.
TTL_MARGIN_S = 30.0


class MediaRefused(Exception):
    """This media cannot be sent where it was going; the message says why and what to do."""


def size_text(size: int) -> str:
    if size >= MB:
        return f"{size / MB:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def check_size(kind: MediaKind, size: int, name: str) -> None:
    """Refuse what the platform would refuse (850031) or show as something else (a plain file)."""
    limit = LIMITS[kind]
    if size <= limit:
        return
    if kind is MediaKind.FILE:
        raise MediaRefused(
            f"{name} is {size_text(size)}, over QQ's limit of {limit // MB} MB for any upload; "
            "send a link to it instead"
        )
    raise MediaRefused(
        f"{name} is {size_text(size)}, over QQ's limit of {limit // MB} MB for {KIND_NAMES[kind]} "
        f"(a larger one would arrive only as a file); make it smaller, or send it as a file "
        f"(up to {LIMITS[MediaKind.FILE] // MB} MB)"
    )


def check_scene(kind: MediaKind, scene: Scene, *, by_url: bool) -> None:
    """What each scene takes: C2C and groups every kind through `/files`; guild channels and
    guild DMs only pictures, and here only by URL."""
    if scene in (Scene.C2C, Scene.GROUP):
        return
    if kind is not MediaKind.IMAGE:
        raise MediaRefused(f"QQ guild channels and guild DMs take no {kind.value} messages")
    if not by_url:
        raise MediaRefused("in QQ guild channels and guild DMs Herald sends pictures by http(s) URL only")


class MediaUploader:
    def __init__(self, api: QQApi, db: Database, clock: Clock, *, inline_max: int = INLINE_MAX) -> None:
        self._api = api
        self._db = db
        self._clock = clock
        self.inline_max = inline_max
        self.uploads = 0  # observability, tests
        self.chunked_uploads = 0

    async def file_info(self, target: Target, media: Media) -> str:
        check_scene(media.kind, target.scene, by_url=media.url is not None)
        file_type = FILE_TYPES[media.kind]
        if media.url is not None:
            key = f"{_place(target)}:url:{_digest(media.kind.value, media.url)}"
            cached = await self._cached(key)
            if cached is not None:
                return cached
            answer = await self._api.upload_file(
                target.scene, target.id, file_type, url=media.url, file_name=media.name
            )
            return await self._store(key, answer)
        source = await self._source(media)
        try:
            name = media.file_name
            check_size(media.kind, source.size, name)
            hashes = await asyncio.to_thread(FileHashes.of_source, source)
            content = _digest(media.kind.value, str(hashes.size), hashes.md5, hashes.sha1)
            key = f"{_place(target)}:data:{content}"
            cached = await self._cached(key)
            if cached is not None:
                return cached
            if source.size <= self.inline_max:
                data = await asyncio.to_thread(source.read, 0, source.size)
                answer = await self._api.upload_file(
                    target.scene, target.id, file_type, data=data, file_name=name
                )
            else:
                answer = await self._api.upload_chunked(
                    target.scene, target.id, file_type, source, name, hashes=hashes
                )
                self.chunked_uploads += 1
            return await self._store(key, answer)
        finally:
            source.close()

    async def _source(self, media: Media) -> UploadSource:
        name = media.file_name
        if media.path is not None:
            try:
                source: UploadSource = FileSource(media.path)
            except FileNotFoundError:
                raise MediaRefused(
                    f"{media.path} no longer exists (a local file must stay until its message is sent)"
                ) from None
            except OSError as exc:
                raise MediaRefused(f"cannot read {media.path}: {exc.strerror or exc}") from None
        else:
            assert media.data is not None
            source = BytesSource(media.data)
        if media.kind is not MediaKind.VOICE:
            return source
        head = await asyncio.to_thread(source.read, 0, 16)
        if is_silk(head):
            return source
        try:
            # A voice clip is converted in memory: it is checked against the upload limit first.
            check_size(MediaKind.FILE, source.size, name)
            raw = await asyncio.to_thread(source.read, 0, source.size)
            silk = await asyncio.to_thread(to_silk, raw, name)
        except VoiceError as exc:
            raise MediaRefused(f"voice not sent: {exc}") from None
        finally:
            source.close()
        return BytesSource(silk)

    async def _cached(self, key: str) -> str | None:
        async with self._db.session() as session:
            cached = await session.get(MediaUpload, key)
        if cached is not None and (cached.expires_at is None or cached.expires_at > self._clock.now()):
            return cached.file_info
        return None

    async def _store(self, key: str, answer: dict[str, object]) -> str:
        self.uploads += 1
        file_info = str(answer["file_info"])
        ttl = answer.get("ttl")
        ttl_s = int(ttl) if isinstance(ttl, int | str) and str(ttl).isdigit() else 0
        now = self._clock.now()
        expires = None if ttl_s == 0 else now + timedelta(seconds=max(0.0, ttl_s - TTL_MARGIN_S))
        async with self._db.session() as session:
            row = await session.get(MediaUpload, key)
            if row is None:
                session.add(MediaUpload(key=key, file_info=file_info, expires_at=expires))
            else:
                row.file_info = file_info
                row.expires_at = expires
            await session.commit()
        return file_info


def _digest(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def _place(target: Target) -> str:
    """Where an upload is reusable: its scene, on its bot (the platform instance); the platform
    named "qq" keeps the keys it had before instances were named."""
    return (
        target.scene.value
        if target.platform == DEFAULT_PLATFORM
        else f"{target.platform}:{target.scene.value}"
    )
