"""Rich media: `/files` uploads, chunked uploads, and the file_info each one issues (rules 56, 69-75).

A file_info is bound to the scene whose endpoint issued it (C2C or group), not to the target
(rule 72), and lives for `file_info_ttl_s` (0 = long-lived).

Source URLs: the emulator has no internet, so a `url` is only really fetched when its host is in
`settings.fetch_hosts` (loopback by default; a short timeout, and any non-200 answer fails with
850026). A URL starting with one of `settings.assume_fetchable` is accepted without fetching, as a
1 KiB file. Every other URL fails with 850026, as an unreachable source does on the platform.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from herald.sim.errors import SimError
from herald.sim.state import Scene, SimState
from herald.sim.stores.media import FileRecord, Source, Upload

MB = 1024 * 1024
HARD_LIMIT = 200 * MB
# Over the soft limit an upload is silently downgraded to a file upload (file_type 4).
SOFT_LIMITS = {1: 20 * MB, 2: 30 * MB, 3: 20 * MB, 4: 200 * MB}
MD5_10M_BYTES = 10_002_432


# The formats each file type takes (the rich-media overview's table): recognised by their first
# bytes. A source whose bytes the sim never sees (an `assume_fetchable` URL) is not checked.
FORMATS = {
    1: ("png", "jpg", "gif", "webp", "bmp"),
    2: ("mp4",),
    3: ("silk", "mp3", "wav", "ogg"),
}
HEAD_BYTES = 16


def sniff(head: bytes) -> str | None:
    """The format of a file from its first bytes, as far as the rich-media rules care."""
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"#!SILK_V3", b"\x02#!SILK_V3")):
        return "silk"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head.startswith(b"OggS"):
        return "ogg"
    if head[4:8] == b"ftyp":
        return "mp4"
    return None


def file_type_of(body: dict[str, Any]) -> int:
    file_type = body.get("file_type")
    if isinstance(file_type, bool) or not isinstance(file_type, int) or not 1 <= file_type <= 4:
        raise SimError(850019, f"不支持的文件类型 file_type={file_type!r}")
    return file_type


def require_file_info(state: SimState, scene: Scene, file_info: str) -> FileRecord:
    """Rule 56/72: the file_info must come from this scene's upload endpoint and be unexpired."""
    record = state.media.files.get(file_info)
    if not isinstance(record, FileRecord) or record.scene != scene:
        raise SimError(304080)
    if record.expires_at is not None and state.clock.time() > record.expires_at:
        raise SimError(304080, "file_info已过期")
    return record


def check_format(state: SimState, file_type: int, source: Source) -> str | None:
    """The source's format; 850019 when the sim saw its bytes and the file type does not take it."""
    if source.head is None:
        return None
    found = sniff(source.head)
    allowed = FORMATS.get(file_type)
    if state.settings.check_formats and allowed is not None and found not in allowed:
        raise SimError(850019, f"不支持的文件格式: file_type={file_type} 需要 {'/'.join(allowed)}")
    return found


def described(state: SimState, body: dict[str, Any]) -> dict[str, Any]:
    """What a user receives from a `msg_type 7` send, for the transcript (its file_info is valid)."""
    record = state.media.files[str(body["media"]["file_info"])]
    assert isinstance(record, FileRecord)
    return {"file_type": record.file_type, "size": record.size, "name": record.name, "format": record.format}


def issue(
    state: SimState, scene: Scene, file_type: int, source: Source, name: str = "", fmt: str | None = None
) -> FileRecord:
    size = source.size
    if size > SOFT_LIMITS[file_type]:
        file_type = 4
    ttl = state.settings.file_info_ttl_s
    record = FileRecord(
        file_info=base64.b64encode(secrets.token_bytes(60)).decode(),
        file_uuid=secrets.token_hex(16),
        scene=scene,
        file_type=file_type,
        size=size,
        expires_at=None if ttl == 0 else state.clock.time() + ttl,
        name=name,
        format=fmt,
        source=source.kind,
        parts=source.parts,
        max_parts_in_flight=source.max_parts_in_flight,
    )
    state.media.files[record.file_info] = record
    return record


async def source_of(state: SimState, scene: Scene, body: dict[str, Any]) -> Source:
    """The upload's single source: `url`, `file_data` or `upload_id` (rule 69)."""
    sources = [key for key in ("url", "file_data", "upload_id") if body.get(key)]
    if len(sources) != 1:
        raise SimError(12002, "url、file_data、upload_id必须且只能提供一个")
    if sources[0] == "url":
        size, head = await fetch(state, str(body["url"]))
        return Source("url", size, head)
    if sources[0] == "file_data":
        try:
            data = base64.b64decode(str(body["file_data"]), validate=True)
        except (binascii.Error, ValueError):
            raise SimError(12002, "file_data不是合法的base64") from None
        return Source("file_data", len(data), data[:HEAD_BYTES])
    return merge(state, scene, str(body["upload_id"]))


async def source_size(state: SimState, scene: Scene, body: dict[str, Any]) -> int:
    return (await source_of(state, scene, body)).size


async def fetch(state: SimState, url: str) -> tuple[int, bytes | None]:
    settings = state.settings
    if any(url.startswith(prefix) for prefix in settings.assume_fetchable):
        return 1024, None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in settings.fetch_hosts:
        raise SimError(850026, f"文件下载失败: {url}")
    try:
        timeout = aiohttp.ClientTimeout(total=settings.fetch_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            if response.status != 200:
                raise SimError(850026, f"文件下载失败: HTTP {response.status}")
            size = 0
            head = b""
            async for chunk in response.content.iter_chunked(1 << 16):
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                size += len(chunk)
                if size > HARD_LIMIT:
                    raise SimError(850031)
            return size, head
    except (aiohttp.ClientError, TimeoutError):
        raise SimError(850026, f"文件下载失败: {url}") from None


# ---- chunked upload --------------------------------------------------------------------------------


def prepare(state: SimState, scene: Scene, body: dict[str, Any], base_url: str) -> dict[str, Any]:
    """`upload_prepare` (rule 73): hashes and size are strings; parts point at the sim's own PUT URLs."""
    if state.settings.upload_quota_exhausted:
        raise SimError(40093002)
    file_type = file_type_of(body)
    for key in ("file_size", "md5", "sha1", "md5_10m"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise SimError(12002, f"{key}必须是非空字符串")
    try:
        size = int(body["file_size"])
    except ValueError:
        raise SimError(12002, "file_size必须是整数字符串") from None
    if size <= 0:
        raise SimError(12002, "file_size必须大于0")
    if size > HARD_LIMIT:
        raise SimError(850031)
    block = state.settings.upload_block_size
    base = state.settings.upload_part_base
    count = (size + block - 1) // block
    upload = Upload(
        upload_id="UP_" + secrets.token_hex(16),
        scene=scene,
        file_type=file_type,
        file_name=str(body.get("file_name") or ""),
        size=size,
        md5=body["md5"].lower(),
        sha1=body["sha1"].lower(),
        block_size=block,
        indexes=[base + i for i in range(count)],
    )
    state.media.uploads[upload.upload_id] = upload
    parts = [
        {
            "index": index,
            "presigned_url": f"{base_url}/_sim/cos/{upload.upload_id}/{index}",
            "block_size": str(min(block, size - i * block)),
        }
        for i, index in enumerate(upload.indexes)
    ]
    return {
        "upload_id": upload.upload_id,
        "block_size": str(block),
        "parts": parts,
        "upload_config": {
            "concurrency": state.settings.upload_concurrency,
            "retry_timeout": 300,
            "retry_delay": 1,
        },
    }


def begin_part(state: SimState, upload_id: str, index: int) -> Upload | None:
    """A part's PUT started (its body not read yet): counted in flight until `put_part`."""
    upload = state.media.uploads.get(upload_id)
    if not isinstance(upload, Upload) or index not in upload.indexes:
        return None
    upload.in_flight += 1
    upload.max_in_flight = max(upload.max_in_flight, upload.in_flight)
    return upload


def put_part(upload: Upload, index: int, data: bytes | None) -> None:
    upload.in_flight -= 1
    if data is not None:
        upload.data[index] = data


def part_finish(state: SimState, scene: Scene, body: dict[str, Any]) -> dict[str, Any]:
    """`upload_part_finish` (rules 74-75): the part must be uploaded and match its md5."""
    if state.media.part_failures > 0:
        state.media.part_failures -= 1
        raise SimError(40093001)
    upload = state.media.uploads.get(str(body.get("upload_id")))
    if not isinstance(upload, Upload) or upload.scene != scene:
        raise SimError(850019, "upload_id无效")
    index = body.get("part_index")
    if not isinstance(index, int) or index not in upload.indexes:
        raise SimError(850019, f"part_index无效: {index!r}")
    data = upload.data.get(index)
    if data is None:
        raise SimError(850019, f"分片{index}尚未上传")
    if hashlib.md5(data).hexdigest() != str(body.get("md5", "")).lower():
        raise SimError(850019, f"分片{index}的md5不匹配")
    upload.finished.add(index)
    return {}


def merge(state: SimState, scene: Scene, upload_id: str) -> Source:
    upload = state.media.uploads.get(upload_id)
    if not isinstance(upload, Upload) or upload.scene != scene:
        raise SimError(850019, "upload_id无效")
    missing = [i for i in upload.indexes if i not in upload.finished]
    if missing:
        raise SimError(850019, f"分片未全部完成: {missing}")
    md5, sha1, size = hashlib.md5(), hashlib.sha1(), 0
    for index in upload.indexes:
        part = upload.data[index]
        md5.update(part)
        sha1.update(part)
        size += len(part)
    if size != upload.size or md5.hexdigest() != upload.md5 or sha1.hexdigest() != upload.sha1:
        raise SimError(850019, "合并后的文件大小或md5/sha1与upload_prepare不一致")
    head = upload.data[upload.indexes[0]][:HEAD_BYTES]
    del state.media.uploads[upload_id]
    return Source("upload_id", size, head, len(upload.indexes), upload.max_in_flight)
