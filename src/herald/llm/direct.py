"""OpenAI-compatible chat completions over aiohttp, without the openai SDK's per-request work.

`DirectChatModel` is pydantic-ai's `OpenAIChatModel` with one part replaced: the call of
`client.chat.completions.create`. Everything pydantic-ai does around that call stays its own
(mapping messages, tools and settings to the wire, profiles, validating and mapping the response
and the stream's chunks, usage, error categories); the SDK's part, which re-walks every request
parameter against its type annotations (most of the CPU a request costs) and sends it through
httpx, is done here: the same JSON body, posted with aiohttp, the response built into the SDK's
own types without validation, as the SDK builds it.

What the SDK would do on failure is kept: the same retries (two by default, on 408, 409, 429,
5xx, `x-should-retry: true`, connection errors and timeouts; exponential backoff from 0.5 s to
8 s with jitter, or the server's `Retry-After` up to 60 s), and the same exceptions
(`APIStatusError` by status, `APIConnectionError`, `APITimeoutError`, `APIError` for an error
object inside a stream), which pydantic-ai maps to its `ModelHTTPError` / `ModelConnectionError`
/ `ModelTimeoutError` exactly as for the SDK.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import random
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar, cast

import aiohttp
import httpx2
import pydantic
import pydantic_core
from openai import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncOpenAI,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    NotGiven,
    Omit,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionToolParam
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.profiles import ModelProfileSpec
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

# The openai SDK's retry policy (openai._constants), kept so a failing server sees the same traffic.
DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
MAX_RETRY_AFTER_S = 60.0
# The SDK's default timeouts: 600 s per attempt, 5 s to connect.
DEFAULT_TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 5.0
# Parameters of `create` that are not part of the request body.
NOT_BODY = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
DECODED_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
# Tool definitions (and tool lists) worked on once, kept by identity: at most this many.
TOOL_CACHE_SIZE = 256
K = TypeVar("K")
V = TypeVar("V")


def _given(value: object) -> bool:
    return not isinstance(value, NotGiven | Omit)


def _without_omitted(value: Any) -> Any:
    """`value` with every omitted (`OMIT` / `NOT_GIVEN`) dict entry left out, at any depth."""
    if isinstance(value, Mapping):
        return {k: _without_omitted(v) for k, v in value.items() if _given(v)}
    if isinstance(value, list | tuple):
        return [_without_omitted(v) for v in value]
    return value


def _encode(body: Any) -> bytes:
    try:
        return pydantic_core.to_json(body)
    except pydantic_core.PydanticSerializationError:
        # An omitted value nested in a parameter (the SDK drops those while transforming).
        return pydantic_core.to_json(_without_omitted(body))


class ByIdentity(Generic[K, V]):
    """Values worked out from objects, found again by the object's identity (the same tool
    definitions are offered turn after turn). Each object is kept with its value, so its id cannot
    be reused by another while it is here; past `TOOL_CACHE_SIZE` entries, it starts over."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[K, V]] = {}

    def get(self, key: K) -> V | None:
        hit = self._entries.get(id(key))
        return hit[1] if hit is not None and hit[0] is key else None

    def put(self, key: K, value: V) -> None:
        if len(self._entries) >= TOOL_CACHE_SIZE:
            self._entries.clear()
        self._entries[id(key)] = (key, value)


class EncodedTools:
    """The JSON of tool lists met before, by the identity of their entries. `DirectChatModel` maps
    each tool definition to one object, so a conversation's tools, most of a request's body, are
    the same objects request after request and are encoded once."""

    def __init__(self) -> None:
        # Each entry keeps its tools, so their ids cannot be reused while it is here.
        self._known: dict[tuple[int, ...], tuple[list[Any], bytes]] = {}

    def body(self, body: dict[str, Any]) -> bytes:
        """`body` as JSON, its `tools` (when it has any) from what is known."""
        tools = body.get("tools")
        if not isinstance(tools, list) or not tools:
            return _encode(body)
        key = tuple(map(id, tools))
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= TOOL_CACHE_SIZE:
                self._known.clear()
            known = self._known[key] = (list(tools), _encode(tools))
        rest = _encode({name: value for name, value in body.items() if name != "tools"})
        return rest[:-1] + (b',"tools":' if len(rest) > 2 else b'"tools":') + known[1] + b"}"


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The server's requested delay (`retry-after-ms`, `retry-after` seconds or HTTP date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    retry_after = _retry_after_s(headers)
    if retry_after is not None and math.isfinite(retry_after) and retry_after > MAX_RETRY_AFTER_S:
        return False
    explicit = headers.get("x-should-retry")
    if explicit in ("true", "false"):
        return explicit == "true"
    return status in (408, 409, 429) or status >= 500


def retry_delay_s(retries_done: int, headers: Mapping[str, str] | None) -> float:
    retry_after = _retry_after_s(headers) if headers is not None else None
    if retry_after is not None and math.isfinite(retry_after) and 0 < retry_after <= MAX_RETRY_AFTER_S:
        return retry_after
    delay = min(INITIAL_RETRY_DELAY_S * 2.0 ** min(retries_done, 1000), MAX_RETRY_DELAY_S)
    return delay * (1 - 0.25 * random.random())


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTP(S)_PROXY, NO_PROXY), as httpx honours it
    for the SDK; read once, not per request."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy is None or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def _timeout_s(timeout: object) -> float:
    if isinstance(timeout, int | float):
        return float(timeout)
    if isinstance(timeout, httpx2.Timeout) and timeout.read is not None:
        return float(timeout.read)
    return DEFAULT_TIMEOUT_S


class _Completions:
    def __init__(self, client: DirectClient) -> None:
        self._client = client

    async def create(self, **params: Any) -> ChatCompletion | SSEStream:
        return await self._client.create(params)


class _Chat:
    def __init__(self, client: DirectClient) -> None:
        self.completions = _Completions(client)


class DirectClient:
    """Stands where pydantic-ai expects the `AsyncOpenAI` client (`client.chat.completions.create`,
    `with_options(max_retries=...)`, `base_url`); one aiohttp session, opened on first use."""

    def __init__(
        self,
        sdk: AsyncOpenAI,
        base_url: str,
        api_key: str,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        session: list[aiohttp.ClientSession] | None = None,
        tools: EncodedTools | None = None,
    ) -> None:
        self._sdk = sdk  # its organization and project headers
        self.base_url = base_url.rstrip("/") + "/"
        self._url = self.base_url + "chat/completions"
        self._api_key = api_key
        self.max_retries = max_retries
        self._session = session if session is not None else []  # shared with copies
        self._tools = tools if tools is not None else EncodedTools()  # shared with copies
        self._proxy = _proxy_for(self._url)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        # As the SDK sends them (from OPENAI_ORG_ID / OPENAI_PROJECT_ID when set).
        if sdk.organization is not None:
            self._headers["OpenAI-Organization"] = sdk.organization
        if sdk.project is not None:
            self._headers["OpenAI-Project"] = sdk.project
        self._client = self
        self.chat = _Chat(self)

    def with_options(self, *, max_retries: int, **_: Any) -> DirectClient:
        return DirectClient(
            self._sdk,
            self.base_url,
            self._api_key,
            max_retries=max_retries,
            session=self._session,
            tools=self._tools,
        )

    def session(self) -> aiohttp.ClientSession:
        if not self._session or self._session[0].closed:
            self._session[:] = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))]
        return self._session[0]

    async def close(self) -> None:
        if self._session and not self._session[0].closed:
            await self._session[0].close()

    def _request(self) -> httpx2.Request:
        """The request as the SDK's exceptions describe it (built only for an exception)."""
        return httpx2.Request("POST", self._url)

    async def create(self, params: dict[str, Any]) -> ChatCompletion | SSEStream:
        stream = bool(params.get("stream"))
        body = {k: v for k, v in params.items() if k not in NOT_BODY and _given(v)}
        extra_body = params.get("extra_body")
        if isinstance(extra_body, Mapping):
            body.update(extra_body)
        headers = {**self._headers}
        extra_headers = params.get("extra_headers")
        if isinstance(extra_headers, Mapping):
            headers.update({k: v for k, v in extra_headers.items() if _given(v)})
        data = self._tools.body(body)
        timeout = aiohttp.ClientTimeout(
            total=_timeout_s(params.get("timeout")), sock_connect=CONNECT_TIMEOUT_S
        )
        retries = 0
        while True:
            retry_headers: Mapping[str, str] | None = None
            try:
                response = await self.session().post(
                    self._url, data=data, headers=headers, timeout=timeout, proxy=self._proxy
                )
            except (TimeoutError, aiohttp.ClientError) as exc:
                if retries >= self.max_retries:
                    raise self._connection_error(exc) from exc
            else:
                if response.status < 400:
                    if stream:
                        return SSEStream(response, self._request)
                    try:
                        raw = await response.read()
                    except (TimeoutError, aiohttp.ClientError) as exc:
                        response.release()
                        if retries >= self.max_retries:
                            raise self._connection_error(exc) from exc
                    else:
                        return _completion(raw)
                else:
                    status, retry_headers = response.status, response.headers
                    try:
                        raw = await response.read()
                    except (TimeoutError, aiohttp.ClientError):
                        raw = b""
                    finally:
                        response.release()
                    if retries >= self.max_retries or not should_retry(status, retry_headers):
                        raise self._status_error(status, retry_headers, raw)
            await asyncio.sleep(retry_delay_s(retries, retry_headers))
            retries += 1

    def _connection_error(self, exc: BaseException) -> APIConnectionError:
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            return APITimeoutError(request=self._request())
        return APIConnectionError(message=f"Connection error: {exc}", request=self._request())

    def _status_error(self, status: int, headers: Mapping[str, str], raw: bytes) -> Exception:
        # The body is already decoded: its encoding and length headers would not describe it.
        kept = [(k, v) for k, v in headers.items() if k.lower() not in DECODED_HEADERS]
        response = httpx2.Response(status, headers=kept, content=raw, request=self._request())
        return status_error(response)


# The SDK's exception for each status (its public classes), so pydantic-ai and Herald's model
# health read an error from this client exactly as one from the SDK.
STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error(response: httpx2.Response) -> APIStatusError:
    """The error the SDK raises for this answer: "Error code: N - <message>", with the body (its
    `error` object when there is one) kept on the exception."""
    text = response.text.strip()
    body: object = text
    message = f"Error code: {response.status_code}"
    try:
        body = json.loads(text)
    except ValueError:
        pass
    else:
        error = body.get("error", body) if isinstance(body, dict) else None
        said = error.get("message") if isinstance(error, dict) else None
        if isinstance(said, str) and said:
            message += f" - {said}"
    data = body.get("error", body) if isinstance(body, dict) else body
    kind = STATUS_ERRORS.get(response.status_code)
    if kind is None:
        kind = InternalServerError if response.status_code >= 500 else APIStatusError
    return kind(message, response=response, body=data)


def _completion(raw: bytes) -> ChatCompletion:
    """The body as the SDK returns it: built into its types without validation (pydantic-ai
    validates what it reads), or the text itself when it is not JSON (pydantic-ai refuses it)."""
    try:
        data = pydantic_core.from_json(raw)
    except ValueError:
        return cast(ChatCompletion, raw.decode(errors="replace"))
    if not isinstance(data, dict):
        return cast(ChatCompletion, data)
    return _built(ChatCompletion, data)


ModelT = TypeVar("ModelT", ChatCompletion, ChatCompletionChunk)


def _built(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """`data` as `model`: validated (in pydantic-core, 20 times cheaper than the SDK's recursive
    construction), or, when it does not validate (a server that leaves out or nulls a field),
    constructed as the SDK would, for pydantic-ai to fill in or refuse."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError:
        return model.construct(**data)


class SSEStream:
    """A streamed completion's chunks, parsed from server-sent events as the SDK's `AsyncStream`
    parses them: `[DONE]` ends it, an `error` object in an event raises `APIError`."""

    def __init__(self, response: aiohttp.ClientResponse, request: Any) -> None:
        self.response = response
        self._request = request
        self._iterator = self._chunks()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iterator

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._iterator.__anext__()

    async def __aenter__(self) -> SSEStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self.response.release()

    async def _events(self) -> AsyncIterator[tuple[str | None, str]]:
        event: str | None = None
        data: list[str] = []
        async for raw in self.response.content:
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = None, []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
        if data:
            yield event, "\n".join(data)

    async def _chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            async for _event, data in self._events():
                if data.startswith("[DONE]"):
                    break
                parsed = pydantic_core.from_json(data)
                if isinstance(parsed, dict) and parsed.get("error"):
                    error = parsed["error"]
                    message = error.get("message") if isinstance(error, dict) else None
                    if not message or not isinstance(message, str):
                        message = "An error occurred during streaming"
                    raise APIError(message=message, request=self._request(), body=error)
                yield _built(ChatCompletionChunk, parsed) if isinstance(parsed, dict) else parsed
        except TimeoutError as exc:
            # As httpx's transport errors reach pydantic-ai through the SDK's stream.
            raise httpx2.ReadTimeout(str(exc) or "the stream stopped arriving") from exc
        except aiohttp.ClientError as exc:
            raise httpx2.ReadError(str(exc) or type(exc).__name__) from exc
        finally:
            self.response.release()


class DirectChatModel(OpenAIChatModel):
    """`OpenAIChatModel` talking to the server through `DirectClient` (see the module's text)."""

    def __init__(
        self,
        model_name: str,
        *,
        base_url: str,
        api_key: str,
        profile: ModelProfileSpec | None = None,
        settings: ModelSettings | None = None,
    ) -> None:
        provider = OpenAIProvider(base_url=base_url, api_key=api_key)
        super().__init__(model_name, provider=provider, profile=profile, settings=settings)
        self._direct = DirectClient(
            provider.client, base_url, api_key, max_retries=provider.client.max_retries
        )

        # Per tool definition: its schema adapted to the profile, and that mapped to the wire.
        self._adapted: ByIdentity[ToolDefinition, ToolDefinition] = ByIdentity()
        self._mapped: ByIdentity[ToolDefinition, ChatCompletionToolParam] = ByIdentity()

    @property
    def client(self) -> AsyncOpenAI:
        return cast(AsyncOpenAI, self._direct)

    def customize_request_parameters(
        self, model_request_parameters: ModelRequestParameters
    ) -> ModelRequestParameters:
        """As pydantic-ai's, but each tool's schema is adapted to the profile once per definition,
        not on every request (the same definition objects are offered turn after turn)."""
        params = model_request_parameters
        if params.output_tools or params.output_object is not None or not params.function_tools:
            return super().customize_request_parameters(params)
        tools = [self._adapted.get(tool) for tool in params.function_tools]
        missing = [tool for tool, hit in zip(params.function_tools, tools, strict=True) if hit is None]
        adapted: list[ToolDefinition] = []
        if missing:
            adapted = (
                super()
                .customize_request_parameters(dataclasses.replace(params, function_tools=missing))
                .function_tools
            )
            for source, result in zip(missing, adapted, strict=True):
                self._adapted.put(source, result)
        fresh = iter(adapted)
        return dataclasses.replace(
            params, function_tools=[hit if hit is not None else next(fresh) for hit in tools]
        )

    def _map_tool_definition(
        self, f: ToolDefinition, model_settings: ModelSettings
    ) -> ChatCompletionToolParam:
        """As pydantic-ai's, once per definition: the same object each request (see `EncodedTools`)."""
        mapped = self._mapped.get(f)
        if mapped is None:
            mapped = super()._map_tool_definition(f, model_settings)
            self._mapped.put(f, mapped)
        return mapped

    async def close(self) -> None:
        await self._direct.close()
