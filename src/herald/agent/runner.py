"""One agent turn, step by step, durably.

A step is one model request, then (if the response calls tools) one round of tool calls. The
turn's messages are stored after each model response and after each round of tool results, so a
restarted Herald resumes a turn without asking the model again for a step it already answered,
and without re-running a tool call that already ran (its outbox item / job exists under the
call's key). The final text of the turn is sent as the reply; empty final text sends nothing.

Where the scope's policy allows and the platform can (C2C), the reply is streamed as the model
writes it (`delivery.stream`): from the first text of a response. A response that turns into
tool calls after some text ends its stream with that text (a message of its own) and the turn
goes on; the final response's stream is the reply, under the reply's key, so a resumed turn finds
the reply shown and ends with it instead of asking the model again. A model failing midway ends
the stream with what was shown and an honest ending, instead of the error message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Mapping

from opentelemetry import trace
from pydantic_ai.direct import model_request, model_request_stream
from pydantic_ai.exceptions import AgentRunError
from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.fallback import FallbackModel
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from herald.agent.approvals import APPROVED, ApprovalBook
from herald.agent.clean import clean_response, storable
from herald.agent.health import ModelHealth
from herald.agent.history import SUMMARY_BATCH, HistoryTurn, history_window, split_history, transcript_lines
from herald.agent.images import ImageFetcher, NotShown
from herald.agent.policy import Policies, Policy
from herald.agent.prompt import instructions
from herald.agent.settings import AgentSettings
from herald.agent.tools import Finisher, Sender, Toolbox, ToolContext, ToolResult, outcome_unknown, refused
from herald.agent.turns import DONE, FAILED, Turn, TurnStore
from herald.config import AgentConfig, LLMConfig, PolicyConfig
from herald.core.clock import Clock
from herald.core.history import Summary
from herald.core.segments import Text
from herald.core.tracing import OffTracer
from herald.delivery.stream import ReplyStream, ReplyStreams

log = logging.getLogger(__name__)

# The reasons a streamed reply names when its writing stopped midway.
MODEL_FAILED = "模型出错"
RESTARTED = "服务重启"

SUMMARY_CHARS = 2000
SUMMARY_INSTRUCTIONS = (
    "You keep the memory of a chat. Rewrite the summary so far (if any) together with the "
    "conversation below into one short summary, in the conversation's language, at most 150 "
    "words: who the people are, facts they told you, what they asked for and what was done or "
    "promised. Write only the summary."
)


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


def explained(error: BaseException) -> bool:
    """Whether the model, the network or the clock explains a failed request (its message says
    all); anything else is a bug in a client or in Herald, whose log needs the traceback."""
    return isinstance(error, AgentRunError | TimeoutError | OSError | ExceptionGroup)


def can_stream(model: Model) -> bool:
    """Whether `model` answers streamed requests (a model that does not is asked plainly)."""
    if isinstance(model, FunctionModel):
        return model.stream_function is not None
    if isinstance(model, WrapperModel):
        return can_stream(model.wrapped)
    if isinstance(model, FallbackModel):
        return all(can_stream(member) for member in model.models)
    return type(model).request_stream is not Model.request_stream


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
        policies: Policies | None = None,
        models: Mapping[str, Model] | None = None,
        images: ImageFetcher | None = None,
        streams: ReplyStreams | None = None,
        approvals: ApprovalBook | None = None,
    ) -> None:
        """`agent_settings`: the prompt and tools an operator may change while Herald runs (default:
        `config`'s, fixed). `policies`: what each scope changes of those (default: nothing);
        `models`: the `[llm.models.*]` a policy may pick by name. `images`: given when the model
        sees images (fetched once per turn, for every request of the turn)."""
        self.model = model
        self.images = images
        self.streams = streams
        self.approvals = approvals
        self._shown: dict[int, list[BinaryContent | NotShown]] = {}
        self._unstreamed: set[int] = set()  # models (by id) that refused a streamed request
        self._summary_failures: dict[str, int] = {}  # conversation → turns to wait before trying again
        self.models = dict(models or {})
        self.tracer = tracer or OffTracer()
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
        self.policies = policies or Policies(PolicyConfig(), config, LLMConfig(), self.agent_settings)

    def parameters_in(self, context: ToolContext) -> ModelRequestParameters:
        """Asked per request (external tools come and go with their servers, operators disable
        some): the tools of the turn's policy, without those its author may not call."""
        return ModelRequestParameters(
            function_tools=self.toolbox.offered_in(context) if self.offer_tools else [],
            allow_text_output=True,
        )

    async def run(self, turn: Turn) -> None:
        try:
            await self._run(turn)
        finally:
            self._shown.pop(turn.id, None)

    async def _run(self, turn: Turn) -> None:
        if turn.status != "pending":
            return
        if not turn.messages:
            turn.messages = [ModelRequest(parts=[UserPromptPart(turn.content, timestamp=turn.created_at)])]
        policy = self.policies.resolve(turn.target, turn.author_id)
        history, summary = await self._history(turn, policy)
        context = ToolContext(
            turn_id=turn.id,
            target=turn.target,
            author_id=turn.author_id,
            trigger_id=turn.trigger_id,
            timezone=self.config.timezone,
            tools=policy.tools,
            attachments=turn.attachments,
            approve_tools=policy.approve_tools,
            approver=policy.approver,
            approval_timeout_s=policy.approval_timeout_s,
        )
        steps = sum(isinstance(message, ModelResponse) for message in turn.messages)
        reply_key = f"turn:{turn.id}:final"
        final_stream: ReplyStream | None = None
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
            stream = None
            if self.streams is not None and policy.stream and self.streams.can_stream(turn.target):
                shown = await self.streams.taken(reply_key)
                if shown is not None:
                    # An earlier run showed (or sent) this turn's reply: it is the final response.
                    turn.messages.append(ModelResponse(parts=[TextPart(shown)]))
                    break
                stream = self.streams.open(
                    turn.target, key=reply_key, origin="agent_reply", trigger_id=turn.trigger_id
                )
            try:
                response = await self._request(history, turn, context, policy, summary, stream)
            except ModelFailure as failure:
                error = failure.__cause__ or failure
                cause = self._cause(error)
                state = self.health.failed(cause)
                log.error(
                    "turn %s in %s: the model is %s",
                    turn.id,
                    turn.conversation,
                    state,
                    exc_info=None if explained(error) else error,
                )
                ended = stream is not None and await stream.fail(MODEL_FAILED)
                await self._fail(turn, cause, notice=not ended)
                return
            self.health.succeeded()
            steps += 1
            response = _unique_call_ids(response, steps)
            turn.messages.append(response)
            if stream is not None and response.tool_calls:
                await stream.cut()
            elif stream is not None:
                final_stream = stream
            if not response.tool_calls:
                break  # the final response is stored with the turn's end, below
            # The response is stored with the round's first write (its "outcome unknown" marks or,
            # without them, the response alone) before any call begins.
            await self._run_tools(turn, context, steps, list(response.tool_calls), {}, response_stored=False)
        final = turn.messages[-1]
        assert isinstance(final, ModelResponse)
        text = (final.text or "").strip()
        if final_stream is not None:
            # Its final frame (or, not streamed after all, its plain send) takes the reply's key
            # first; the enqueue below then only ends the turn.
            await final_stream.finish(text)
        # The final response, the reply's outbox row and the turn's end commit together: one
        # transaction instead of three, and still all durable before anything is sent.
        if text:
            await self.sender.enqueue(
                turn.target,
                [Text(text)],
                origin="agent_reply",
                trigger_id=turn.trigger_id,
                idempotency_key=reply_key,
                also=self.turns.ending(turn, steps),
            )
            self.turns.ended(turn, DONE)
        else:
            await self.turns.end(turn, steps)

    def _cause(self, error: BaseException) -> str:
        if isinstance(error, TimeoutError) and not str(error):
            return f"TimeoutError: no answer within {self.timeout_s:g} s ([llm] timeout_s)"
        return f"{type(error).__name__}: {error}"

    async def _history(self, turn: Turn, policy: Policy) -> tuple[list[ModelMessage], Summary | None]:
        """The turns the model sees in full, and the summary of those that left the window.

        Turns past the budget are folded into the summary once `SUMMARY_BATCH` of them have
        gathered (one model request per batch, not per turn); until then they are left out. A
        failed summary request leaves them for the next turn to try again.
        """
        window = await self.turns.history_turns(
            turn.conversation, turn.id, history_window(policy.history_turns)
        )
        kept, dropped = split_history(window, policy.history_turns, policy.history_tokens)
        summary = await self.turns.summary(turn.conversation)
        # After a failure, the next try waits for another batch: a model that cannot summarize
        # must not cost an extra request on every turn.
        waiting = self._summary_failures.get(turn.conversation, 0)
        if waiting > 1:
            self._summary_failures[turn.conversation] = waiting - 1
        elif waiting == 1:
            del self._summary_failures[turn.conversation]
        elif len(dropped) >= SUMMARY_BATCH and policy.history_turns > 0:
            try:
                summary = await self._summarize(turn.conversation, summary, dropped)
            except Exception as exc:
                self._summary_failures[turn.conversation] = SUMMARY_BATCH
                log.warning("turn %s: summarizing %d earlier turns failed: %s", turn.id, len(dropped), exc)
        return kept, summary

    async def _summarize(
        self, conversation: str, summary: Summary | None, turns: list[HistoryTurn]
    ) -> Summary:
        transcript = "\n".join(line for turn in turns for line in transcript_lines(turn.messages))
        earlier = f"Summary so far:\n{summary.text}\n\n" if summary is not None else ""
        request = ModelRequest(
            parts=[UserPromptPart(f"{earlier}Conversation to add:\n{transcript}")],
            instructions=SUMMARY_INSTRUCTIONS,
        )
        async with asyncio.timeout(self.timeout_s):
            response = await model_request(self.model, [request], model_settings=self.settings)
        text = (response.text or "").strip()
        if not text:
            raise ModelFailure("the model wrote an empty summary")
        covered = (summary.turns if summary is not None else 0) + len(turns)
        updated = Summary(text[:SUMMARY_CHARS], covered)
        await self.turns.summarized(conversation, updated, [turn.id for turn in turns])
        log.info("%s: %d earlier turns summarized (%d in all)", conversation, len(turns), covered)
        return updated

    async def _request(
        self,
        history: list[ModelMessage],
        turn: Turn,
        context: ToolContext,
        policy: Policy,
        summary: Summary | None = None,
        stream: ReplyStream | None = None,
    ) -> ModelResponse:
        messages = [*history, *turn.messages]
        if self.images is not None and turn.images:
            messages[len(history)] = await self._with_images(turn, messages[len(history)])
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        prompt = instructions(policy.system_prompt, context.target, self.clock.now(), self.config.timezone)
        if summary is not None:
            prompt += f"\n\nEarlier in this conversation (your summary): {summary.text}"
        model = self.model
        if policy.model is not None:
            model = self.models.get(policy.model, self.model)
            if model is self.model:
                log.warning(
                    "turn %s: policy model %r is not available; the primary answers", turn.id, policy.model
                )
        settings = self.settings
        if policy.temperature is not None and policy.sources["temperature"] != "[llm] temperature":
            settings = ModelSettings(**(settings or {}), temperature=policy.temperature)
        messages[-1] = dataclasses.replace(last, instructions=prompt)
        try:
            async with asyncio.timeout(self.timeout_s):
                if stream is None or not can_stream(model) or id(model) in self._unstreamed:
                    response = await self._plain(model, messages, settings, context)
                else:
                    try:
                        response = await self._streamed(model, messages, settings, context, stream)
                    except Exception as exc:
                        if stream.started or isinstance(exc, TimeoutError):
                            raise
                        # Refused before any text: some OpenAI-compatible servers take no
                        # streamed requests. Asked plainly; if that works, never streamed again.
                        response = await self._plain(model, messages, settings, context)
                        self._unstreamed.add(id(model))
                        log.warning(
                            "the model refused a streamed request (%s); it is asked plainly from "
                            "now on and replies go out finished",
                            self._cause(exc),
                            exc_info=None if explained(exc) else exc,
                        )
        except Exception as exc:
            raise ModelFailure() from exc
        return clean_response(response)

    async def _plain(
        self, model: Model, messages: list[ModelMessage], settings: ModelSettings | None, context: ToolContext
    ) -> ModelResponse:
        return await model_request(
            model,
            messages,
            model_settings=settings,
            model_request_parameters=self.parameters_in(context),
            instrument=self.instrumentation,
        )

    async def _streamed(
        self,
        model: Model,
        messages: list[ModelMessage],
        settings: ModelSettings | None,
        context: ToolContext,
        stream: ReplyStream,
    ) -> ModelResponse:
        """The model's streamed response, its text shown through `stream` while it grows, until a
        tool call starts (text after that waits for the response's end)."""
        calling = False
        async with model_request_stream(
            model,
            messages,
            model_settings=settings,
            model_request_parameters=self.parameters_in(context),
            instrument=self.instrumentation,
        ) as streamed:
            async for event in streamed:
                if isinstance(event, PartStartEvent):
                    if isinstance(event.part, ToolCallPart):
                        calling = True
                    elif isinstance(event.part, TextPart) and not calling:
                        stream.update(storable(streamed.get().text or ""))
                elif (
                    isinstance(event, PartDeltaEvent)
                    and isinstance(event.delta, TextPartDelta)
                    and not calling
                ):
                    stream.update(storable(streamed.get().text or ""))
            return streamed.get()

    async def _with_images(self, turn: Turn, first: ModelMessage) -> ModelMessage:
        """The turn's message with its images (fetched at its first request); only the request
        carries them, the stored turn keeps its text."""
        assert self.images is not None and isinstance(first, ModelRequest)
        shown = self._shown.get(turn.id)
        if shown is None:
            fetched = await asyncio.gather(*(self.images.fetch(image) for image in turn.images))
            shown = self._shown[turn.id] = list(fetched)
        parts: list[ModelRequestPart] = []
        for part in first.parts:
            if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                extra = [item if isinstance(item, BinaryContent) else str(item) for item in shown]
                part = dataclasses.replace(part, content=[part.content, *extra])
            parts.append(part)
        return dataclasses.replace(first, parts=parts)

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

        async def approved_then(call: ToolCallPart, key: str) -> ToolResult:
            """The call waits for its approval, then runs (once) or is refused."""
            assert self.approvals is not None
            try:
                arguments = call.args_as_dict()
            except ValueError:
                arguments = {"raw": str(call.args)}
            approval = await self.approvals.request(
                key=key,
                turn_id=turn.id,
                target=context.target,
                tool=call.tool_name,
                arguments=arguments,
                requester=context.author_id,
                approver=context.approver,
                timeout_s=context.approval_timeout_s,
                trigger_id=context.trigger_id,
            )
            decided = await self.approvals.wait(approval)
            if decided.status != APPROVED:
                return refused(call, decided.outcome())
            if not self.toolbox.is_rerun_safe(call):
                async with lock:
                    done[call.tool_call_id] = outcome_unknown(call)
                    store_round()
                    await self.turns.save(turn, step)
            finisher = await self.toolbox.begin(call, context, key)
            return await finisher()

        pending = [call for call in calls if call.tool_call_id not in done]
        gated = {
            call.tool_call_id
            for call in pending
            if self.approvals is not None and call.tool_name in context.approve_tools
        }
        unsafe = [
            call
            for call in pending
            if call.tool_call_id not in gated and not self.toolbox.is_rerun_safe(call)
        ]
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
                if call.tool_call_id in gated:
                    started.append((call, functools.partial(approved_then, call, key), span))
                else:
                    started.append((call, await self.toolbox.begin(call, context, key), span))
        await asyncio.gather(*(finish(call, finisher, span) for call, finisher, span in started))

    async def _fail(self, turn: Turn, error: str, *, notice: bool = True) -> None:
        """End the turn failed; the user gets the error message unless a streamed reply's ending
        already told them (`notice` False)."""
        if notice:
            await self.sender.enqueue(
                turn.target,
                [Text(self.config.error_message)],
                origin="agent_error",
                trigger_id=turn.trigger_id,
                idempotency_key=f"turn:{turn.id}:error",
            )
        await self.turns.finish(turn, FAILED, error)
