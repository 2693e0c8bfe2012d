"""Media out, over the emulator: every kind by URL and by bytes in C2C and groups, local files,
the chunked upload (every part, `upload_config.concurrency` respected, the merged size), the size
limits refused before anything is uploaded, voice converted to SILK, bytes spooled beside the
database instead of in the outbox row."""

from __future__ import annotations

import base64
import io
import json
import math
import shutil
import struct
import wave
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from herald.core.clock import SystemClock
from herald.core.segments import Media, MediaKind, Text
from herald.core.target import Scene, Target
from herald.delivery.spool import MediaSpool
from herald.sim.stores.media import FileRecord
from herald.store.db import Database
from herald.store.tables.outbox import OutboxItem
from tests.delivery.harness import Stack, stack

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 200
MP4 = b"\0\0\0\x18ftypmp42" + b"\0" * 200
SILK = b"\x02#!SILK_V3" + b"\x10\0" * 50
PDF = b"%PDF-1.4\n" + b"x" * 300
SAMPLES = {MediaKind.IMAGE: PNG, MediaKind.VIDEO: MP4, MediaKind.VOICE: SILK, MediaKind.FILE: PDF}
FILE_TYPES = {MediaKind.IMAGE: 1, MediaKind.VIDEO: 2, MediaKind.VOICE: 3, MediaKind.FILE: 4}
FORMATS = {MediaKind.IMAGE: "png", MediaKind.VIDEO: "mp4", MediaKind.VOICE: "silk", MediaKind.FILE: None}
UPLOADS = ("/files", "/upload_prepare", "/upload_part_finish")


def wav(seconds: float = 0.5, rate: int = 24000, channels: int = 1) -> bytes:
    """A 440 Hz tone as a 16-bit PCM WAV."""
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) * channels
        for i in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as clip:
        clip.setnchannels(channels)
        clip.setsampwidth(2)
        clip.setframerate(rate)
        clip.writeframes(frames)
    return out.getvalue()


async def hosted(herald: Stack, data: bytes, content_type: str) -> str:
    """A URL on the emulator's own media host serving `data` (the emulator fetches it as a source)."""
    stored = await herald.control.call(
        "POST",
        "/_sim/attachments",
        {"data_base64": base64.b64encode(data).decode(), "content_type": content_type},
    )
    return str(stored["url"])


async def send(herald: Stack, target: Target, *segments: Any) -> Any:
    if target.scene is Scene.GROUP:
        trigger = await herald.member_says(target.id, "m1")
    else:
        trigger = await herald.user_says(target.id)
    receipt = await herald.outbox.enqueue(target, list(segments), origin="t", trigger_id=trigger.message_id)
    return await receipt


def uploads(requests: list[dict[str, Any]]) -> list[str]:
    return [r["path"] for r in requests if r["path"].endswith(UPLOADS)]


def files(herald: Stack) -> list[FileRecord]:
    return [record for record in herald.sim.state.media.files.values() if isinstance(record, FileRecord)]


@pytest.mark.parametrize("scene", [Scene.C2C, Scene.GROUP])
async def test_every_kind_goes_out_by_url_and_by_bytes(db: Database, scene: Scene, tmp_path: Path) -> None:
    target = Target(scene, "u1" if scene is Scene.C2C else "g1")
    spool = MediaSpool(tmp_path / "spool")
    async with stack(db, spool=spool) as herald:
        for kind, data in SAMPLES.items():
            url = await hosted(herald, data, "application/octet-stream")
            by_url = await send(herald, target, Media(kind, url=url, name=f"by-url.{kind.value}"))
            by_bytes = await send(herald, target, Media(kind, data=data, name=f"bytes.{kind.value}"))
            assert by_url.delivered, by_url.reason
            assert by_bytes.delivered, by_bytes.reason
        received = [e["media"] for e in await herald.control.delivered(scene.value, target.id)]
        async with db.session() as session:
            rows = list(await session.scalars(select(OutboxItem.segments)))
    expected = [
        (FILE_TYPES[kind], len(data), FORMATS[kind])
        for kind, data in SAMPLES.items()
        for _ in ("url", "bytes")
    ]
    assert [(m["file_type"], m["size"], m["format"]) for m in received] == expected
    # The bytes waited as files beside the database, not in the rows, and are gone once sent.
    stored = [item for row in rows for item in json.loads(row)]
    assert all(item["data"] is None for item in stored)
    assert sum(str(item.get("path", "")).startswith(str(spool.directory.resolve())) for item in stored) == 4
    assert list(spool.directory.iterdir()) == []


async def test_a_local_file_goes_out_by_path_with_its_name(db: Database, tmp_path: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(PDF)
    async with stack(db) as herald:
        result = await send(herald, Target(Scene.GROUP, "g1"), Media(MediaKind.FILE, path=str(report)))
        (entry,) = await herald.control.delivered("group", "g1")
    assert result.delivered, result.reason
    assert entry["media"] == {"file_type": 4, "size": len(PDF), "name": "report.pdf", "format": None}


async def test_a_file_over_the_inline_limit_goes_up_in_parts(db: Database, tmp_path: Path) -> None:
    block = 64 * 1024
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        for i in range(17):
            out.write(bytes([i]) * block)
        out.write(b"tail")
    size = big.stat().st_size
    # Real time on both sides: part_finish takes 10 requests a second, and Herald paces itself.
    clock = SystemClock()
    async with stack(db, clock=clock, upload_block_size=block, upload_concurrency=3) as herald:
        assert herald.platform.media is not None
        herald.platform.media.inline_max = 100 * 1024
        result = await send(
            herald, Target(Scene.C2C, "u1"), Text("here"), Media(MediaKind.FILE, path=str(big))
        )
        requests = await herald.control.requests()
        (record,) = files(herald)
        delivered = await herald.control.delivered("c2c", "u1")
    assert result.delivered, result.reason
    assert herald.platform.media.chunked_uploads == 1
    puts = [r for r in requests if r["path"].startswith("/_sim/cos/")]
    finishes = [r for r in requests if r["path"].endswith("/upload_part_finish")]
    assert len(puts) == len(finishes) == 18 and all(r["status"] == 200 for r in puts + finishes)
    assert (record.source, record.parts, record.size, record.name) == ("upload_id", 18, size, "big.bin")
    assert 1 <= record.max_parts_in_flight <= 3
    assert delivered[0]["content"] == "here"
    assert delivered[1]["media"]["size"] == size


async def test_over_a_limit_is_refused_by_name_before_anything_is_uploaded(
    db: Database, tmp_path: Path
) -> None:
    picture = tmp_path / "huge.png"
    with picture.open("wb") as out:
        out.write(PNG)
        out.truncate(21 * 1024 * 1024)  # sparse: costs no disk
    archive = tmp_path / "huge.zip"
    with archive.open("wb") as out:
        out.truncate(201 * 1024 * 1024)
    async with stack(db) as herald:
        too_big = await send(herald, Target(Scene.C2C, "u1"), Media(MediaKind.IMAGE, path=str(picture)))
        far_too_big = await send(herald, Target(Scene.C2C, "u1"), Media(MediaKind.FILE, path=str(archive)))
        requests = await herald.control.requests()
        delivered = await herald.control.delivered("c2c", "u1")
    assert not too_big.delivered and not far_too_big.delivered
    assert too_big.reason is not None and "huge.png is 21.0 MB" in too_big.reason
    assert "limit of 20 MB for pictures" in too_big.reason and "send it as a file" in too_big.reason
    assert far_too_big.reason is not None and "limit of 200 MB for any upload" in far_too_big.reason
    assert uploads(requests) == []
    assert [e["msg_type"] for e in delivered] == [0]  # only the notice that a message was not delivered


async def test_guild_scenes_refuse_what_they_cannot_take_before_any_upload(db: Database) -> None:
    async with stack(db) as herald:
        await herald.control.channel("c1", "guild1", "a1", "hi")
        receipt = await herald.outbox.enqueue(
            Target(Scene.CHANNEL, "c1"), [Media(MediaKind.FILE, data=PDF, name="a.pdf")], origin="t"
        )
        result = await receipt
        requests = await herald.control.requests()
    assert not result.delivered
    assert result.reason is not None and "guild channels and guild DMs take no file messages" in result.reason
    assert uploads(requests) == []


async def test_voice_is_converted_to_silk(db: Database) -> None:
    async with stack(db) as herald:
        mono = await send(herald, Target(Scene.C2C, "u1"), Media(MediaKind.VOICE, data=wav(), name="hi.wav"))
        stereo = await send(
            herald, Target(Scene.GROUP, "g1"), Media(MediaKind.VOICE, data=wav(rate=16000, channels=2))
        )
        (c2c,) = await herald.control.delivered("c2c", "u1")
        (group,) = await herald.control.delivered("group", "g1")
    assert mono.delivered and stereo.delivered, (mono.reason, stereo.reason)
    assert c2c["media"]["file_type"] == group["media"]["file_type"] == 3
    assert c2c["media"]["format"] == group["media"]["format"] == "silk"


async def test_voice_that_cannot_be_converted_is_not_sent_and_says_why(db: Database) -> None:
    mp3 = b"ID3\x03\0\0\0\0\0\0" + b"\xff\xfb" + b"\0" * 400  # an MP3 header and no real frames
    async with stack(db) as herald:
        result = await send(herald, Target(Scene.C2C, "u1"), Media(MediaKind.VOICE, data=mp3, name="a.mp3"))
        requests = await herald.control.requests()
    assert not result.delivered and result.reason is not None
    assert result.reason.startswith("voice not sent: ")
    if shutil.which("ffmpeg") is None:
        assert "needs ffmpeg, which is not installed here" in result.reason
    else:
        assert "ffmpeg could not decode a.mp3" in result.reason
    assert uploads(requests) == []


async def test_the_emulator_refuses_voice_that_is_not_a_voice_format(db: Database) -> None:
    """What Herald's conversion exists for: a voice upload the platform cannot play is refused."""
    async with stack(db) as herald:
        assert herald.platform.api is not None
        from herald.qq.api import FileType
        from herald.qq.errors import QQApiError

        with pytest.raises(QQApiError) as refused:
            await herald.platform.api.upload_file(Scene.C2C, "u1", FileType.VOICE, data=PNG)
    assert refused.value.code == 850019
