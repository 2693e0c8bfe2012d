"""The settings operators change at run time: stored, read back by a fresh store (a restart),
reset to the configuration's value, refused when invalid, and every change audited."""

from __future__ import annotations

import json

import pytest

from herald.agent.settings import DISABLED_TOOLS, MAX_PROMPT_CHARS, SYSTEM_PROMPT, AgentSettings, SettingError
from herald.config import AgentConfig
from herald.core.clock import VirtualClock
from herald.store import Database
from herald.store.settings import SettingsStore, recent_changes

CONFIGURED = "You are the configured Herald."
TOOLS = ["send_message_to_user", "future_task", "dice_roll"]


async def settings(db: Database, clock: VirtualClock) -> AgentSettings:
    store = SettingsStore(db, clock, (SYSTEM_PROMPT, DISABLED_TOOLS))
    await store.load()
    return AgentSettings(AgentConfig(system_prompt=CONFIGURED), store)


async def test_a_prompt_is_stored_survives_a_restart_and_resets_to_the_configured_one(db: Database) -> None:
    clock = VirtualClock()
    agent = await settings(db, clock)
    assert agent.system_prompt == CONFIGURED

    assert await agent.set_system_prompt("  You are a pirate.\r\nSpeak like one.  ", "console 10.0.0.7")
    assert agent.system_prompt == "You are a pirate.\nSpeak like one."
    assert not await agent.set_system_prompt("You are a pirate.\nSpeak like one.", "console 10.0.0.7")

    restarted = await settings(db, clock)
    assert restarted.system_prompt == "You are a pirate.\nSpeak like one."
    assert restarted.overridden(SYSTEM_PROMPT)

    await clock.advance(60)
    assert await restarted.reset(SYSTEM_PROMPT, "api-token")
    assert restarted.system_prompt == CONFIGURED
    assert (await settings(db, clock)).system_prompt == CONFIGURED

    newest_first = await recent_changes(db)
    assert [(e.actor, e.key, e.old_value, e.new_value) for e in newest_first] == [
        ("api-token", SYSTEM_PROMPT, "You are a pirate.\nSpeak like one.", None),
        ("console 10.0.0.7", SYSTEM_PROMPT, None, "You are a pirate.\nSpeak like one."),
    ]
    assert newest_first[0].at > newest_first[1].at


async def test_disabled_tools_are_stored_and_unknown_names_refused(db: Database) -> None:
    clock = VirtualClock()
    agent = await settings(db, clock)
    assert agent.disabled_tools == frozenset()

    assert await agent.set_enabled_tools(["send_message_to_user", "dice_roll"], TOOLS, "console 127.0.0.1")
    assert agent.disabled_tools == {"future_task"}
    # The server offering dice_roll is down: it is not known now, and stays as it was (enabled).
    assert not await agent.set_enabled_tools(["send_message_to_user"], TOOLS[:2], "console 127.0.0.1")
    assert (await settings(db, clock)).disabled_tools == {"future_task"}

    with pytest.raises(SettingError, match=r"unknown tool.*web_search"):
        await agent.set_enabled_tools(["web_search"], TOOLS, "console 127.0.0.1")
    assert await agent.set_enabled_tools(TOOLS, TOOLS, "console 127.0.0.1")
    assert agent.disabled_tools == frozenset() and not agent.overridden(DISABLED_TOOLS)

    changes = await recent_changes(db)
    assert [(e.old_value, e.new_value) for e in changes] == [
        (json.dumps(["future_task"]), None),
        (None, json.dumps(["future_task"])),
    ]


async def test_invalid_prompts_are_refused_and_not_audited(db: Database) -> None:
    agent = await settings(db, VirtualClock())
    with pytest.raises(SettingError, match="cannot be empty"):
        await agent.set_system_prompt(" \n ", "console 127.0.0.1")
    with pytest.raises(SettingError, match=f"at most {MAX_PROMPT_CHARS}"):
        await agent.set_system_prompt("x" * (MAX_PROMPT_CHARS + 1), "console 127.0.0.1")
    with pytest.raises(SettingError, match="not a setting"):
        await agent.reset("password_hash", "console 127.0.0.1")
    assert agent.system_prompt == CONFIGURED
    assert await recent_changes(db) == []
