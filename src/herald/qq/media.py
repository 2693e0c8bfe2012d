"""Rich media: upload to the same scene's `/files`, and reuse the `file_info` until its ttl ends.

A file_info is scene-bound (C2C vs group) but not target-bound, so the cache
key is the scene plus the content (URL or bytes hash). The cache is in the database so a restart
does not re-upload.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from herald.core.clock import Clock
from herald.core.segments import Media, MediaKind
from herald.core.target import Scene, Target
from herald.qq.api import QQApi
from herald.store.db import Database
from herald.store.tables.ledger import MediaUpload

FILE_TYPES = {MediaKind.IMAGE: 1, MediaKind.VIDEO: 2, MediaKind.VOICE: 3, MediaKind.FILE: 4}
# Stop using a file_info a little before the platform's ttl ends.
TTL_MARGIN_S = 30.0


class MediaUploader:
    def __init__(self, api: QQApi, db: Database, clock: Clock) -> None:
        self._api = api
        self._db = db
        self._clock = clock
        self.uploads = 0  # observability, tests

    async def file_info(self, target: Target, media: Media) -> str:
        if target.scene not in (Scene.C2C, Scene.GROUP):
            raise ValueError(f"/files uploads exist only for C2C and groups, not {target.scene}")
        key = _cache_key(target.scene, media)
        now = self._clock.now()
        async with self._db.session() as session:
            cached = await session.get(MediaUpload, key)
            if cached is not None and (cached.expires_at is None or cached.expires_at > now):
                return cached.file_info
        answer = await self._api.upload_file(
            target.scene,
            target.id,
            FILE_TYPES[media.kind],
            url=media.url,
            data=media.data,
            file_name=media.name,
        )
        self.uploads += 1
        file_info = str(answer["file_info"])
        ttl = int(answer.get("ttl") or 0)
        expires = None if ttl == 0 else now + timedelta(seconds=max(0.0, ttl - TTL_MARGIN_S))
        async with self._db.session() as session:
            row = await session.get(MediaUpload, key)
            if row is None:
                session.add(MediaUpload(key=key, file_info=file_info, expires_at=expires))
            else:
                row.file_info = file_info
                row.expires_at = expires
            await session.commit()
        return file_info


def _cache_key(scene: Scene, media: Media) -> str:
    digest = hashlib.sha256()
    digest.update(media.kind.value.encode())
    if media.url is not None:
        digest.update(b"url:" + media.url.encode())
    else:
        assert media.data is not None
        digest.update(b"data:" + media.data)
    return f"{scene.value}:{digest.hexdigest()}"
