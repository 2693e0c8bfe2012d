"""Rich media: /files, file_info scope and ttl, chunked uploads (rules 56, 69-75)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.sim.conftest import SimClient

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 100).decode()


async def _upload(client: SimClient, path: str, **body: Any) -> dict[str, Any]:
    answer = (await client.post(path, {"file_type": 1, "file_data": PNG, "srv_send_msg": False, **body})).ok()
    return dict(answer)


async def test_rule56_msg_type_7_needs_a_file_info_of_the_same_scene(client: SimClient) -> None:
    c2c = await _upload(client, "/v2/users/u1/files")
    assert set(c2c) == {"file_uuid", "file_info", "ttl"}
    media = {"msg_type": 7, "content": " "}
    (await client.post("/v2/users/u1/messages", {**media, "media": {"file_info": c2c["file_info"]}})).ok()
    (await client.post("/v2/groups/g1/messages", {**media, "media": {"file_info": c2c["file_info"]}})).error(
        304080
    )
    (await client.post("/v2/users/u1/messages", {**media, "media": {"file_info": "bogus"}})).error(304080)
    (await client.post("/v2/users/u1/messages", {"msg_type": 7, "content": "x"})).error(22006)


async def test_rule56_file_info_expires_with_its_ttl(client: SimClient) -> None:
    uploaded = await _upload(client, "/v2/users/u1/files")
    await client.advance(uploaded["ttl"] + 1)
    body = {"msg_type": 7, "media": {"file_info": uploaded["file_info"]}}
    (await client.post("/v2/users/u1/messages", body)).error(304080)


async def test_rule69_file_type_and_exactly_one_source(client: SimClient) -> None:
    (await client.post("/v2/users/u1/files", {"file_type": 5, "file_data": PNG})).error(850019)
    (await client.post("/v2/users/u1/files", {"file_type": 1})).error(12002)
    both = {"file_type": 1, "file_data": PNG, "url": "http://127.0.0.1:1/x.png"}
    (await client.post("/v2/users/u1/files", both)).error(12002)


@contextlib.asynccontextmanager
async def _image_server(body: bytes) -> AsyncIterator[str]:
    """A loopback server the sim can fetch an upload `url` from; yields the image's URL."""

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="image/png")

    assets = web.Application()
    assets.router.add_get("/image.png", image)
    runner = web.AppRunner(assets)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/image.png"
    finally:
        await runner.cleanup()


async def test_rule70_url_fetching(client: SimClient) -> None:
    async with _image_server(b"\x89PNG" + b"1" * 64) as url:
        (await client.post("/v2/groups/g1/files", {"file_type": 1, "url": url})).ok()
        missing = {"file_type": 1, "url": url.replace("image.png", "missing.png")}
        (await client.post("/v2/groups/g1/files", missing)).error(850026)
    elsewhere = {"file_type": 1, "url": "https://cdn.example.com/a.png"}
    (await client.post("/v2/groups/g1/files", elsewhere)).error(850026)
    await client.settings(assume_fetchable=["https://cdn.example.com/"])
    (await client.post("/v2/groups/g1/files", elsewhere)).ok()


async def test_rule70_size_limits_downgrade_then_refuse(client: SimClient) -> None:
    big = b"\x89PNG" + b"2" * (20 * 1024 * 1024)  # just over the 20 MB soft limit for images
    async with _image_server(big) as url:
        (await client.post("/v2/groups/g1/files", {"file_type": 1, "url": url, "srv_send_msg": True})).ok()
    await _upload(client, "/v2/groups/g1/files", srv_send_msg=True)
    entries = (await client.get("/_sim/transcript?scene=group&target=g1")).ok()["entries"]
    # Over the soft limit the image is silently sent as a file; a small one stays an image.
    assert [e["content"] for e in entries[-2:]] == ["[media file_type=4]", "[media file_type=1]"]
    over_hard_limit = {
        "file_type": 4,
        "file_name": "huge.bin",
        "file_size": str(200 * 1024 * 1024 + 1),
        "md5": "0" * 32,
        "sha1": "0" * 40,
        "md5_10m": "0" * 32,
    }
    (await client.post("/v2/users/u1/upload_prepare", over_hard_limit)).error(850031)


async def test_rule71_srv_send_msg_returns_an_id_and_records_a_message(client: SimClient) -> None:
    sent = await _upload(client, "/v2/groups/g1/files", srv_send_msg=True)
    assert sent["id"].startswith("ROBOT1.0_")
    entries = (await client.get("/_sim/transcript?scene=group&target=g1")).ok()["entries"]
    assert entries[-1]["id"] == sent["id"] and entries[-1]["kind"] == "proactive"


async def test_rule72_file_info_reusable_across_targets_of_one_scene(client: SimClient) -> None:
    group = await _upload(client, "/v2/groups/g1/files")
    body = {"msg_type": 7, "media": {"file_info": group["file_info"]}}
    (await client.post("/v2/groups/g2/messages", body)).ok()
    (await client.post("/v2/users/u1/messages", body)).error(304080)


def _hashes(data: bytes) -> dict[str, str]:
    return {
        "file_size": str(len(data)),
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "md5_10m": hashlib.md5(data[:10_002_432]).hexdigest(),
    }


async def _chunked(client: SimClient, scene_path: str, data: bytes) -> dict[str, Any]:
    prepared = (
        await client.post(
            f"{scene_path}/upload_prepare", {"file_type": 4, "file_name": "a.bin", **_hashes(data)}
        )
    ).ok()
    return dict(prepared)


async def _put(client: SimClient, url: str, data: bytes) -> int:
    async with client.session.put(url, data=data) as response:
        return response.status


async def test_rule73_74_chunked_upload_round_trip(client: SimClient) -> None:
    await client.settings(upload_block_size=10)
    data = bytes(range(25))
    prepared = await _chunked(client, "/v2/users/u1", data)
    assert set(prepared) == {"upload_id", "block_size", "parts", "upload_config"}
    assert prepared["block_size"] == "10"
    assert [p["index"] for p in prepared["parts"]] == [1, 2, 3]
    assert [p["block_size"] for p in prepared["parts"]] == ["10", "10", "5"]
    upload_id = prepared["upload_id"]
    merge = {"upload_id": upload_id, "file_type": 4, "file_name": "a.bin", "srv_send_msg": False}
    for i, part in enumerate(prepared["parts"]):
        chunk = data[i * 10 : (i + 1) * 10]
        assert await _put(client, part["presigned_url"], chunk) == 200
        finish = {"upload_id": upload_id, "part_index": part["index"], "block_size": str(len(chunk))}
        bad = await client.post("/v2/users/u1/upload_part_finish", {**finish, "md5": "0" * 32})
        bad.error(850019)
        (await client.post("/v2/users/u1/files", merge)).error(850019)  # parts missing
        done = await client.post(
            "/v2/users/u1/upload_part_finish", {**finish, "md5": hashlib.md5(chunk).hexdigest()}
        )
        assert done.ok() == {}
    merged = (await client.post("/v2/users/u1/files", merge)).ok()
    assert merged["file_info"]
    (
        await client.post(
            "/v2/users/u1/messages", {"msg_type": 7, "media": {"file_info": merged["file_info"]}}
        )
    ).ok()


async def test_rule74_unknown_part_index_and_whole_file_hash_mismatch(client: SimClient) -> None:
    await client.settings(upload_block_size=10)
    data = b"x" * 10
    prepared = (
        await client.post(
            "/v2/groups/g1/upload_prepare",
            {"file_type": 4, **_hashes(data), "md5": hashlib.md5(b"other").hexdigest()},
        )
    ).ok()
    upload_id = prepared["upload_id"]
    finish = {"upload_id": upload_id, "block_size": "10", "md5": hashlib.md5(data).hexdigest()}
    (await client.post("/v2/groups/g1/upload_part_finish", {**finish, "part_index": 7})).error(850019)
    await _put(client, prepared["parts"][0]["presigned_url"], data)
    (await client.post("/v2/groups/g1/upload_part_finish", {**finish, "part_index": 1})).ok()
    (await client.post("/v2/groups/g1/files", {"upload_id": upload_id, "file_type": 4})).error(850019)


async def test_rule73_prepare_needs_string_sizes_and_hashes(client: SimClient) -> None:
    body = {"file_type": 4, **_hashes(b"abc"), "file_size": 3}
    (await client.post("/v2/users/u1/upload_prepare", body)).error(12002)


async def test_rule75_part_finish_retry_hook_and_daily_quota(client: SimClient) -> None:
    await client.settings(upload_block_size=10)
    data = b"y" * 4
    prepared = await _chunked(client, "/v2/users/u1", data)
    await _put(client, prepared["parts"][0]["presigned_url"], data)
    await client.post("/_sim/faults", {"kind": "upload_part_fail", "count": 2})
    finish = {
        "upload_id": prepared["upload_id"],
        "part_index": 1,
        "block_size": "4",
        "md5": hashlib.md5(data).hexdigest(),
    }
    (await client.post("/v2/users/u1/upload_part_finish", finish)).error(40093001)
    (await client.post("/v2/users/u1/upload_part_finish", finish)).error(40093001)
    (await client.post("/v2/users/u1/upload_part_finish", finish)).ok()
    await client.settings(upload_quota_exhausted=True)
    (await client.post("/v2/users/u1/upload_prepare", {"file_type": 4, **_hashes(data)})).error(40093002)
