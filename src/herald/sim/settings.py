"""What the emulator can be told to be: credentials, platform era, windows, limits.

Everything here can also be changed at run time with `PUT /_sim/settings` (fields by name).
Defaults follow the current (2026) documentation; docs/sim.md lists the rules.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ProactiveMode = Literal["2026", "2025", "2023"]

# The public-domain intents: GUILDS, GUILD_MEMBERS, GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGE,
# OPEN_FORUMS_EVENT, AUDIO_OR_LIVE_CHANNEL_MEMBER, GROUP_AND_C2C_EVENT, INTERACTION, MESSAGE_AUDIT,
# AUDIO_ACTION, PUBLIC_GUILD_MESSAGES.
PUBLIC_INTENTS = (
    (1 << 0)
    | (1 << 1)
    | (1 << 10)
    | (1 << 12)
    | (1 << 18)
    | (1 << 19)
    | (1 << 25)
    | (1 << 26)
    | (1 << 27)
    | (1 << 29)
    | (1 << 30)
)
# Granted only on application, or to private-domain bots.
GUILD_MESSAGES, GROUP_MEMBER_EVENT, FORUMS_EVENT = 1 << 9, 1 << 24, 1 << 28


class SimSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    host: str = "127.0.0.1"
    port: int = 8090
    app_id: str = "102000001"
    secret: str = "herald-sim-secret-0123456789abcd"
    bot_id: str = "10000000001"  # numeric: botpy does int(user["id"])
    bot_name: str = "Herald Sim Bot"

    # Platform era for proactive C2C/group sends (rules 41-46).
    mode: ProactiveMode = "2026"

    # Gateway.
    heartbeat_interval_ms: int = 45_000
    # Intent bits this bot may subscribe to; others close the socket with 4014 (rule 8). The default
    # is what an ordinary (public-domain) bot is granted: every public intent, not the private-domain
    # GUILD_MESSAGES (1<<9) and FORUMS_EVENT (1<<28), nor GROUP_MEMBER_EVENT (1<<24), which a bot
    # applies for (docs/sim.md, "Intents").
    intents_allowed: int = PUBLIC_INTENTS
    # What `GET /gateway/bot` answers: the shard count it recommends, and how many new sessions
    # may be identified per 5 s (`session_start_limit.max_concurrency`).
    gateway_shards: int = Field(default=1, ge=1)
    gateway_max_concurrency: int = Field(default=1, ge=1)

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

    # Code for an expired guild anchor (rule 29; cfg 40034005).
    guild_expired_code: int = 304027
    # Code for a guild msg_id that is the bot's own message (rule 26; cfg 304026).
    guild_own_message_code: int = 50045
    # event_id replies share the scene's window; FRIEND_ADD replyability is disputed (rule 39).
    friend_add_replyable: bool = True
    # Sending both msg_id and event_id: "reject" (400) or "event_id_wins" (rule 21).
    both_ids: Literal["reject", "event_id_wins"] = "reject"
    # Both on a `/stream_messages` frame: "msg_id_wins" (the platform streams them: a first frame
    # with both got its stream id back, OpenClaw's qqbot #252) or "reject" as on `/messages`.
    stream_both_ids: Literal["msg_id_wins", "reject"] = "msg_id_wins"

    # Rate limits (rule 42-44, 20028, §6.8); off for raw-capacity benchmarks.
    rate_limits: bool = True
    # Requests per second per endpoint (§6.8); over it -> HTTP 429, code 50002.
    endpoint_qps: dict[str, int] = Field(
        default_factory=lambda: {
            "c2c_messages": 100,
            "group_messages": 100,
            "stream": 50,
            "files": 50,
            "prepare": 10,
            "part_finish": 10,
            "recall": 10,
        }
    )
    c2c_bot_qps: int = 10
    c2c_per_user_per_minute: int = 20
    c2c_per_user_per_day: int = 1000
    group_bot_per_minute: int = 60
    group_per_group_per_minute: int = 20
    group_per_group_per_day: int = 1000
    monthly_proactive_limit: int = 4  # "2023" mode: the 5th in a calendar month fails with 22009
    # Permission of a user/group that sent no C2C_MSG_RECEIVE / GROUP_MSG_RECEIVE (or REJECT) yet.
    proactive_default_allowed: bool = True
    # Proactive refused for lack of permission (rule 41; cfg 40054013) and in "2025" mode (cfg 40034102).
    no_permission_code: int = 40034105
    withdrawn_code: int = 40034105

    # Message bodies (rules 53-59).
    markdown_allowed: bool = True
    # Message buttons (rules 55a-55h): custom keyboards (`keyboard.content`) are granted per bot
    # (false: 304057); template keyboards (`keyboard.id`) must be one of these (None: any id).
    custom_keyboard_allowed: bool = True
    keyboard_templates: list[str] | None = None
    group_url_check: bool = False  # rule 58: URLs in group text -> 40054010 (off by default)
    # Rule 62: a message_reference to an unknown REFIDX is ignored, or rejected with 12002.
    reference_check: Literal["ignore", "reject"] = "ignore"

    # Guild (rules 49-52, 78).
    guild_channel_per_day: int = 20
    guild_channels_per_guild_per_day: int = 2
    guild_channel_per_second: int = 5
    dm_per_user_per_day: int = 2
    dm_total_per_day: int = 200
    require_session_for_guild: bool = True  # rule 51: 304018 without a live gateway session
    quiet_hours: tuple[int, int] | None = None  # rule 52: Beijing hours [start, end) -> 304022
    audit: Literal["off", "pass", "reject"] = "off"  # rule 78: hold guild sends for audit
    audit_delay_s: float = 0.05

    # Rich media (rules 69-75).
    file_info_ttl_s: int = 3600  # 0 = long-lived
    # URLs on these hosts are really fetched (short timeout); others fail with 850026 unless they
    # start with one of `assume_fetchable` (accepted without fetching).
    fetch_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost"])
    assume_fetchable: list[str] = Field(default_factory=list)
    fetch_timeout_s: float = 3.0
    upload_block_size: int = 5 * 1024 * 1024
    upload_part_base: int = Field(default=1, ge=0, le=1)
    upload_concurrency: int = Field(default=1, ge=1)  # upload_prepare's upload_config.concurrency
    # An upload whose bytes the sim sees must be in a format its file type takes (850019).
    check_formats: bool = True
    upload_quota_exhausted: bool = False  # rule 75: upload_prepare -> 40093002

    # Streaming (rules 63-68).
    stream_timeout_s: int = 60
    stream_max_len: int = 5000
    # A bot the platform does not let stream: every `/stream_messages` request is refused with
    # this code (e.g. 11253, "no permission for this API"); null streams normally.
    stream_refused_code: int | None = None

    # Recall (rule 76).
    recall_window_s: int = 120
    bot_is_group_admin: bool = False

    token_ttl_s: int = Field(default=7200, ge=61)
    # Rule 5 (cfg): accept the deprecated `Authorization: Bot <app_id>.<this>` on guild APIs only.
    legacy_bot_token: str | None = None
    request_log_limit: int = 100_000
