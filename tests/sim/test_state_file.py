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
        first = sim.inject.c2c("u1", "你好").msg_id
        later = sim.inject.c2c("u1", "再来一条").msg_id
        event = sim.inject.event("FRIEND_ADD", {"openid": "u1", "timestamp": 0}).id
        assert code(await send(sim, token, "u1", {"msg_id": first, "msg_seq": 1})) == 0
        status, sent = await send(sim, token, "u1", {"msg_id": first, "msg_seq": 2})
        assert status == 200
        sim.state.clock.advance(600)
        before = sim.state.transcripts.conversations[("c2c", "u1")]

    async with serve(SimSettings(port=0), state_file=state_file) as sim:
        assert sim.state.clock.offset >= 600
        assert sim.state.transcripts.conversations[("c2c", "u1")] == before
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
        msg_id = sim.inject.c2c("u1", "hello").msg_id
    async with serve(SimSettings(port=0)) as sim:
        token = sim.state.issue_token().value
        assert code(await send(sim, token, "u1", {"msg_id": msg_id, "msg_seq": 1})) == 40034024


async def test_an_unreadable_state_file_is_named_with_the_fix(tmp_path: Path) -> None:
    state_file = tmp_path / "sim-state.json"
    state_file.write_text("{not json", encoding="utf-8")
    with pytest.raises(StateFileError, match=r"sim-state\.json.*move it away"):
        async with serve(SimSettings(port=0), state_file=state_file):
            pass


def test_every_kept_registry_survives_the_file(tmp_path: Path) -> None:
    """Quotas, files, uploads, streams, faults and odd keys come back equal (streams share their message)."""
    from collections import deque

    from herald.sim import persist
    from herald.sim.state import Fault, SimState
    from herald.sim.stores.media import FileRecord, Served, Upload
    from herald.sim.stores.streams import Stream

    state = SimState(SimSettings())
    sent = state.add_outbound("c2c", "u", "hi")
    state.streams.by_id[sent.id] = Stream(
        outbound=sent, target="u", index=1, content="a", first_content="a", last_at=1.0
    )
    state.media.uploads["up"] = Upload("up", "c2c", 1, "f", 3, "m", "s", 5, [1, 2], {1: b"\x00\x01"}, {1})
    state.media.files["fi"] = FileRecord("fi", "uu", "group", 1, 3, None)
    state.faults.append(Fault(1, 500, 50055001, "x"))
    state.quotas.windows[("c2c", "u", "minute")] = deque([1.0, 2.0])
    state.quotas.days[("c2c", "u", 20261202)] = 3
    state.media.attachments["a1"] = Served(b"\x89PNG", "image/png")
    state.quotas.set_of(("guild-channels", "g", 1)).add("ch")
    state.transcripts.conversations[("c2c", "u")] = [{"direction": "in", "d": {"$tuple": 1, "k": [1, 2]}}]
    state.clock.advance(42)
    path = tmp_path / "state.json"
    persist.save(state, path)

    restored = SimState(SimSettings())
    assert persist.load(restored, path)
    for name in persist.KEPT:
        if name != "streams":
            assert getattr(restored, name) == getattr(state, name), name
    assert restored.streams.by_id[sent.id].outbound is restored.anchors.outbound[sent.id]
    assert restored.clock.offset == 42


def test_a_state_file_of_format_version_1_still_loads(tmp_path: Path) -> None:
    """Files written before the state was split into stores keep their traffic."""
    import json

    from herald.sim import persist
    from herald.sim.state import SimState

    anchor = {"msg_id": "m1", "scene": "c2c", "target": "u1", "author": "u1", "received_at": 1.0,
              "ref_idx": "R1", "replies": 2, "seqs": {"$set": [1, 2]}}  # fmt: skip
    flat = {
        "tokens": {"t1": {"$class": "Token", "fields": {"value": "t1", "expires_at": 9e9}}},
        "current_token": {"$class": "Token", "fields": {"value": "t1", "expires_at": 9e9}},
        "anchors": {"m1": {"$class": "Anchor", "fields": anchor}},
        "transcripts": {"$dict": [[{"$tuple": ["c2c", "u1"]}, [{"direction": "in", "n": 0}]]]},
        "day_counts": {"$dict": [[{"$tuple": ["c2c", "u1", "2026-12-05"]}, 3]]},
        "request_count": 7,
        "proactive_allowed": {"$dict": [[{"$tuple": ["c2c", "u1"]}, True]]},
    }
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({"version": 1, "clock_offset": 5, "state": flat}), encoding="utf-8")
    state = SimState(SimSettings())
    assert persist.load(state, path)
    assert state.anchors.messages["m1"].replies == 2 and state.anchors.messages["m1"].seqs == {1, 2}
    assert state.tokens.current is state.tokens.issued["t1"]
    assert state.check_token("t1") == "ok"
    assert state.transcripts.of("c2c", "u1") == [{"direction": "in", "n": 0}]
    assert state.quotas.count(("c2c", "u1", "2026-12-05")) == 3
    assert state.requests.count == 7 and state.proactive_allowed[("c2c", "u1")] is True
