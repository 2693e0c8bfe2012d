"""Herald's configuration: a TOML file plus `HERALD_*` environment variables (nested with `__`).

Every section is a model with `extra="forbid"`, so a misspelt key is an error naming the key
rather than a setting silently ignored. Environment variables win over the file, e.g.
`HERALD_QQ__SECRET=...` overrides `[qq] secret`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QQConfig(Section):
    app_id: str
    secret: SecretStr
    api_base: str = "https://api.sgroup.qq.com"
    token_url: str = "https://bots.qq.com/app/getAppAccessToken"
    transport: Literal["websocket", "webhook"] = "websocket"
    # GROUP_AND_C2C_EVENT | INTERACTION | PUBLIC_GUILD_MESSAGES | DIRECT_MESSAGE
    intents: int = (1 << 25) | (1 << 26) | (1 << 30) | (1 << 12)
    shard: tuple[int, int] = (0, 1)
    # Webhook transport: where Herald's web server listens for the platform's pushes.
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8080
    webhook_path: str = "/qq/webhook"


class LLMConfig(Section):
    provider: str = "local"  # "local", "openai" (any OpenAI-compatible base_url), or a pydantic-ai provider
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str = "smollm2-135m-instruct"
    timeout_s: float = 60.0
    temperature: float | None = None


class AgentConfig(Section):
    system_prompt: str = (
        "You are Herald, a helpful assistant chatting with people on QQ. Answer briefly. "
        "Use send_message_to_user to send extra messages, and future_task to schedule work."
    )
    history_turns: int = 20
    history_tokens: int = 6000
    timezone: str = "Asia/Shanghai"


class StorageConfig(Section):
    url: str = "sqlite+aiosqlite:///./data/herald.db"


class DeliveryConfig(Section):
    """Reply ledger and outbox tuning; defaults follow the platform's 2026 rules (qq-platform.md §6)."""

    platform_mode: Literal["2026", "2025", "2023"] = "2026"
    safety_margin_s: float = 30.0
    max_attempts: int = 8
    group_url_policy: Literal["keep", "strip", "break"] = "keep"
    # Passive windows (s) and replies per anchor, per scene (qq-platform.md §6.2).
    c2c_window_s: float = 3600.0
    group_window_s: float = 300.0
    guild_window_s: float = 300.0
    c2c_reply_limit: int = 4
    group_reply_limit: int = 5
    # Proactive rates the platform enforces (§6.5); Herald stays under them on its own side.
    c2c_bot_qps: float = 10.0
    group_bot_per_minute: int = 60
    proactive_per_target_per_minute: int = 20
    proactive_per_target_per_day: int = 1000
    monthly_proactive_limit: int = 4  # "2023" mode
    message_qps: float = 100.0  # per message endpoint (§6.8)
    # Outbox: retry backoff, lease (how long another instance waits before taking an item over),
    # this instance's name (stable across restarts; distinct per instance), concurrency.
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    lease_s: float = 120.0
    instance: str = "herald"
    max_concurrent_conversations: int = 64
    max_text_chars: int = 2000  # longer text is split into several messages


class HeraldConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HERALD_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    qq: QQConfig | None = None
    llm: LLMConfig = Field(default_factory=LLMConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _TOML_FILE is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_TOML_FILE))
        return tuple(sources)


_TOML_FILE: Path | None = None


class ConfigError(Exception):
    """A configuration problem, worded for the operator: which key, what is wrong, how to fix it."""


def load_config(path: Path | str | None = None, **overrides: Any) -> HeraldConfig:
    """Read the TOML file (if any) and `HERALD_*` variables; raise `ConfigError` naming bad keys."""
    global _TOML_FILE
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
    _TOML_FILE = path
    try:
        return HeraldConfig(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path)) from None
    finally:
        _TOML_FILE = None


def _explain(exc: ValidationError, path: Path | None) -> str:
    where = f" in {path}" if path else ""
    lines = [f"invalid configuration{where}:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (check the spelling; see docs/configuration.md)")
        elif error["type"] == "missing":
            lines.append(f"  {key}: required but missing (set it in the file or HERALD_{key.upper().replace('.', '__')})")
        else:
            lines.append(f"  {key}: {error['msg']}")
    return "\n".join(lines)
