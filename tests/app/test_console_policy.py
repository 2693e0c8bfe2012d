"""Per-scope policy edited in the console: saved (with the API token, as a script would), it
replaces the file's `[policy]` from the next turn on, only in the scope it names; a policy that is
not valid TOML, or names a model that does not exist, is refused with the reason; the change is
audited; a reset brings the file's back."""

from __future__ import annotations

import aiohttp
from pydantic import SecretStr

from herald.config import HeraldConfig
from tests.app.herald_harness import Harness, harness

TOKEN = "policy-script-token"


def configure(config: HeraldConfig) -> None:
    config.console.enabled = True
    config.console.port = 0
    config.console.api_token = SecretStr(TOKEN)
    config.policy = config.policy.model_validate({"groups": {"G1": {"system_prompt": "FILE PERSONA"}}})


async def post(h: Harness, path: str, form: dict[str, str]) -> tuple[int, str]:
    assert h.herald is not None and h.herald.console is not None
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(h.herald.console.base_url + path, data=form, allow_redirects=False) as r,
    ):
        return r.status, await r.text()


async def test_a_policy_saved_in_the_console_applies_to_the_next_turn_of_its_scope(db_url: str) -> None:
    async with harness(db_url, configure=configure) as h:
        not_toml = await post(h, "/settings/policy", {"policy": "[groups.G1\nsystem_prompt = 1"})
        no_model = await post(h, "/settings/policy", {"policy": '[groups.G1]\nmodel = "big"'})
        saved = await post(
            h, "/settings/policy", {"policy": '[groups.G1]\nsystem_prompt = "CONSOLE PERSONA"'}
        )
        await h.member_says("G1", "m1", "你好")
        await h.wait_delivered("group", "G1", 1)
        in_g1 = h.script.instructions[-1] or ""
        await h.member_says("G2", "m1", "你好")
        await h.wait_delivered("group", "G2", 1)
        in_g2 = h.script.instructions[-1] or ""
        assert h.herald is not None and h.herald.console is not None
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            async with http.get(h.herald.console.base_url + "/settings") as r:
                page = await r.text()
        reset = await post(h, "/settings/reset", {"key": "agent.policy"})
        await h.member_says("G1", "m1", "还在吗")
        await h.wait_delivered("group", "G1", 2)
        after_reset = h.script.instructions[-1] or ""
    assert not_toml[0] == 400 and "not valid TOML" in not_toml[1]
    assert no_model[0] == 400 and "model = &#39;big&#39; is not a remote [llm.models.NAME]" in no_model[1]
    assert saved[0] == 303 and reset[0] == 303
    assert "CONSOLE PERSONA" in in_g1 and "FILE PERSONA" not in in_g1
    assert "CONSOLE PERSONA" not in in_g2
    assert "agent.policy" in page and "api-token" in page  # the audit: which key, who
    assert "FILE PERSONA" in after_reset
