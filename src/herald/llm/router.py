"""How the embedded model calls Herald's tools: a small model picks an action, grammar-constrained.

A 135M model asked to write OpenAI tool calls gets almost none right (docs/local-model.md has the
figures). It does far better at a narrower job: copy the shape of the most similar examples. So
for a user message the router
1. picks the examples closest to the message (character bigrams and words, Jaccard),
2. asks the model, through the server's plain completion endpoint, for one action line in a tiny
   language (`send N TEXT`, `every CRON TEXT`, `list`, `cancel ID`, `chat`), and
3. constrains that line with a GBNF grammar built for this message: TEXT must be a phrase of the
   message and ID one of its id-like words, so what the model copies is copied exactly.
The action becomes ordinary tool calls of Herald's built-in tools; `chat` goes to the model's
normal chat completion. After the tool round, the reply is written from the tools' results (the
model is not asked to summarise: at this size it makes things up), in the user's language.

A scheduled task firing is routed the same way with only `send 1 TEXT` allowed, TEXT a phrase of
the task's note, and that phrase is the reply.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings

# The built-in tools the actions map to (their schemas are the agent's; tests check the names).
SEND_MESSAGE = "send_message_to_user"
FUTURE_TASK = "future_task"

# (message, action): the examples the model imitates. None of these is a prompt of
# bench/local_tools.py, whose held-out set also shares no wording pattern with them.
EXAMPLES: list[tuple[str, str]] = [
    ("给我发两条消息", "send 2 消息"),
    ("帮我发送4条问候", "send 4 问候"),
    ("发3条提醒给我", "send 3 提醒"),
    ("连发两条早安", "send 2 早安"),
    ("发一条消息：晚安", "send 1 晚安"),
    ("跟我说一声早上好", "send 1 早上好"),
    ("Send me 2 reminders.", "send 2 reminders"),
    ("Send three messages saying hello.", "send 3 hello"),
    ("Please send me 5 pings, one by one.", "send 5 pings"),
    ("Message me the word banana.", "send 1 banana"),
    ("Send me one message: good night", "send 1 good night"),
    ("每分钟提醒我站起来", "every * * * * * 站起来"),
    ("每天早上9点叫我起床", "every 0 9 * * * 起床"),
    ("每小时提醒我休息一下", "every 0 * * * * 休息一下"),
    ("每分钟给我报个时", "every * * * * * 报个时"),
    ("每分钟给我发一次早安", "every * * * * * 早安"),
    ("Remind me every minute to drink tea.", "every * * * * * drink tea"),
    ("Every day at 9 remind me to read.", "every 0 9 * * * read"),
    ("Ping me every minute.", "every * * * * * Ping"),
    ("Send me a status update every hour.", "every 0 * * * * status update"),
    ("看看我的任务", "list"),
    ("我设置了哪些提醒？", "list"),
    ("查看定时任务列表", "list"),
    ("Show my tasks.", "list"),
    ("What reminders do I have?", "list"),
    ("Which jobs are scheduled?", "list"),
    ("删除任务 5c6d7e8f", "cancel 5c6d7e8f"),
    ("取消提醒 77aa88bb", "cancel 77aa88bb"),
    ("Delete job 1234abcd", "cancel 1234abcd"),
    ("Stop the task 0f0f0f0f please.", "cancel 0f0f0f0f"),
    ("今天天气不错", "chat"),
    ("你是谁？", "chat"),
    ("讲个故事吧", "chat"),
    ("一加一等于几？", "chat"),
    ("谢谢你！", "chat"),
    ("介绍一下北京", "chat"),
    ("你最近好吗？", "chat"),
    ("上海在哪个省？", "chat"),
    ("Who wrote Hamlet?", "chat"),
    ("Good morning!", "chat"),
    ("What's 2 plus 2?", "chat"),
    ("Tell me about cats.", "chat"),
    ("Thanks a lot.", "chat"),
    ("Describe yourself briefly.", "chat"),
    ("How's it going?", "chat"),
    ("Hi there, how are you?", "chat"),
    ("What is the biggest ocean?", "chat"),
    ("Can you explain what a cloud is?", "chat"),
    ("Which country is Tokyo in?", "chat"),
]
SHOTS = 6

_HEADER = (
    "Classify each chat message into an action: send N TEXT (send N messages now), "
    "every CRON TEXT (recurring task), list (show tasks), cancel ID, chat (anything else).\n\n"
)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_WORD = re.compile(r"[A-Za-z0-9']+")
_ID = re.compile(r"[0-9A-Za-z]{4,}")
_JOB_NOTE = re.compile(r"^\[Scheduled task .*?\] Your note for this moment: (?P<note>.*)$", re.S)
_PHRASE_CHARS = 16  # longest CJK phrase TEXT may be
_PHRASE_WORDS = 4  # longest run of words TEXT may be


def chinese(text: str) -> bool:
    return _CJK.search(text) is not None


def _features(text: str) -> set[str]:
    lowered = text.lower()
    bigrams = {lowered[i : i + 2] for i in range(len(lowered) - 1)}
    return bigrams | set(re.findall(r"[a-z]+|\d+|[\u4e00-\u9fff]", lowered))


def nearest_examples(message: str, k: int = SHOTS) -> list[tuple[str, str]]:
    """The k examples most like `message`, most similar first."""
    mine = _features(message)

    def similarity(example: tuple[str, str]) -> float:
        theirs = _features(example[0])
        return len(mine & theirs) / (len(mine | theirs) or 1)

    return sorted(EXAMPLES, key=similarity, reverse=True)[:k]


def prompt_for(message: str) -> str:
    # The most similar example goes last, nearest the message: small models copy what is closest.
    shots = reversed(nearest_examples(message))
    body = "".join(f"Message: {text}\nAction: {action}\n\n" for text, action in shots)
    return f"{_HEADER}{body}Message: {_one_line(message)}\nAction:"


def phrases(message: str) -> list[str]:
    """What TEXT may be: every run of up to 16 CJK characters and of up to 4 words in `message`."""
    found: set[str] = set()
    for run in _CJK_RUN.findall(message):
        for start in range(len(run)):
            for end in range(start + 1, min(len(run), start + _PHRASE_CHARS) + 1):
                found.add(run[start:end])
    words = _WORD.findall(message)
    for start in range(len(words)):
        for end in range(start + 1, min(len(words), start + _PHRASE_WORDS) + 1):
            found.add(" ".join(words[start:end]))
    return sorted(found)


def _alternatives(options: list[str]) -> str:
    return " | ".join(json.dumps(option, ensure_ascii=False) for option in options)


def grammar_for(message: str, *, send_only: bool = False) -> str:
    """The GBNF grammar of the action line for this message."""
    texts = phrases(message) or ["message"]
    lines = [f"text ::= {_alternatives(texts)}"]
    if send_only:
        return "\n".join(['root ::= "send 1 " text', *lines]) + "\n"
    ids = sorted(set(_ID.findall(message)))
    choices = ['("send " [1-9] " " text)', '("every " cron " " text)', '"list"', '"chat"']
    if ids:
        choices.append('("cancel " id)')
        lines.append(f"id ::= {_alternatives(ids)}")
    lines += [
        # Minute and hour only (every minute, hour or day at a time): the day fields are where
        # the small model wandered.
        'cron ::= field " " field " * * *"',
        'field ::= "*" | [0-9] [0-9]?',
    ]
    return "\n".join([f"root ::= {' | '.join(choices)}", *lines]) + "\n"


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # send | every | list | cancel | chat
    count: int = 0
    text: str = ""
    cron: str = ""
    job_id: str = ""


def parse_action(line: str) -> Action:
    """Read an action line; anything unreadable is `chat` (the grammar makes that rare)."""
    words = line.strip().split(" ")
    head, rest = words[0], words[1:]
    if head == "send" and rest and rest[0].isdigit() and int(rest[0]) > 0:
        return Action("send", count=int(rest[0]), text=" ".join(rest[1:]).strip())
    if head == "every" and len(rest) >= 5:
        return Action("every", cron=" ".join(rest[:5]), text=" ".join(rest[5:]).strip())
    if head == "list" and not rest:
        return Action("list")
    if head == "cancel" and len(rest) == 1:
        return Action("cancel", job_id=rest[0])
    return Action("chat")


def tool_calls(action: Action, message: str, offered: set[str]) -> list[ToolCallPart]:
    """The built-in tool calls an action stands for (none for `chat`, or if a tool is not offered)."""
    if action.kind == "send" and SEND_MESSAGE in offered:
        text = action.text or message
        numbered = action.count > 1
        return [
            ToolCallPart(SEND_MESSAGE, {"text": f"{text} {n}" if numbered else text})
            for n in range(1, action.count + 1)
        ]
    if FUTURE_TASK not in offered:
        return []
    if action.kind == "every":
        # The whole request is the note: when the task fires, the reply is routed from it.
        args = {
            "action": "create",
            "cron_expression": action.cron,
            "name": action.text or message,
            "note": message,
        }
        return [ToolCallPart(FUTURE_TASK, args)]
    if action.kind == "list":
        return [ToolCallPart(FUTURE_TASK, {"action": "list"})]
    if action.kind == "cancel":
        return [ToolCallPart(FUTURE_TASK, {"action": "delete", "job_id": action.job_id})]
    return []


def summarise(results: list[ToolReturnPart], zh: bool) -> str:
    """The turn's reply after its tool round, from what the tools returned."""
    sends = [r for r in results if r.tool_name == SEND_MESSAGE]
    others = [r for r in results if r.tool_name != SEND_MESSAGE]
    lines: list[str] = []
    if sends:
        failed = [(n, _reason(r)) for n, r in enumerate(sends, 1) if not _delivered(r)]
        sent = len(sends) - len(failed)
        lines.append(f"已发送 {sent} 条消息。" if zh else f"Sent {sent} message{'s' * (sent != 1)}.")
        for n, why in failed:
            lines.append(f"第 {n} 条未送达：{why}" if zh else f"Message {n} not delivered: {why}")
    for result in others:
        lines.append(str(result.content))
    return "\n".join(lines)


def _delivered(result: ToolReturnPart) -> bool:
    return str(result.content).startswith("delivered")


def _reason(result: ToolReturnPart) -> str:
    return str(result.content).removeprefix("not delivered: ")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ToolRouter(Model):
    """The embedded model with Herald's built-in tools: routes a message to tool calls (above),
    and hands plain chat to `chat`, the same model's ordinary chat completion."""

    def __init__(self, chat: Model, base_url: str, model_alias: str, *, timeout_s: float = 60.0) -> None:
        super().__init__()
        self.chat = chat
        self.server_url = base_url.rstrip("/")
        self.model_alias = model_alias
        self.timeout_s = timeout_s
        self._http: aiohttp.ClientSession | None = None

    @property
    def model_name(self) -> str:
        return self.chat.model_name

    @property
    def system(self) -> str:
        return self.chat.system

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        last = messages[-1]
        offered = {tool.name for tool in model_request_parameters.function_tools}
        assert isinstance(last, ModelRequest)
        results = [part for part in last.parts if isinstance(part, ToolReturnPart)]
        message = _user_text(messages)
        if results:
            return ModelResponse(parts=[TextPart(summarise(results, chinese(message)))])
        if not offered:
            return await self.chat.request(messages, model_settings, model_request_parameters)
        note = _JOB_NOTE.match(message)
        if note is not None:
            line = await self._complete(note["note"], send_only=True)
            return ModelResponse(parts=[TextPart(parse_action(line).text or note["note"])])
        line = await self._complete(message)
        calls = tool_calls(parse_action(line), message, offered)
        if calls:
            return ModelResponse(parts=list(calls), model_name=self.model_name)
        chat_only = ModelRequestParameters(allow_text_output=True)
        history = _in_language_of(message, chat_history(messages))
        return await self.chat.request(history, model_settings, chat_only)

    async def _complete(self, message: str, *, send_only: bool = False) -> str:
        """One grammar-constrained action line from the server's completion endpoint."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        body: dict[str, Any] = {
            "model": self.model_alias,
            "prompt": prompt_for(message),
            "grammar": grammar_for(message, send_only=send_only),
            "temperature": 0,
            "max_tokens": 32,
            "stop": ["\n"],
        }
        async with self._http.post(f"{self.server_url}/completions", json=body) as response:
            answer = await response.json(content_type=None)
            if response.status != 200:
                raise RuntimeError(
                    f"the embedded model's completion failed (HTTP {response.status}): {answer}"
                )
        return str(answer["choices"][0]["text"])


def chat_history(messages: list[ModelMessage]) -> list[ModelMessage]:
    """The conversation as plain chat: tool calls and their results left out (the server refuses
    an assistant message without text, and the small model only needs what was said)."""
    plain: list[ModelMessage] = []
    for message in messages:
        if isinstance(message, ModelResponse):
            texts = [part for part in message.parts if isinstance(part, TextPart)]
            if texts:
                plain.append(dataclasses.replace(message, parts=texts))
            continue
        parts = [part for part in message.parts if not isinstance(part, ToolReturnPart | RetryPromptPart)]
        if parts or message.instructions:
            plain.append(dataclasses.replace(message, parts=parts))
    return plain


def _in_language_of(message: str, messages: list[ModelMessage]) -> list[ModelMessage]:
    """Ask for the user's language outright: left alone, the small model often answers Chinese in
    English."""
    last = messages[-1]
    if not chinese(message) or not isinstance(last, ModelRequest):
        return messages
    instructions = f"{last.instructions}\n\n请用中文回答。" if last.instructions else "请用中文回答。"
    return [*messages[:-1], dataclasses.replace(last, instructions=instructions)]


def _user_text(messages: list[ModelMessage]) -> str:
    """The newest user prompt's text."""
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""
