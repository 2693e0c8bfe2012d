"""One agent turn, step by step, durably.

A step is one model request, then (if the response calls tools) one round of tool calls. The
turn's messages are stored after each model response and after each round of tool results, so a
restarted Herald resumes a turn without asking the model again for a step it already answered,
and without re-running a tool call that already ran (its outbox item / job exists under the
call's key). The final text of the turn is sent as the reply; empty final text sends nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from opentelemetry import trace
from pydantic_ai.direct import model_request
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.settings import ModelSettings

from herald.agent.clean import clean_response
from herald.agent.health import ModelHealth
from herald.agent.history import fit_history
from herald.agent.prompt import instructions
from herald.agent.settings import AgentSettings
from herald.agent.tools import Finisher, Sender, Toolbox, ToolContext, ToolResult, outcome_unknown
from herald.agent.turns import DONE, FAILED, Turn, TurnStore
from herald.config import AgentConfig
from herald.core.clock import Clock
from herald.core.segments import Text

log = logging.getLogger(__name__)


def _open_tool_round(messages: list[ModelMessage]) -> tuple[list[ToolCallPart], dict[str, ToolResult]]:
    """The calls of the newest model response and the results already stored for them.

    Returns no calls when every call has its result (time to ask the model) or when the last
    message is a user prompt.
    """
    last = messages[-1]
    if isinstance(last, ModelResponse):
        return list(last.tool_calls), {}
    if len(messages) < 2 or not isinstance(messages[-2], ModelResponse):
        return [], {}
    calls = list(messages[-2].tool_calls)
    done = {part.tool_call_id: part for part in last.parts if isinstance(part, ToolReturnPart)}
    if all(call.tool_call_id in done for call in calls):
        return [], done
    return calls, done


def _unique_call_ids(response: ModelResponse, step: int) -> ModelResponse:
    """Give every tool call an id unique in its response (some servers repeat or omit them):
    the id keys the call's stored result and its idempotency key."""
    calls = response.tool_calls
    ids = [call.tool_call_id for call in calls]
    if all(ids) and len(set(ids)) == len(ids):
        return response
    index = 0
    parts = []
    for part in response.parts:
        if isinstance(part, ToolCallPart):
            part = dataclasses.replace(part, tool_call_id=f"herald_{step}_{index}")
            index += 1
        parts.append(part)
    return dataclasses.replace(response, parts=parts)


class ModelFailure(Exception):
    """The model could not answer (error, timeout, nonsense); the cause is in `__cause__`."""


class AgentRunner:
    def __init__(
        self,
        *,
        model: Model,
        turns: TurnStore,
        toolbox: Toolbox,
        sender: Sender,
        clock: Clock,
        config: AgentConfig,
        settings: ModelSettings | None = None,
        offer_tools: bool = True,
        timeout_s: float = 60.0,
        health: ModelHealth | None = None,
        tracer: trace.Tracer | None = None,
        instrumentation: InstrumentationSettings | None = None,
        agent_settings: AgentSettings | None = None,
    ) -> None:
        """`agent_settings`: the prompt and tools an operator may change while Herald runs (default:
        `config`'s, fixed)."""
        self.model = model
        self.tracer = tracer or trace.NoOpTracer()
        self.instrumentation = instrumentation
        self.health = health or ModelHealth(clock)
        self.turns = turns
        self.toolbox = toolbox
        self.sender = sender
        self.clock = clock
        self.config = config
        self.settings = settings
        self.timeout_s = timeout_s
        self.offer_tools = offer_tools
        self.agent_settings = agent_settings or AgentSettings(config)

    @property
    def parameters(self) -> ModelRequestParameters:
        """Asked per request: external tools come and go with their servers, operators disable some."""
        return ModelRequestParameters(
            function_tools=self.toolbox.offered if self.offer_tools else [], allow_text_output=True
        )

    def parameters_in(self, context: ToolContext) -> ModelRequestParameters:
        """`parameters` for one turn: without the tools its author may not call."""
        return ModelRequestParameters(
            function_tools=self.toolbox.offered_in(context) if self.offer_tools else [],
            allow_text_output=True,
        )

    async def run(self, turn: Turn) -> None:
        if turn.status != "pending":
            return
        if not turn.messages:
            turn.messages = [ModelRequest(parts=[UserPromptPart(turn.content, timestamp=turn.created_at)])]
        history = fit_history(
            await self.turns.history(turn.conversation, turn.id, self.config.history_turns),
            self.config.history_turns,
            self.config.history_tokens,
        )
        context = ToolContext(
            turn_id=turn.id,
            target=turn.target,
            author_id=turn.author_id,
            trigger_id=turn.trigger_id,
            timezone=self.config.timezone,
        )
        steps = sum(isinstance(message, ModelResponse) for message in turn.messages)
        while True:
            last = turn.messages[-1]
            if isinstance(last, ModelResponse) and not last.tool_calls:
                break
            calls, done = _open_tool_round(turn.messages)
            if calls:
                await self._run_tools(turn, context, steps, calls, done)
                continue
            if steps >= self.config.max_steps:
                log.warning("turn %s: stopped after %s model steps", turn.id, steps)
                await self._fail(turn, f"stopped after {steps} model steps")
                return
            try:
                response = await self._request(history, turn, context)
            except ModelFailure as failure:
                cause = self._cause(failure.__cause__ or failure)
                state = self.health.failed(cause)
                log.error("turn %s in %s: the model is %s", turn.id, turn.conversation, state)
                await self._fail(turn, cause)
                return
            self.health.succeeded()
            steps += 1
            response = _unique_call_ids(response, steps)
            turn.messages.append(response)
            if not response.tool_calls:
                break  # the final response is stored with the turn's end, below
            # The response is stored with the round's first write (its "outcome unknown" marks or,
            # without them, the response alone) before any call begins.
            await self._run_tools(turn, context, steps, list(response.tool_calls), {}, response_stored=False)
        final = turn.messages[-1]
        assert isinstance(final, ModelResponse)
        text = (final.text or "").strip()
        # The final response, the reply's outbox row and the turn's end commit together: one
        # transaction instead of three, and still all durable before anything is sent.
        if text:
            await self.sender.enqueue(
                turn.target,
                [Text(text)],
                origin="agent_reply",
                trigger_id=turn.trigger_id,
                idempotency_key=f"turn:{turn.id}:final",
                also=self.turns.ending(turn, steps),
            )
            self.turns.ended(turn, DONE)
        else:
            await self.turns.end(turn, steps)

    def _cause(self, error: BaseException) -> str:
        if isinstance(error, TimeoutError) and not str(error):
            return f"TimeoutError: no answer within {self.timeout_s:g} s ([llm] timeout_s)"
        return f"{type(error).__name__}: {error}"

    async def _request(self, history: list[ModelMessage], turn: Turn, context: ToolContext) -> ModelResponse:
        messages = [*history, *turn.messages]
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        prompt = instructions(
            self.agent_settings.system_prompt, context.target, self.clock.now(), self.config.timezone
        )
        messages[-1] = dataclasses.replace(last, instructions=prompt)
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await model_request(
                    self.model,
                    messages,
                    model_settings=self.settings,
                    model_request_parameters=self.parameters_in(context),
                    instrument=self.instrumentation,
                )
        except Exception as exc:
            raise ModelFailure() from exc
        return clean_response(response)

    async def _run_tools(
        self,
        turn: Turn,
        context: ToolContext,
        step: int,
        calls: list[ToolCallPart],
        done: dict[str, ToolResult],
        *,
        response_stored: bool = True,
    ) -> None:
        """Run the round's calls that have no stored result yet; store each result as it comes.

        Calls begin in call order (sends enqueue in order); they finish concurrently. The stored
        round is a `ModelRequest` holding the results so far, in call order, so a resumed turn
        runs only the calls still missing. A call not safe to run twice gets an "outcome unknown"
        result stored before it begins, which its real result replaces: a crash in between resumes
        with that instead of a second call.
        """
        lock = asyncio.Lock()

        def store_round() -> None:
            parts = [done[c.tool_call_id] for c in calls if c.tool_call_id in done]
            if isinstance(turn.messages[-1], ModelRequest):
                turn.messages[-1] = ModelRequest(parts=parts)
            else:
                turn.messages.append(ModelRequest(parts=parts))

        async def finish(call: ToolCallPart, finisher: Finisher, span: trace.Span) -> None:
            with trace.use_span(span, end_on_exit=True):
                result = await finisher()
            async with lock:
                done[call.tool_call_id] = result
                store_round()
                await self.turns.save(turn, step)

        pending = [call for call in calls if call.tool_call_id not in done]
        unsafe = [call for call in pending if not self.toolbox.is_rerun_safe(call)]
        for call in unsafe:
            done[call.tool_call_id] = outcome_unknown(call)
        if unsafe:
            store_round()
        if unsafe or not response_stored:
            await self.turns.save(turn, step)
        started: list[tuple[ToolCallPart, Finisher, trace.Span]] = []
        for call in pending:
            key = f"turn:{context.turn_id}:{step}:{call.tool_call_id}"
            # The span covers the call from its start, so what it enqueues is traced inside it.
            span = self.tracer.start_span(f"herald.tool {call.tool_name}", attributes={"herald.step": step})
            with trace.use_span(span, end_on_exit=False):
                started.append((call, await self.toolbox.begin(call, context, key), span))
        await asyncio.gather(*(finish(call, finisher, span) for call, finisher, span in started))

    async def _fail(self, turn: Turn, error: str) -> None:
        await self.sender.enqueue(
            turn.target,
            [Text(self.config.error_message)],
            origin="agent_error",
            trigger_id=turn.trigger_id,
            idempotency_key=f"turn:{turn.id}:error",
        )
        await self.turns.finish(turn, FAILED, error)
