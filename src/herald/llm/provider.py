"""Turn `[llm]` into a pydantic-ai model: OpenAI-compatible by `base_url`, or the embedded model
(which is the same OpenAI-compatible path, pointed at a managed loopback server)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic_ai.models import Model
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.profiles.openai import OpenAIModelProfile
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings

from herald.config import LLMConfig
from herald.llm.local import LocalModelServer
from herald.llm.router import ToolRouter


@dataclass
class ModelHandle:
    """A ready model plus whatever must be stopped with it."""

    model: Model
    settings: ModelSettings = field(default_factory=lambda: ModelSettings())
    server: LocalModelServer | None = None
    description: str = ""

    @property
    def problem(self) -> str | None:
        """Why the model cannot answer right now, when known (the embedded server died); else None."""
        return self.server.problem if self.server is not None else None

    async def check(self) -> str | None:
        """A one-prompt smoke test of the embedded model (None: it answered, or nothing to check)."""
        return await self.server.check() if self.server is not None else None

    async def close(self) -> None:
        if isinstance(self.model, ToolRouter):
            await self.model.close()
        if self.server is not None:
            await self.server.stop()


def model_settings(config: LLMConfig) -> ModelSettings:
    settings = ModelSettings(timeout=config.timeout_s)
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


async def open_model(config: LLMConfig) -> ModelHandle:
    """Build the configured model; for `local`, start the embedded server first."""
    settings = model_settings(config)
    if config.provider == "openai":
        assert config.base_url is not None and config.api_key is not None  # checked by LLMConfig
        model = openai_compatible(config.base_url, config.api_key.get_secret_value(), config.model)
        return ModelHandle(model, settings, description=f"{config.model} at {config.base_url}")
    server = LocalModelServer(
        config.local_model_path,
        port=config.local_port,
        context=config.local_context,
        threads=config.local_threads,
        startup_timeout_s=config.local_startup_timeout_s,
        model_alias=config.model,
    )
    await server.start()
    chat = openai_compatible(server.base_url, "local", config.model, legacy_max_tokens=True)
    # Too small to write tool calls itself: it picks among actions, grammar-constrained.
    local: Model = (
        ToolRouter(chat, server.base_url, config.model, timeout_s=config.timeout_s)
        if config.offers_tools
        else chat
    )
    return ModelHandle(local, settings, server, description=f"embedded {config.model} at {server.base_url}")
