"""The QQ OpenAPI over one keep-alive aiohttp session.

    api = QQApi(session, tokens, api_base="https://api.sgroup.qq.com")
    sent = await api.post_message(Scene.C2C, user_openid, {"msg_type": 0, "content": "hi", ...})

Every call sends `Authorization: QQBot <token>` and `X-Union-Appid`; a 401 (or a token code)
invalidates the token, fetches a fresh one and retries the call once. Any other failure raises
`QQApiError` (classified by `herald.qq.errors`); a connection failure is a `QQApiError` with
status 0 and kind RETRY_LATER. Bodies are plain dicts: rendering them is the caller's job.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from herald.core.clock import Clock
from herald.core.errors import ErrorKind
from herald.core.target import Scene
from herald.qq.auth import TokenManager
from herald.qq.errors import UPLOAD_RETRY_CODE, QQApiError

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.sgroup.qq.com"
MD5_10M_BYTES = 10_002_432  # md5_10m covers exactly this many leading bytes (§8.2)
# Parts in flight are held in memory (each up to block_size): never more than this many at once,
# nor more than fit in UPLOAD_BUFFER_BYTES, whatever `upload_config.concurrency` says.
MAX_PARTS_IN_FLIGHT = 8
UPLOAD_BUFFER_BYTES = 24 * 1024 * 1024
OK_STATUSES = frozenset({200, 201, 202, 204})


class FileType:
    """`file_type` values of the v2 `/files` endpoints (§8.1)."""

    IMAGE = 1
    VIDEO = 2
    VOICE = 3
    FILE = 4


def _seg(value: str) -> str:
    return quote(value, safe="")


def message_path(scene: Scene, target_id: str) -> str:
    """The send endpoint of a scene: C2C user, group, guild channel, or guild DM session."""
    t = _seg(target_id)
    if scene is Scene.C2C:
        return f"/v2/users/{t}/messages"
    if scene is Scene.GROUP:
        return f"/v2/groups/{t}/messages"
    if scene is Scene.CHANNEL:
        return f"/channels/{t}/messages"
    return f"/dms/{t}/messages"


def _v2_root(scene: Scene, target_id: str) -> str:
    if scene is Scene.C2C:
        return f"/v2/users/{_seg(target_id)}"
    if scene is Scene.GROUP:
        return f"/v2/groups/{_seg(target_id)}"
    raise ValueError(f"rich-media uploads exist only in C2C and group scenes, not {scene.value}")


class UploadSource:
    """What a chunked upload reads from, one part at a time: bytes already in memory, or a file
    (`FileSource`) that is never read whole."""

    size: int

    def read(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def read_into(self, offset: int, view: memoryview) -> int:
        """Fill `view` from `offset`; returns how many bytes were read."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds open (a file descriptor)."""


class BytesSource(UploadSource):
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self._data[offset : offset + length])

    def read_into(self, offset: int, view: memoryview) -> int:
        part = self._data[offset : offset + len(view)]
        view[: len(part)] = part
        return len(part)


class FileSource(UploadSource):
    """A local file read with `pread`, so parts read concurrently never share a file position."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def read_into(self, offset: int, view: memoryview) -> int:
        done = 0
        while done < len(view):
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got == 0:
                break
            done += got
        return done

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


HASH_READ_BYTES = 1 << 20
# A part's PUT body is written in slices this large, so the socket's send buffer never holds a
# copy of the whole part.
PUT_SLICE_BYTES = 256 * 1024
# `upload_part_finish` takes 10 requests a second per bot; parts finishing faster wait their turn.
PART_FINISH_QPS = 10


class _Pace:
    """At most `limit` calls in any `window` seconds as the server counts them: a call counts from
    when it is sent until `window` after its answer, so latency cannot push it over."""

    def __init__(self, clock: Clock, limit: int, window: float = 1.0) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._done: collections.deque[float] = collections.deque()
        self._in_flight = 0
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        async with self._lock:
            while True:
                now = self._clock.monotonic()
                while self._done and self._done[0] <= now - self._window:
                    self._done.popleft()
                if self._in_flight + len(self._done) < self._limit:
                    self._in_flight += 1
                    return
                wait = self._done[0] + self._window - now if self._done else self._window / self._limit
                await self._clock.sleep(max(wait, 0.0) + 1e-3)

    async def __aexit__(self, *_: object) -> None:
        self._in_flight -= 1
        self._done.append(self._clock.monotonic())


@dataclass(frozen=True, slots=True)
class FileHashes:
    size: int
    md5: str
    sha1: str
    md5_10m: str

    @classmethod
    def of(cls, data: bytes) -> FileHashes:
        return cls.of_source(BytesSource(data))

    @classmethod
    def of_source(cls, source: UploadSource) -> FileHashes:
        """One pass over the source, a megabyte at a time (blocking: run it in a thread)."""
        md5, sha1, md5_10m = hashlib.md5(), hashlib.sha1(), hashlib.md5()
        offset = 0
        while offset < source.size:
            chunk = source.read(offset, min(HASH_READ_BYTES, source.size - offset))
            if not chunk:
                raise OSError(f"the upload source ended at byte {offset} of {source.size}")
            md5.update(chunk)
            sha1.update(chunk)
            if offset < MD5_10M_BYTES:
                md5_10m.update(chunk[: MD5_10M_BYTES - offset])
            offset += len(chunk)
        return cls(size=source.size, md5=md5.hexdigest(), sha1=sha1.hexdigest(), md5_10m=md5_10m.hexdigest())


class QQApi:
    """Typed access to the endpoints Herald uses; one instance per bot, sharing one session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        tokens: TokenManager,
        api_base: str = DEFAULT_API_BASE,
        *,
        clock: Clock | None = None,
        timeout_s: float = 20.0,
    ) -> None:
        self.session = session
        self.tokens = tokens
        self.api_base = api_base.rstrip("/")
        self.clock: Clock = clock or tokens.clock
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._part_finish_pace = _Pace(self.clock, PART_FINISH_QPS)

    def __repr__(self) -> str:
        return f"QQApi(api_base={self.api_base!r}, app_id={self.tokens.app_id!r})"

    # -- the one request path ----------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One authenticated call; returns the parsed JSON body (None for an empty body)."""
        token = await self.tokens.get()
        try:
            return await self._once(method, path, token, json_body, params)
        except QQApiError as exc:
            if not exc.token_rejected:
                raise
            log.info("qq %s %s: token refused (code=%s); refreshing once", method, path, exc.code)
            self.tokens.invalidate(token)
            token = await self.tokens.get()
            return await self._once(method, path, token, json_body, params)

    async def _once(
        self,
        method: str,
        path: str,
        token: str,
        json_body: Any,
        params: Mapping[str, str] | None,
    ) -> Any:
        headers = {"Authorization": f"QQBot {token}", "X-Union-Appid": self.tokens.app_id}
        data: bytes | None = None
        if json_body is not None:
            data = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        url = self.api_base + path
        try:
            async with self.session.request(
                method, url, data=data, params=params, headers=headers, timeout=self.timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
                trace_id = resp.headers.get("X-Tps-trace-ID")
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise QQApiError(
                0,
                None,
                f"cannot reach {self.api_base} ({type(exc).__name__}: {exc})",
                method=method,
                path=path,
                kind=ErrorKind.RETRY_LATER,
                retry_after=1.0,
                # Only a refused connection proves the request was never written.
                maybe_sent=not isinstance(exc, aiohttp.ClientConnectorError),
            ) from None
        body = _parse(raw)
        if status in OK_STATUSES:
            # 201/202 are "accepted" and may carry an error-shaped body (guild audit): returned as is.
            return body
        error = QQApiError.from_response(
            status, body, trace_id=trace_id, method=method, path=path, retry_after=retry_after
        )
        log.warning("qq %s %s failed: %s", method, path, error)
        raise error

    async def _dict(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        result = await self.request(method, path, json_body=body, **kw)
        return result if isinstance(result, dict) else {}

    # -- messages ----------------------------------------------------------------------------
    async def post_message(self, scene: Scene, target_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send one message in a scene; returns the platform's answer (`id`, `timestamp`, ...)."""
        return await self._dict("POST", message_path(scene, target_id), body)

    async def create_dm(self, recipient_id: str, source_guild_id: str) -> dict[str, Any]:
        """`POST /users/@me/dms`: opens a guild DM session → `{guild_id, channel_id, create_time}`."""
        return await self._dict(
            "POST", "/users/@me/dms", {"recipient_id": recipient_id, "source_guild_id": source_guild_id}
        )

    async def stream_message(self, user_openid: str, body: dict[str, Any]) -> dict[str, Any]:
        """One chunk of a C2C stream (`/v2/users/{openid}/stream_messages`, §9.2)."""
        return await self._dict("POST", f"/v2/users/{_seg(user_openid)}/stream_messages", body)

    async def recall(self, scene: Scene, target_id: str, message_id: str, *, hidetip: bool = False) -> None:
        """Withdraw a message the bot sent (C2C/group within 2 minutes)."""
        path = f"{message_path(scene, target_id)}/{_seg(message_id)}"
        params = {"hidetip": "true" if hidetip else "false"} if scene in (Scene.CHANNEL, Scene.DM) else None
        await self.request("DELETE", path, params=params)

    async def ack_interaction(self, interaction_id: str, code: int = 0) -> None:
        """`PUT /interactions/{id}` with `{"code": code}` (0 = success)."""
        await self.request("PUT", f"/interactions/{_seg(interaction_id)}", json_body={"code": code})

    # -- identity, gateway, groups -----------------------------------------------------------
    async def me(self) -> dict[str, Any]:
        return await self._dict("GET", "/users/@me")

    async def gateway(self) -> dict[str, Any]:
        return await self._dict("GET", "/gateway")

    async def gateway_bot(self) -> dict[str, Any]:
        """`{url, shards, session_start_limit}`."""
        return await self._dict("GET", "/gateway/bot")

    async def group_bot_state(self, group_openid: str) -> dict[str, Any]:
        """2026: `GET /v2/groups/{gid}/bot_state` (includes `allow_proactive_msg`)."""
        return await self._dict("GET", f"/v2/groups/{_seg(group_openid)}/bot_state")

    # -- rich media --------------------------------------------------------------------------
    async def upload_file(
        self,
        scene: Scene,
        target_id: str,
        file_type: int,
        *,
        url: str | None = None,
        data: bytes | None = None,
        file_name: str | None = None,
        srv_send_msg: bool = False,
    ) -> dict[str, Any]:
        """`POST …/files` by `url` or inline base64 `file_data` → `{file_uuid, file_info, ttl}`."""
        if (url is None) == (data is None):
            raise ValueError("upload_file needs exactly one of url or data")
        body: dict[str, Any] = {"file_type": file_type, "srv_send_msg": srv_send_msg}
        if url is not None:
            body["url"] = url
        else:
            assert data is not None
            body["file_data"] = base64.b64encode(data).decode()
        if file_name:
            body["file_name"] = file_name
        return await self._dict("POST", f"{_v2_root(scene, target_id)}/files", body)

    async def upload_prepare(
        self, scene: Scene, target_id: str, file_type: int, file_name: str, hashes: FileHashes
    ) -> dict[str, Any]:
        body = {
            "file_type": file_type,
            "file_name": file_name,
            "file_size": str(hashes.size),
            "md5": hashes.md5,
            "sha1": hashes.sha1,
            "md5_10m": hashes.md5_10m,
        }
        answer = await self._dict("POST", f"{_v2_root(scene, target_id)}/upload_prepare", body)
        inner = answer.get("data")
        return inner if isinstance(inner, dict) and "upload_id" in inner else answer

    async def upload_part_finish(
        self, scene: Scene, target_id: str, upload_id: str, part_index: int, size: int, md5: str
    ) -> dict[str, Any]:
        body = {"upload_id": upload_id, "part_index": part_index, "block_size": str(size), "md5": md5}
        async with self._part_finish_pace:
            return await self._dict("POST", f"{_v2_root(scene, target_id)}/upload_part_finish", body)

    async def upload_chunked(
        self,
        scene: Scene,
        target_id: str,
        file_type: int,
        source: bytes | UploadSource,
        file_name: str,
        *,
        hashes: FileHashes | None = None,
    ) -> dict[str, Any]:
        """Chunked upload (§8.2): prepare → PUT each part → part_finish → merge via `/files`.

        `upload_config.concurrency` parts are in flight at once (at most `MAX_PARTS_IN_FLIGHT`, and
        no more than fit in `UPLOAD_BUFFER_BYTES`),
        each read from the source into its worker's buffer just before its PUT, so memory holds
        that many parts, never the whole file. Part indexes may be 0- or 1-based (the
        lowest index returned is the base). `40093001` from part_finish is retried every
        `retry_delay` s until `retry_timeout` s have passed.
        """
        if isinstance(source, bytes):
            source = BytesSource(source)
        if hashes is None:
            hashes = await asyncio.to_thread(FileHashes.of_source, source)
        prep = await self.upload_prepare(scene, target_id, file_type, file_name, hashes)
        upload_id = str(prep.get("upload_id", ""))
        if not upload_id:
            raise QQApiError(200, None, "upload_prepare answered without upload_id", kind=ErrorKind.BUG)
        parts = [p for p in prep.get("parts") or [] if isinstance(p, dict)]
        if not parts:
            raise QQApiError(200, None, "upload_prepare answered without parts", kind=ErrorKind.BUG)
        block_size = _int(prep.get("block_size")) or _int(parts[0].get("block_size")) or source.size
        config = prep.get("upload_config")
        config = config if isinstance(config, dict) else prep
        retry_delay = float(_int(config.get("retry_delay")) or 1)
        retry_timeout = float(min(_int(config.get("retry_timeout")) or 300, 600))
        concurrency = max(
            1,
            min(_int(config.get("concurrency")) or 1, MAX_PARTS_IN_FLIGHT, UPLOAD_BUFFER_BYTES // block_size),
        )
        indexes = [_int(p.get("index", p.get("part_index"))) or 0 for p in parts]
        base = min(indexes)
        queue = list(zip(parts, indexes, strict=True))
        queue.reverse()
        src = source

        def read_part(offset: int, view: memoryview) -> str:
            got = src.read_into(offset, view)
            if got != len(view):
                raise QQApiError(0, None, f"the file gave {got} of {len(view)} bytes at offset {offset}")
            return hashlib.md5(view).hexdigest()

        async def worker() -> None:
            # One buffer per worker, reused for each of its parts: memory holds `concurrency`
            # parts, whatever the file's size.
            buffer = bytearray(min(block_size, src.size))
            while queue:
                part, index = queue.pop()
                offset = (index - base) * block_size
                view = memoryview(buffer)[: max(0, min(block_size, src.size - offset))]
                md5 = await asyncio.to_thread(read_part, offset, view)
                await self._put_part(str(part.get("presigned_url", "")), view)
                await self._finish_part(
                    scene, target_id, upload_id, index, len(view), md5, retry_delay, retry_timeout
                )

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(concurrency, len(queue))):
                    group.create_task(worker())
        except BaseExceptionGroup as failed:
            raise _first(failed) from None
        body = {"upload_id": upload_id, "file_type": file_type, "file_name": file_name, "srv_send_msg": False}
        return await self._dict("POST", f"{_v2_root(scene, target_id)}/files", body)

    async def _put_part(self, url: str, chunk: memoryview) -> None:
        async def slices() -> AsyncIterator[memoryview]:
            for start in range(0, len(chunk), PUT_SLICE_BYTES):
                yield chunk[start : start + PUT_SLICE_BYTES]

        headers = {"Content-Length": str(len(chunk))}
        last: Exception | None = None
        for attempt in range(3):
            try:
                async with self.session.put(
                    url, data=slices(), headers=headers, timeout=self.timeout
                ) as resp:
                    await resp.read()
                    if resp.status in (200, 201, 204):
                        return
                    last = QQApiError(resp.status, None, "presigned part PUT refused", method="PUT", path=url)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = exc
            await self.clock.sleep(0.5 * (attempt + 1))
        if isinstance(last, QQApiError):
            raise last
        raise QQApiError(0, None, f"presigned part PUT failed: {last}", kind=ErrorKind.RETRY_LATER)

    async def _finish_part(
        self,
        scene: Scene,
        target_id: str,
        upload_id: str,
        index: int,
        size: int,
        md5: str,
        retry_delay: float,
        retry_timeout: float,
    ) -> None:
        deadline = self.clock.monotonic() + retry_timeout
        while True:
            try:
                await self.upload_part_finish(scene, target_id, upload_id, index, size, md5)
                return
            except QQApiError as exc:
                # 40093001 asks for a retry; so does a rate refusal (another upload of this bot
                # shares the endpoint's limit).
                again = exc.code == UPLOAD_RETRY_CODE or exc.status == 429
                delay = max(retry_delay, exc.retry_after or 0.0)
                if not again or self.clock.monotonic() + delay > deadline:
                    raise
                log.info("upload part %s: %s, retrying in %ss", index, exc.code, delay)
                await self.clock.sleep(delay)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real failure of a group of part uploads (the rest were cancelled because of it)."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first(error)
        return error
    return group


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
