"""Message buttons (`keyboard`): what the platform accepts, and a user's click on one.

`check` validates a send's `keyboard` (rules 55a-55h in docs/sim.md, with their sources);
`click` turns a click on a button of a message the bot sent into the INTERACTION_CREATE the
platform pushes, once the client would let that user click it.
"""

from __future__ import annotations

import uuid
from typing import Any

from herald.sim.errors import SimError
from herald.sim.state import Scene, SimState

MAX_ROWS = 5
MAX_BUTTONS_PER_ROW = 5
ACTION_LINK, ACTION_CALLBACK, ACTION_COMMAND = 0, 1, 2
PERMISSION_USERS, PERMISSION_ADMINS, PERMISSION_EVERYONE, PERMISSION_ROLES = 0, 1, 2, 3
STYLES = frozenset({0, 1})  # 0 grey outline, 1 blue outline
PARSE_ERROR = 304039  # 消息按钮组件解析错误
CONTENT_ERROR = 304040  # 消息按钮组件消息内容错误
TEMPLATE_MISSING = 304038
CUSTOM_REFUSED = 304057
OVER_LIMIT = 40034029
GROUP_STYLE_ERROR = 305007
INTERACTION_BUTTON = 11  # `type` of a message-button interaction
CHAT_TYPES: dict[Scene, int] = {"channel": 0, "group": 1, "c2c": 2}
SCENE_NAMES: dict[Scene, str] = {"channel": "guild", "group": "group", "c2c": "c2c"}


def _content_error(what: str) -> SimError:
    return SimError(CONTENT_ERROR, f"消息按钮组件消息内容错误: {what}")


def check(state: SimState, scene: Scene, keyboard: Any) -> None:
    """Raise the platform's error for a `keyboard` it would refuse (rules 55a-55h)."""
    if not isinstance(keyboard, dict):
        raise SimError(PARSE_ERROR, "消息按钮组件解析错误: keyboard必须是对象")
    template = keyboard.get("id")
    content = keyboard.get("content")
    if template is not None and content is not None:
        raise SimError(PARSE_ERROR, "消息按钮组件解析错误: id与content只能二选一")
    if template is not None:
        known = state.settings.keyboard_templates
        if not isinstance(template, str) or (known is not None and template not in known):
            raise SimError(TEMPLATE_MISSING, f"消息按钮组件不存在: {template!r}")
        return
    if not isinstance(content, dict) or not isinstance(content.get("rows"), list):
        raise SimError(PARSE_ERROR, "消息按钮组件解析错误: 需要id或content.rows")
    if not state.settings.custom_keyboard_allowed:
        raise SimError(CUSTOM_REFUSED, "not allowd custom keyborad")
    rows = content["rows"]
    if not rows:
        raise _content_error("rows为空")
    if len(rows) > MAX_ROWS:
        raise SimError(OVER_LIMIT)
    ids: set[str] = set()
    for row in rows:
        buttons = row.get("buttons") if isinstance(row, dict) else None
        if not isinstance(buttons, list) or not buttons:
            raise _content_error("每一行需要buttons")
        if len(buttons) > MAX_BUTTONS_PER_ROW:
            raise SimError(OVER_LIMIT)
        for button in buttons:
            _check_button(scene, button, ids)


def _check_button(scene: Scene, button: Any, ids: set[str]) -> None:
    if not isinstance(button, dict):
        raise _content_error("button必须是对象")
    button_id = button.get("id")
    if button_id is not None:
        if not isinstance(button_id, str):
            raise _content_error(f"按钮id必须是字符串: {button_id!r}")
        if button_id in ids:
            raise _content_error(f"按钮id重复: {button_id}")
        ids.add(button_id)
    render = button.get("render_data")
    if not isinstance(render, dict):
        raise _content_error("缺少render_data")
    for key in ("label", "visited_label"):
        if not isinstance(render.get(key), str) or not render[key]:
            raise _content_error(f"render_data.{key}必填")
    style = render.get("style")
    if isinstance(style, bool) or not isinstance(style, int) or style not in STYLES:
        if scene == "group":
            raise SimError(GROUP_STYLE_ERROR, f"按钮样式参数错误: {style!r}")
        raise _content_error(f"render_data.style无效: {style!r}")
    action = button.get("action")
    if not isinstance(action, dict):
        raise _content_error("缺少action")
    kind = action.get("type")
    if isinstance(kind, bool) or kind not in (ACTION_LINK, ACTION_CALLBACK, ACTION_COMMAND):
        raise _content_error(f"action.type无效: {kind!r}")
    permission = action.get("permission")
    if not isinstance(permission, dict):
        raise _content_error("缺少action.permission")
    who = permission.get("type")
    if isinstance(who, bool) or who not in (
        PERMISSION_USERS,
        PERMISSION_ADMINS,
        PERMISSION_EVERYONE,
        PERMISSION_ROLES,
    ):
        raise _content_error(f"action.permission.type无效: {who!r}")
    if who == PERMISSION_ROLES and scene != "channel":
        raise _content_error("指定身份组仅频道可用")
    for key in ("specify_user_ids", "specify_role_ids"):
        listed = permission.get(key)
        if listed is not None and (
            not isinstance(listed, list) or not all(isinstance(item, str) for item in listed)
        ):
            raise _content_error(f"action.permission.{key}必须是字符串数组")
    for key in ("data", "unsupport_tips"):
        if not isinstance(action.get(key), str):
            raise _content_error(f"action.{key}必填")


def buttons_of(keyboard: Any) -> dict[str, dict[str, Any]]:
    """A checked custom keyboard's buttons by id (what a click can name)."""
    found: dict[str, dict[str, Any]] = {}
    content = keyboard.get("content") if isinstance(keyboard, dict) else None
    for row in content.get("rows", []) if isinstance(content, dict) else []:
        for button in row.get("buttons", []):
            if isinstance(button.get("id"), str):
                found[button["id"]] = button
    return found


class ClickRefused(Exception):
    """The click cannot happen as asked; the message says why and what to do instead."""


def click(
    state: SimState,
    message_id: str,
    button_id: str,
    user: str | None,
    member_role: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The interaction id and the INTERACTION_CREATE `d` of a click (rules 55i-55k)."""
    out = state.anchors.outbound.get(message_id)
    if out is None:
        raise ClickRefused(f"no message the bot sent has id {message_id!r}")
    if out.keyboard is None:
        raise ClickRefused(
            f"message {message_id} shows no buttons (a keyboard shows only under markdown, msg_type 2)"
        )
    button = out.keyboard.get(button_id)
    if button is None:
        raise ClickRefused(f"message {message_id} has no button {button_id!r}; it has {sorted(out.keyboard)}")
    if out.scene not in CHAT_TYPES:
        raise ClickRefused(f"clicks in {out.scene} are not emulated")
    clicker = user or (out.target if out.scene == "c2c" else None)
    if clicker is None:
        raise ClickRefused("field 'user' is required in a group or channel: who clicks")
    action = button["action"]
    if action["type"] == ACTION_LINK:
        raise ClickRefused("a link button opens its URL in the client; nothing reaches the bot")
    if action["type"] == ACTION_COMMAND:
        raise ClickRefused(
            "a command button puts its data in the user's input box; inject the message the user then sends"
        )
    permission = action["permission"]
    if permission["type"] == PERMISSION_USERS and clicker not in permission.get("specify_user_ids", []):
        raise ClickRefused(
            f"the client does not let {clicker} click: the button is for specify_user_ids only"
        )
    if (
        permission["type"] == PERMISSION_ADMINS
        and out.scene == "group"
        and member_role not in ("owner", "admin")
    ):
        raise ClickRefused(f"the client does not let {clicker} click: the button is for group admins only")
    interaction_id = str(uuid.uuid4())
    resolved: dict[str, Any] = {"button_data": action["data"], "button_id": button_id}
    d: dict[str, Any] = {
        "id": interaction_id,
        "type": INTERACTION_BUTTON,
        "scene": SCENE_NAMES[out.scene],
        "chat_type": CHAT_TYPES[out.scene],
        "timestamp": state.clock.rfc3339(),
        "application_id": state.settings.app_id,
        "version": 1,
        "data": {"type": INTERACTION_BUTTON, "resolved": resolved},
    }
    if out.scene == "c2c":
        d["user_openid"] = out.target
        resolved["user_id"] = out.target
    elif out.scene == "group":
        d["group_openid"] = out.target
        d["group_member_openid"] = clicker
    else:
        d["guild_id"] = state.channel_guild.get(out.target, "")
        d["channel_id"] = out.target
        resolved["user_id"] = clicker
        resolved["message_id"] = message_id
    state.clicks[interaction_id] = {
        "scene": out.scene,
        "target": out.target,
        "message_id": message_id,
        "button_id": button_id,
        "user": clicker,
        "code": None,
    }
    return interaction_id, d
