"""App access tokens and the Authorization header (rules 1-5; docs/sim.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.sim.conftest import SimClient


async def _token(
    client: SimClient, app_id: str | None = None, secret: str | None = None
) -> dict[str, object]:
    s = client.sim.state.settings
    answer = await client.post(
        "/app/getAppAccessToken",
        {"appId": app_id or s.app_id, "clientSecret": secret or s.secret},
        auth=False,
    )
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    body: dict[str, object] = answer.body
    return body


async def test_rule1_token_with_expires_in_as_a_string(client: SimClient) -> None:
    body = await _token(client)
    assert isinstance(body["access_token"], str) and body["access_token"]
    assert body["expires_in"] == "7200"


async def test_rule2_bad_credentials_answer_http_200_with_a_code(client: SimClient) -> None:
    assert await _token(client, secret="wrong") == {"code": 100016, "message": "invalid appid or secret"}
    assert (await _token(client, app_id="999"))["code"] == 100007


async def test_rule3_same_token_until_the_last_minute_then_a_new_one_and_the_old_keeps_working(
    client: SimClient,
) -> None:
    first = await _token(client)
    assert (await _token(client))["access_token"] == first["access_token"]
    await client.advance(7200 - 30)
    second = await _token(client)
    assert second["access_token"] != first["access_token"]
    assert second["expires_in"] == "7200"
    old = {"Authorization": f"QQBot {first['access_token']}"}
    (await client.get("/users/@me", headers=old)).ok()
    await client.advance(31)
    (await client.get("/users/@me", headers=old)).error(11244, status=401)
    (await client.get("/users/@me", headers={"Authorization": f"QQBot {second['access_token']}"})).ok()


async def test_rule4_missing_wrong_and_expired_tokens_are_401(client: SimClient) -> None:
    (await client.get("/users/@me", auth=False)).error(11241, status=401)
    (await client.get("/users/@me", headers={"Authorization": "QQBot nope"})).error(11243, status=401)
    (await client.get("/users/@me")).ok()
    await client.post("/_sim/faults", {"kind": "expire_tokens"})
    old = {"Authorization": f"QQBot {client.token}"}
    (await client.get("/users/@me", headers=old)).error(11244, status=401)


async def test_rule5_static_bot_token_is_refused_and_union_appid_is_optional(client: SimClient) -> None:
    s = client.sim.state.settings
    legacy = {"Authorization": f"Bot {s.app_id}.static-token"}
    (await client.get("/v2/groups/g1/bot_state", headers=legacy)).error(11262, status=401)
    (await client.get("/users/@me")).ok()
    (await client.get("/users/@me", headers={"X-Union-Appid": s.app_id})).ok()


async def test_rule5_legacy_bot_token_only_on_guild_apis_when_configured(client: SimClient) -> None:
    s = client.sim.state.settings
    await client.settings(legacy_bot_token="static-token", require_session_for_guild=False)
    legacy = {"Authorization": f"Bot {s.app_id}.static-token"}
    (await client.get("/users/@me", headers=legacy)).ok()
    (await client.post("/channels/c1/messages", {"content": "hi"}, headers=legacy)).ok()
    (await client.post("/v2/users/u1/messages", {"content": "hi"}, headers=legacy)).error(11262, status=401)
    (await client.get("/users/@me", headers={"Authorization": f"Bot {s.app_id}.other"})).error(
        11262, status=401
    )
