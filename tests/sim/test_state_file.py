"""`herald sim --state FILE`: a restarted emulator still knows the traffic before the restart, so a
reply on a pre-restart msg_id or event_id is accepted or refused by the same rules as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from herald.sim.app import RunningSim, serve
from herald.sim.persist import StateFileError
from herald.sim.settings import SimSettings


async def send(sim: RunningSim, token: str, openid: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    url = f"{sim.base_url}/v2/users/{openid}/messages"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url, json={"msg_type": 0, "content": "x", **body}, headers={"Authorization": "QQBot " + token}
        ) as r,
    ):
        result: dict[str, Any] = await r.json()
        return r.status, result


def code(answer: tuple[int, dict[str, Any]]) -> int:
    status, body = answer
    return 0 if status == 200 else int(body["code"])


async def test_a_restart_with_the_state_file_keeps_anchors_msg_seq_counts_and_transcripts(
    tmp_path: Path,
) -> None:
    state_file = tmp_path / "data" / "sim-state.json"
    async with serve(SimSettings(port=0), state_file=state_file) as sim:
        token = sim.state.issue_token().value
        first = sim.state.inject_c2c("u1", "你好").msg_id
        later = sim.state.inject_c2c("u1", "再来一条").msg_id
        event = sim.state.inject_event("FRIEND_ADD", {"openid": "u1", "timestamp": 0}).id
        assert code(await send(sim, token, "u1", {"msg_id": first, "msg_seq": 1})) == 0
        status, sent = await send(sim, token, "u1", {"msg_id": first, "msg_seq": 2})
        assert status == 200
        sim.state.clock.advance(600)
        before = sim.state.transcripts[("c2c", "u1")]

    async with serve(SimSettings(port=0), state_file=state_file) as sim:
        assert sim.state.clock.offset >= 600
        assert sim.state.transcripts[("c2c", "u1")] == before
        # The token issued before the restart is still valid until its expiry.
        assert code(await send(sim, token, "u1", {"msg_id": first, "msg_seq": 1})) == 40054005  # dedup kept
        assert code(await send(sim, token, "u1", {"msg_id": sent["id"], "msg_seq": 1})) == 40034024  # own id
        assert code(await send(sim, token, "u1", {"msg_id": first, "msg_seq": 3})) == 0
        assert code(await send(sim, token, "u1", {"msg_id": first, "msg_seq": 4})) == 0
        assert code(await send(sim, token, "u1", {"msg_id": first, "msg_seq": 5})) == 40034128  # 4 replies
        assert code(await send(sim, token, "u1", {"event_id": event, "msg_seq": 1})) == 0
        sim.state.clock.advance(3600)  # the window runs from the pre-restart receive time

    async with serve(SimSettings(port=0), state_file=state_file) as sim:
        assert code(await send(sim, token, "u1", {"msg_id": later, "msg_seq": 1})) == 40034005


async def test_without_a_state_file_a_restart_forgets(tmp_path: Path) -> None:
    async with serve(SimSettings(port=0)) as sim:
        msg_id = sim.state.inject_c2c("u1", "hello").msg_id
    async with serve(SimSettings(port=0)) as sim:
        token = sim.state.issue_token().value
        assert code(await send(sim, token, "u1", {"msg_id": msg_id, "msg_seq": 1})) == 40034024


async def test_an_unreadable_state_file_is_named_with_the_fix(tmp_path: Path) -> None:
    state_file = tmp_path / "sim-state.json"
    state_file.write_text("{not json", encoding="utf-8")
    with pytest.raises(StateFileError, match=r"sim-state\.json.*move it away"):
        async with serve(SimSettings(port=0), state_file=state_file):
            pass
