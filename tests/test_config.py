"""Configuration: TOML + HERALD_* env; every mistake is an error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "herald.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("HERALD_"):
            monkeypatch.delenv(key)


def test_defaults_without_a_file_use_the_local_model_and_no_platform() -> None:
    config = load_config()
    assert config.qq is None
    assert config.llm.provider == "local" and config.llm.offers_tools
    assert config.agent.timezone == "Asia/Shanghai"
    assert config.storage.url.startswith("sqlite+aiosqlite:///")


def test_a_full_file(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
[qq]
app_id = "1024"
secret = "s3cret"
[llm]
provider = "openai"
base_url = "https://api.deepseek.com/v1"
api_key = "sk-123"
model = "deepseek-chat"
[agent]
timezone = "UTC"
history_turns = 5
[scheduler]
min_interval_s = 30
""",
        )
    )
    assert config.qq is not None and config.qq.secret.get_secret_value() == "s3cret"
    assert config.llm.offers_tools and config.llm.model == "deepseek-chat"
    assert config.agent.history_turns == 5 and config.scheduler.min_interval_s == 30
    assert "s3cret" not in repr(config) and "sk-123" not in repr(config)


def test_environment_overrides_the_file_with_nested_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_QQ__SECRET", "from-env")
    monkeypatch.setenv("HERALD_AGENT__HISTORY_TURNS", "3")
    config = load_config(write(tmp_path, '[qq]\napp_id = "1"\nsecret = "from-file"\n'))
    assert config.qq is not None and config.qq.secret.get_secret_value() == "from-env"
    assert config.agent.history_turns == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[llm]\nmodle = "x"\n', "llm.modle: unknown key"),
        ('[qq]\napp_id = "1"\n', "qq.secret: required but missing (set it in the file or HERALD_QQ__SECRET)"),
        (
            '[llm]\nprovider = "openai"\n',
            "llm: Value error, base_url, api_key required when provider = 'openai'",
        ),
        ('[agent]\ntimezone = "Mars/Olympus"\n', "agent.timezone"),
        ("[nonsense]\n", "nonsense: unknown key"),
        ("[qq\n", "not valid TOML"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text))
    assert message in str(raised.value)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("api_base", "token_url"),
    [
        ("https://api.sgroup.qq.com", "https://bots.qq.com/app/getAppAccessToken"),
        ("https://sandbox.api.sgroup.qq.com", "https://bots.qq.com/app/getAppAccessToken"),
        ("http://127.0.0.1:8090", "http://127.0.0.1:8090/app/getAppAccessToken"),
        ("http://127.0.0.1:8090/", "http://127.0.0.1:8090/app/getAppAccessToken"),
    ],
)
def test_token_url_follows_api_base_unless_set(tmp_path: Path, api_base: str, token_url: str) -> None:
    """The README's emulator config sets only api_base; the token must come from the emulator too."""
    config = load_config(write(tmp_path, f'[qq]\napp_id = "1"\nsecret = "s"\napi_base = "{api_base}"\n'))
    assert config.qq is not None and config.qq.token_url == token_url


def test_an_explicit_token_url_wins(tmp_path: Path) -> None:
    text = '[qq]\napp_id = "1"\nsecret = "s"\napi_base = "http://127.0.0.1:8090"\ntoken_url = "http://t/x"\n'
    config = load_config(write(tmp_path, text))
    assert config.qq is not None and config.qq.token_url == "http://t/x"


def test_qq_delivery_rules_live_under_qq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_QQ__DELIVERY__C2C_REPLY_LIMIT", "2")
    text = '[qq]\napp_id = "1"\nsecret = "s"\n[qq.delivery]\nplatform_mode = "2025"\n'
    text += "[delivery]\nretry_for_s = 60\n"
    config = load_config(write(tmp_path, text))
    assert config.qq is not None
    assert (config.qq.delivery.platform_mode, config.qq.delivery.c2c_reply_limit) == ("2025", 2)
    assert config.delivery.retry_for_s == 60


def test_a_qq_rule_left_under_delivery_names_its_new_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, '[delivery]\nplatform_mode = "2025"\nretry_for_s = 60\n'))
    assert "platform_mode → [qq.delivery] platform_mode (HERALD_QQ__DELIVERY__PLATFORM_MODE)" in str(
        raised.value
    )
    monkeypatch.setenv("HERALD_DELIVERY__MESSAGE_QPS", "5")
    with pytest.raises(ConfigError) as raised:
        load_config()
    assert "message_qps → [qq.delivery] message_qps" in str(raised.value)


def test_workers_refuse_a_onebot_account() -> None:
    from herald.cli.workers import check_workers
    from herald.config import HeraldConfig, OneBotConfig, StorageConfig

    config = HeraldConfig(
        onebot=OneBotConfig(), storage=StorageConfig(url="postgresql+asyncpg://h@127.0.0.1/h")
    )
    problem = check_workers(config, 2)
    assert problem is not None and "--workers 1" in problem
    assert check_workers(config, 1) is None


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('transport = "forward-ws"', 'needs url = "ws://host:port/…"'),
        ('transport = "http"\nurl = "ws://127.0.0.1:3000"', 'needs url = "http://host:port/…"'),
        ('url = "ws://127.0.0.1:3001"', "drop url"),
        ('transport = "forward-ws"\nurl = "ws://127.0.0.1:3001"\npath = "/x"', "listens nowhere"),
        ('secret = "s"', 'set it with transport = "http"'),
        ('friend_requests = "maybe"', "friend_requests"),
    ],
)
def test_a_onebot_transport_mistake_names_the_fix(tmp_path: Path, table: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, f"[onebot]\n{table}\n"))
    assert says in str(raised.value)


def test_each_onebot_transport_listens_on_its_own_default_path(tmp_path: Path) -> None:
    http = load_config(
        write(tmp_path, '[onebot]\ntransport = "http"\nurl = "http://127.0.0.1:3000"\n')
    ).onebot
    assert http is not None and http.listen_path == "/onebot/v11/http"
    assert load_config(write(tmp_path, "[onebot]\n")).onebot.listen_path == "/onebot/v11/ws"  # type: ignore[union-attr]
