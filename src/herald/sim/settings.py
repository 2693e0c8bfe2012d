"""What the emulator can be told to be: credentials, platform era, windows, limits.

Everything here can also be changed at run time with `PUT /_sim/settings` (fields by name).
Defaults follow the current (2026) documentation, qq-platform.md §12.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ProactiveMode = Literal["2026", "2025", "2023"]


class SimSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    host: str = "127.0.0.1"
    port: int = 8090
    app_id: str = "102000001"
    secret: str = "herald-sim-secret-0123456789abcd"
    bot_id: str = "sim-bot-0001"
    bot_name: str = "Herald Sim Bot"

    # Platform era for proactive C2C/group sends (rules 41-46).
    mode: ProactiveMode = "2026"

    # Gateway.
    heartbeat_interval_ms: int = 45_000
    # Intent bits this bot may subscribe to; others close the socket with 4014 (rule 8).
    intents_allowed: int = (1 << 0) | (1 << 1) | (1 << 9) | (1 << 12) | (1 << 25) | (1 << 26) | (1 << 27) | (1 << 30)

    # Webhook mode: when set, every dispatch is POSTed there signed (rules 16-19).
    webhook_url: str | None = None
    webhook_timeout_s: float = 5.0
    webhook_redeliver: bool = True

    # Passive windows (seconds) and reply budgets per anchor (rules 27-31).
    c2c_window_s: int = 3600
    group_window_s: int = 300
    guild_window_s: int = 300
    c2c_reply_limit: int = 4
    group_reply_limit: int = 5
    expired_code: int = 40034005

    # Rate limits (rule 42-44, §6.8); off for raw-capacity benchmarks.
    rate_limits: bool = True
    markdown_allowed: bool = True

    token_ttl_s: int = Field(default=7200, ge=61)
