"""Plugins: the example package `herald-dice` (installed by scripts/test) found by its entry point,
its tools called by the model, its commands and hooks run; a plugin that raises, hangs or cannot be
imported is logged by name and never takes a turn or Herald down."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from pathlib import Path

import pytest
from pydantic_ai import RunContext
from typer.testing import CliRunner

import herald.cli.extensions  # noqa: F401  (registers `herald plugins` and `herald mcp`)
from herald.cli import app
from herald.config import HeraldConfig, PluginsConfig
from herald.core.events import InboundMessage
from herald.extensions import installed
from herald.plugin import CommandCall, Delivery, Plugin, ToolCall
from tests.app.herald_harness import harness
from tests.extensions.scripts import CallsTools

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def test_the_example_plugin_is_found_and_listed(db_url: str) -> None:
    (dice,) = [entry for entry in installed(PluginsConfig()) if entry.name == "dice"]
    assert dice.package == "herald-dice" and dice.plugin is not None and dice.error is None
    result = CliRunner().invoke(app, ["plugins"])
    assert result.exit_code == 0
    assert "dice_roll_dice" in result.output and "/roll" in result.output and "enabled" in result.output
    (off,) = [entry for entry in installed(PluginsConfig(disabled=["dice"])) if entry.name == "dice"]
    assert off.plugin is None and not off.enabled


async def test_the_agent_uses_the_plugins_tools_and_users_its_commands(db_url: str) -> None:
    async with harness(db_url, CallsTools()) as h:
        # The plugin counts for the whole process (other tests' Heralds too): compare before/after.
        await h.user_says("p1", "/tally")
        (before,) = await h.wait_delivered("c2c", "p1", 1)
        await h.user_says(
            "p1",
            'call dice_roll_dice {"sides": 6, "count": 2} ; call dice_pick_one {"options": ["茶", "咖啡"]}',
        )
        reply = (await h.wait_delivered("c2c", "p1", 2))[1]
        await h.user_says("p1", "/roll 3d4")
        await h.user_says("p1", "/help")
        await h.user_says("p1", "/tally")
        entries = await h.wait_delivered("c2c", "p1", 5)
    found = re.fullmatch(r"got: 2d6: (\d) \+ (\d) = (\d+) \| (茶|咖啡)", str(reply["content"]))
    assert found is not None and int(found[1]) + int(found[2]) == int(found[3])
    roll = re.fullmatch(r"3d4: (\d) \+ (\d) \+ (\d) = (\d+)", str(entries[2]["content"]))
    assert roll is not None and sum(int(roll[i]) for i in (1, 2, 3)) == int(roll[4])
    assert "/roll [NdM]" in str(entries[3]["content"])
    tally = r"messages seen: (\d+); deliveries failed: (\d+)"
    first = re.fullmatch(tally, str(before["content"]))
    last = re.fullmatch(tally, str(entries[4]["content"]))
    assert first is not None and last is not None
    # The three messages in between were seen (each /tally may or may not count itself: its hook
    # runs beside the command); no delivery failed.
    assert int(last[1]) - int(first[1]) >= 3 and last[2] == first[2]


async def test_a_disabled_plugin_adds_nothing(db_url: str) -> None:
    def configure(config: HeraldConfig) -> None:
        config.plugins.disabled = ["dice"]

    async with harness(db_url, CallsTools(), configure=configure) as h:
        await h.user_says("p2", "/roll 2d6")
        await h.user_says("p2", 'call dice_roll_dice {"sides": 6}')
        entries = await h.wait_delivered("c2c", "p2", 2)
    assert entries[0]["content"] == "echo: /roll 2d6"  # not a command: the agent got it
    assert "unknown tool 'dice_roll_dice'" in str(entries[1]["content"])


async def test_a_plugin_that_raises_or_hangs_is_logged_and_skipped(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad = Plugin("bad")
    hooks_ran = asyncio.Event()

    @bad.tool
    def explode(x: int) -> str:
        """Always fails."""
        raise RuntimeError("kaboom")

    @bad.tool
    async def stall() -> str:
        """Never returns."""
        await asyncio.sleep(3600)
        return "unreachable"

    @bad.command("boom", "/boom — fails")
    async def boom(call: CommandCall) -> str:
        raise ValueError("no")

    @bad.on_message
    async def on_message(message: InboundMessage) -> None:
        hooks_ran.set()
        raise RuntimeError("hook failed")

    @bad.on_delivery
    async def on_delivery(outcome: Delivery) -> None:
        raise RuntimeError("delivery hook failed")

    ugly = Plugin("ugly")

    @ugly.tool
    def twice(ctx: RunContext[ToolCall], again: RunContext[ToolCall]) -> str:
        """A signature no tool schema can describe."""
        return ""

    def configure(config: HeraldConfig) -> None:
        config.plugins.timeout_s = 1

    caplog.set_level(logging.WARNING)
    async with harness(db_url, CallsTools(), configure=configure, plugins=[bad, ugly]) as h:
        await h.user_says("p3", 'call bad_explode {"x": 1} ; call bad_stall {}')
        await h.user_says("p3", "/boom")
        await h.user_says("p3", "after")
        entries = await h.wait_delivered("c2c", "p3", 3)
        await asyncio.wait_for(hooks_ran.wait(), 5)
    assert entries[0]["content"] == (
        "got: error: bad_explode failed: RuntimeError: kaboom | "
        "error: plugin 'bad' did not answer within 1 s; try again later"
    )
    assert entries[1]["content"] == "/boom failed (bad): ValueError"
    assert entries[2]["content"] == "echo: after"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "tool bad_explode (plugin 'bad') failed: RuntimeError: kaboom" in logged
    assert "plugin 'bad': /boom failed: ValueError: no" in logged
    assert "plugin 'bad': on_message hook failed: RuntimeError: hook failed" in logged
    assert "plugin 'ugly': its tools cannot be offered: UserError: " in logged


def test_a_plugin_that_cannot_be_imported_is_reported_not_fatal(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_plugin.py").write_text("raise ImportError('needs a missing library')\n")
    info = tmp_path / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[herald.plugins]\nbroken = broken_plugin:plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (broken,) = [entry for entry in installed(PluginsConfig()) if entry.name == "broken"]
    assert broken.plugin is None and broken.error == "ImportError: needs a missing library"
    result = CliRunner().invoke(app, ["plugins"])
    assert "failed to load" in result.output and "needs a missing library" in result.output
    assert "broken_plugin" not in sys.modules


async def test_a_tool_learns_where_it_runs_and_bad_arguments_go_back_to_the_model(db_url: str) -> None:
    where = Plugin("where")
    seen: list[ToolCall] = []

    @where.tool
    def here(ctx: RunContext[ToolCall], label: str) -> str:
        """Say where this call runs."""
        seen.append(ctx.deps)
        return f"{label} in {ctx.deps.conversation}"

    script = CallsTools()
    async with harness(db_url, script, plugins=[where]) as h:
        await h.member_says("g1", "m1", 'call where_here {"label": "x"} ; call where_here {"label": 3}')
        (reply,) = await h.wait_delivered("group", "g1", 1)
    assert reply["content"] == (
        "got: x in group:g1 | invalid arguments: label: Input should be a valid string. "
        "Fix them and call again."
    )
    (call,) = seen
    assert call.author_id == "m1" and call.key.startswith(f"turn:{call.turn_id}:1:")


async def test_a_plugin_tool_not_safe_to_rerun_is_not_called_twice_after_a_stop_mid_call(db_url: str) -> None:
    shop = Plugin("shop")
    paid: list[int] = []
    paying = asyncio.Event()

    @shop.tool(rerun_safe=False)
    async def pay(amount: int) -> str:
        """Pay an amount (once!)."""
        paid.append(amount)
        paying.set()
        await asyncio.Event().wait()  # Herald is stopped here
        return "paid"

    async with harness(db_url, CallsTools(), plugins=[shop]) as h:
        await h.user_says("p4", 'call shop_pay {"amount": 5}')
        await asyncio.wait_for(paying.wait(), 30)
        await h.restart()
        (reply,) = await h.wait_delivered("c2c", "p4", 1)
    assert paid == [5]
    assert str(reply["content"]).startswith("got: outcome unknown: Herald stopped while this tool ran")


async def test_delivery_hooks_learn_the_conversation_and_the_outcome(db_url: str) -> None:
    watcher = Plugin("watcher")
    finished: list[Delivery] = []
    got_two = asyncio.Event()

    @watcher.on_delivery
    async def record(delivery: Delivery) -> None:
        finished.append(delivery)
        if len(finished) == 2:
            got_two.set()

    async with harness(db_url, CallsTools(), plugins=[watcher]) as h:
        await h.user_says("p5", "/help")
        await h.user_says("p5", "hello")
        await asyncio.wait_for(got_two.wait(), 30)
    assert [(d.conversation, d.origin, d.delivered, d.describe()) for d in finished] == [
        ("c2c:p5", "command", True, "delivered"),
        ("c2c:p5", "agent_reply", True, "delivered"),
    ]


def test_names_that_cannot_prefix_tools_are_refused(db_url: str) -> None:
    with pytest.raises(ValueError, match="prefixes the plugin's tool names"):
        Plugin("my plugin")
    with pytest.raises(ValueError, match="command name"):
        Plugin("ok").command("two words")


def test_a_plugin_named_unlike_its_entry_point_is_reported(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "from herald.plugin import Plugin\nplugin = Plugin('other')\n"
    (tmp_path / "renamed_plugin.py").write_text(source)
    info = tmp_path / "renamed_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: renamed-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[herald.plugins]\nrenamed = renamed_plugin:plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (renamed,) = [entry for entry in installed(PluginsConfig()) if entry.name == "renamed"]
    assert renamed.plugin is None
    assert renamed.error == (
        "ValueError: the entry point is named 'renamed' but the plugin 'other'; give both the same name"
    )


def test_the_complete_example_in_the_docs_is_the_example_plugin(db_url: str) -> None:
    root = Path(__file__).resolve().parents[2]
    docs = (root / "docs" / "tools.md").read_text(encoding="utf-8")
    shown = docs.split("# examples/herald-dice/herald_dice/__init__.py\n", 1)[1].split("```", 1)[0]
    source = (root / "examples" / "herald-dice" / "herald_dice" / "__init__.py").read_text(encoding="utf-8")
    assert shown == source.split('"""', 2)[2].lstrip("\n")
