"""Turn `[llm]` into a pydantic-ai model: the embedded model, any OpenAI-compatible endpoint, or one
of pydantic-ai's own providers, with an optional fallback chain (`[llm] fallback`)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.profiles.openai import OpenAIModelProfile
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings

from herald.config import PROVIDER_EXTRAS, LLMConfig, ModelConfig
from herald.llm.direct import DirectChatModel
from herald.llm.local import LocalModelServer
from herald.llm.router import ToolRouter

log = logging.getLogger(__name__)


@dataclass
class ModelHandle:
    """A ready model plus whatever must be stopped with it."""

    model: Model
    settings: ModelSettings = field(default_factory=lambda: ModelSettings())
    server: LocalModelServer | None = None
    description: str = ""
    timeout_s: float = 60.0  # the whole chain's: the agent's bound on one model request

    @property
    def problem(self) -> str | None:
        """Why the model cannot answer right now, when known (the embedded server died); else None."""
        return self.server.problem if self.server is not None else None

    async def check(self) -> str | None:
        """A one-prompt smoke test of the embedded model (None: it answered, or nothing to check)."""
        return await self.server.check() if self.server is not None else None

    async def close(self) -> None:
        await close_models([self.model])
        if self.server is not None:
            await self.server.stop()


async def close_models(models: Iterable[Model]) -> None:
    """Close what `models` (and the models they wrap) hold open: their HTTP sessions."""
    for outer in models:
        for model in _models(outer):
            if isinstance(model, ToolRouter | DirectChatModel):
                await model.close()


def _models(model: Model) -> list[Model]:
    if isinstance(model, FallbackModel):
        return [m for inner in model.models for m in _models(inner)]
    if isinstance(model, WrapperModel):
        return [model, *_models(model.wrapped)]
    return [model]


def model_settings(config: ModelConfig) -> ModelSettings:
    # pydantic-ai enforces `request_timeout` for every provider (an SDK's own `timeout` is not
    # honoured by all of them).
    settings = ModelSettings(request_timeout=config.timeout_s)
    if config.temperature is not None:
        settings["temperature"] = config.temperature
    if config.max_tokens is not None:
        settings["max_tokens"] = config.max_tokens
    elif config.provider == "local":
        settings["max_tokens"] = 256
    return settings


def openai_compatible(
    base_url: str, api_key: str, model: str, *, legacy_max_tokens: bool = False
) -> OpenAIChatModel:
    """`legacy_max_tokens`: send `max_tokens` instead of `max_completion_tokens` (llama.cpp servers)."""
    profile = (
        OpenAIModelProfile(openai_chat_supports_max_completion_tokens=False) if legacy_max_tokens else None
    )
    return OpenAIChatModel(
        model, provider=OpenAIProvider(base_url=base_url, api_key=api_key), profile=profile
    )


class MissingExtra(RuntimeError):
    """A provider kind whose client library is not installed; the message names the extra."""


def require_extra(kind: str) -> None:
    module, extra = PROVIDER_EXTRAS[kind]
    if importlib.util.find_spec(module.partition(".")[0]) is None or (
        "." in module and importlib.util.find_spec(module) is None
    ):
        raise MissingExtra(
            f"provider = {kind!r} needs the {module.partition('.')[0]} client: pip install 'herald[{extra}]'"
        )


def remote_model(config: ModelConfig, settings: ModelSettings | None = None) -> Model:
    """A pydantic-ai model for a non-embedded provider kind, with `settings` (default: its own)."""
    require_extra(config.provider)
    key = config.api_key.get_secret_value() if config.api_key is not None else None
    settings = settings if settings is not None else model_settings(config)
    kind, name, url = config.provider, config.model, config.base_url
    if kind == "openai":
        assert url is not None and key is not None  # checked by ModelConfig
        if config.client == "sdk":
            return OpenAIChatModel(
                name, provider=OpenAIProvider(base_url=url, api_key=key), settings=settings
            )
        return DirectChatModel(name, base_url=url, api_key=key, settings=settings)
    if kind == "openai-responses":
        from pydantic_ai.models.openai import OpenAIResponsesModel

        return OpenAIResponsesModel(
            name, provider=OpenAIProvider(base_url=url, api_key=key), settings=settings
        )
    if kind == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        return AnthropicModel(name, provider=AnthropicProvider(api_key=key, base_url=url), settings=settings)
    if kind == "google":
        from pydantic_ai.models.google import GoogleModel
        from pydantic_ai.providers.google import GoogleProvider

        return GoogleModel(name, provider=GoogleProvider(api_key=key, base_url=url), settings=settings)
    if kind == "groq":
        from pydantic_ai.models.groq import GroqModel
        from pydantic_ai.providers.groq import GroqProvider

        return GroqModel(name, provider=GroqProvider(api_key=key, base_url=url), settings=settings)
    if kind == "mistral":
        from pydantic_ai.models.mistral import MistralModel
        from pydantic_ai.providers.mistral import MistralProvider

        return MistralModel(name, provider=MistralProvider(api_key=key, base_url=url), settings=settings)
    if kind == "bedrock":
        from pydantic_ai.models.bedrock import BedrockConverseModel
        from pydantic_ai.providers.bedrock import BedrockProvider

        region = config.region or "us-east-1"
        provider = (
            BedrockProvider(api_key=key, base_url=url, region_name=region)
            if key is not None
            else BedrockProvider(base_url=url, region_name=region)
        )
        return BedrockConverseModel(name, provider=provider, settings=settings)
    raise ValueError(f"unknown provider kind {kind!r}")


class Named(WrapperModel):
    """One model of a chain: bounded by its own timeout, and named in the log when it fails."""

    def __init__(self, wrapped: Model, name: str, timeout_s: float) -> None:
        super().__init__(wrapped)
        self.name = name
        self.timeout_s = timeout_s

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.wrapped.request(messages, model_settings, model_request_parameters)
        except TimeoutError:
            log.warning(
                "model %s (%s) did not answer within %g s", self.name, self.model_name, self.timeout_s
            )
            raise TimeoutError(f"{self.name}: no answer within {self.timeout_s:g} s") from None
        except Exception as exc:
            log.warning("model %s (%s) failed: %s: %s", self.name, self.model_name, type(exc).__name__, exc)
            raise


def describe(name: str, config: ModelConfig) -> str:
    where = f" at {config.base_url}" if config.base_url else ""
    return f"{config.model} ({config.provider}{where})" if name == "primary" else f"{name}: {config.model}"


async def open_model(config: LLMConfig) -> ModelHandle:
    """Build the configured model (and its fallbacks); for `local`, start the embedded server."""
    server: LocalModelServer | None = None
    chain: list[Model] = []
    descriptions: list[str] = []
    try:
        for name, entry in config.chain():
            settings = model_settings(entry)
            if config.fallback:
                # `Named` bounds each model of a chain, so its failure is logged as its own.
                settings.pop("request_timeout", None)
            if entry.provider == "local":
                if server is not None:
                    raise ValueError("the embedded model can appear only once in [llm] and its fallbacks")
                server, model = await _local(config, entry, settings)
                descriptions.append(f"embedded {entry.model} at {server.base_url}")
            else:
                model = remote_model(entry, settings)
                descriptions.append(describe(name, entry))
            chain.append(Named(model, name, entry.timeout_s) if config.fallback else model)
    except BaseException:
        if server is not None:
            await server.stop()
        raise
    if len(chain) == 1:
        # One model: the agent's request settings are its own.
        return ModelHandle(
            chain[0], model_settings(config), server, description=descriptions[0], timeout_s=config.timeout_s
        )
    fallback = FallbackModel(chain[0], *chain[1:], fallback_on=lambda exc: isinstance(exc, Exception))
    return ModelHandle(
        fallback,
        ModelSettings(),
        server,
        description=" → ".join(descriptions),
        timeout_s=sum(entry.timeout_s for _, entry in config.chain()),
    )


async def _local(
    config: LLMConfig, entry: ModelConfig, settings: ModelSettings
) -> tuple[LocalModelServer, Model]:
    server = LocalModelServer(
        config.local_model_path,
        port=config.local_port,
        context=config.local_context,
        threads=config.local_threads,
        startup_timeout_s=config.local_startup_timeout_s,
        model_alias=entry.model,
    )
    await server.start()
    chat = OpenAIChatModel(
        entry.model,
        provider=OpenAIProvider(base_url=server.base_url, api_key="local"),
        profile=OpenAIModelProfile(openai_chat_supports_max_completion_tokens=False),
        settings=settings,
    )
    if not config.offers_tools:
        return server, chat
    # Too small to write tool calls itself: it picks among actions, grammar-constrained.
    return server, ToolRouter(chat, server.base_url, entry.model, timeout_s=entry.timeout_s)
