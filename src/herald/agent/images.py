"""Fetching the images users send, for a model that sees images, without trusting the message.

A message's attachment URL is the user's input as far as Herald can tell, so a fetch goes only to
the platform's media hosts (`[agent] image_hosts`), over http(s), never follows a redirect (which
could lead anywhere), stops at `image_max_bytes` whatever the headers claimed, gives up after
`image_timeout_s`, and keeps only JPEG, PNG, GIF and WebP. An image that fails any of these is
described to the model by its file name and the reason instead.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from pydantic_ai.messages import BinaryContent

from herald.core.events import Attachment

log = logging.getLogger(__name__)

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


@dataclass(frozen=True, slots=True)
class NotShown:
    """An image the model does not get, and why (said to the model in its place)."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"[image {self.name} not shown: {self.reason}]"


class ImageFetcher:
    def __init__(self, hosts: list[str], max_bytes: int, timeout_s: float) -> None:
        self.hosts = frozenset(host.lower() for host in hosts)
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def fetch(self, image: Attachment) -> BinaryContent | NotShown:
        name = image.filename or "image"
        problem = self._refuse(image)
        if problem is not None:
            return NotShown(name, problem)
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._download(image, name)
        except TimeoutError:
            return NotShown(name, f"no answer within {self.timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return NotShown(name, f"fetch failed ({type(exc).__name__})")

    def _refuse(self, image: Attachment) -> str | None:
        parts = urlsplit(image.url)
        if parts.scheme not in ("http", "https"):
            return "not an http(s) URL"
        if (parts.hostname or "").lower() not in self.hosts:
            return f"{parts.hostname} is not one of the platform's media hosts ([agent] image_hosts)"
        if image.size is not None and image.size > self.max_bytes:
            return f"{image.size} bytes, over the {self.max_bytes} allowed ([agent] image_max_bytes)"
        return None

    async def _download(self, image: Attachment, name: str) -> BinaryContent | NotShown:
        async with (
            aiohttp.ClientSession() as http,
            http.get(image.url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                where = f" to {response.headers.get('location', '?')}" if 300 <= response.status < 400 else ""
                return NotShown(name, f"the host answered {response.status}{where}")
            media_type = response.content_type.lower()
            if media_type not in IMAGE_TYPES:
                return NotShown(name, f"{media_type} is not an image type shown to the model")
            data = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > self.max_bytes:
                    return NotShown(
                        name, f"over the {self.max_bytes} bytes allowed ([agent] image_max_bytes)"
                    )
        return BinaryContent(bytes(data), media_type=media_type)
