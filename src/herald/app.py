"""Herald, assembled: config → store (migrated) → platform adapter → outbox → dispatcher
(command or agent turn) → agent → scheduler. `start()` resumes whatever a crash left unfinished
(outbox items, turns, due jobs) before taking new events; `stop()` stops in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings
from sqlalchemy import text

from herald.agent import AgentRunner, AgentSettings, ModelHealth, Toolbox, TurnStore
from herald.agent.approvals import ApprovalBook
from herald.agent.history import history_window
from herald.agent.images import ImageFetcher
from herald.agent.policy import Policies
from herald.agent.runner import RESTARTED
from herald.agent.settings import KEYS as AGENT_SETTING_KEYS
from herald.changes import ChangeFeed
from herald.commands import Commands, StatusInfo
from herald.config import ConfigError, HeraldConfig
from herald.core.clock import Clock, SystemClock
from herald.core.platform import Acknowledges, Platform, SharesRates
from herald.core.target import Target
from herald.delivery import DeliveryResult, Outbox
from herald.delivery.inspect import counts_by_state
from herald.delivery.platforms import Platforms
from herald.delivery.spool import MediaSpool, media_spool_dir
from herald.delivery.stream import ReplyStreams
from herald.dispatch import ConversationClaims, Dispatcher
from herald.extensions import ExternalTools, Plugins, ToolSource, installed
from herald.gate import Gate, TokenLedger
from herald.llm import ModelHandle, open_model
from herald.llm.provider import MissingExtra, Named, close_models, remote_model
from herald.metrics import Metrics
from herald.plugin import Plugin
from herald.scheduler import JobStore, Leadership, Scheduler
from herald.serving import serve
from herald.store import Database
from herald.store.leases import Leases
from herald.store.presence import Presence
from herald.store.settings import SettingsStore
from herald.telemetry import Tracing, start_tracing

if TYPE_CHECKING:
    from herald.console import ConsoleServer, Probes
    from herald.extensions.mcp import McpServer

log = logging.getLogger(__name__)


@dataclass
class ModelChoice:
    """A model given by the caller (tests, the benchmark) instead of the one `[llm]` describes."""

    model: Model
    settings: ModelSettings | None = None
    description: str = "scripted"
    # The `[llm.models.NAME]` a policy may pick, by name (instead of the configured ones).
    named: Mapping[str, Model] = field(default_factory=dict)
    vision: bool = False  # the model takes images


class Herald:
    def __init__(
        self,
        config: HeraldConfig,
        *,
        model: ModelChoice | None = None,
        clock: Clock | None = None,
        platform: Platform | None = None,
        rate_limits: bool = True,
        plugins: list[Plugin] | None = None,
        platforms: Mapping[str, Platform] | None = None,
    ) -> None:
        """`plugins`: loaded beside the installed ones (tests, embedding Herald in a program).
        `platform` or `platforms` (by name): instead of the ones the config describes."""
        self.config = config
        self._extra_plugins = list(plugins or [])
        self.clock: Clock = clock or SystemClock()
        self._model_choice = model
        self._platform_override = dict(platforms or {})
        if platform is not None:
            self._platform_override[platform.name] = platform
        self._rate_limits = rate_limits
        self._model_handle: ModelHandle | None = None
        self._picked_models: dict[str, Model] = {}  # `[llm.models.*]` a policy may pick
        # What the model's owner knows without a request (the embedded server crashed) joins
        # the failures the agent records.
        self.model_health = ModelHealth(self.clock, problem=self._model_problem)
        self.db: Database | None = None
        # Every platform instance, behind one `Platform` that routes by `Target.platform`.
        self.platforms: Platforms | None = None
        self.presence: Presence | None = None
        self._serving = contextlib.AsyncExitStack()
        self.platform: Platform | None = None
        self.outbox: Outbox | None = None
        self.streams: ReplyStreams | None = None
        self.turns: TurnStore | None = None
        self.jobs: JobStore | None = None
        self.dispatcher: Dispatcher | None = None
        self.gate: Gate | None = None
        self.approvals: ApprovalBook | None = None
        self.scheduler: Scheduler | None = None
        self.mcp_servers: list[McpServer] = []
        self.plugins = Plugins()
        self.metrics = Metrics()
        self.changes = ChangeFeed()
        self.tracing = Tracing()
        self.console: ConsoleServer | None = None
        self.agent_settings: AgentSettings | None = None
        self.model_description = ""
        self.started = False

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = self.config
        self.tracing = start_tracing(config.telemetry)
        self.db = Database(config.storage.url)
        await self.db.migrate()
        await self.db.warm()

        if self._model_choice is not None:
            model, settings, description = (
                self._model_choice.model,
                self._model_choice.settings,
                self._model_choice.description,
            )
        else:
            self._model_handle = await open_model(config.llm)
            model, settings = self._model_handle.model, self._model_handle.settings
            description = self._model_handle.description
            # Herald still starts (commands and delivery work without a model); the cause and the
            # fix are logged here and shown by /status and the demo page.
            problem = await self._model_handle.check()
            if problem is not None:
                log.error("the model failed its smoke test, so turns will fail: %s", problem)
        self.model_description = description
        log.info("model: %s", description)

        self.platforms = Platforms(
            self._platform_override
            or configured_platforms(self.config, self.db, self.clock, rate_limits=self._rate_limits)
        )
        self.platform = self.platforms
        # Several instances may share a PostgreSQL database: conversations and the scheduler's lead
        # are leased, under this instance's name, and the bot-wide send rates are shared among the
        # live instances (counted before the outbox sends anything). SQLite is one process.
        leases = Leases(self.db, config.delivery.instance) if self.db.is_postgresql else None
        if leases is not None:
            self.presence = Presence(leases, self._share_rates)
            await self.presence.start()
        self.outbox = Outbox(
            self.db,
            self.platform,
            self.clock,
            config=config.delivery,
            tracer=self.tracing.tracer,
            spool=MediaSpool(media_spool_dir(config.delivery.media_spool, config.storage.url)),
        )
        await self.outbox.start()
        # Streamed replies a previous run left open end now, before any turn resumes.
        self.streams = ReplyStreams(self.db, self.outbox, self.platform, self.clock, config.delivery)
        await self.streams.recover(RESTARTED)

        # Each conversation keeps in memory the window its longest configured history reads (a
        # longer one set from the console reads the database on every turn).
        longest = max(
            [config.agent.history_turns]
            + [layer.history_turns for _, layer in config.policy.layers() if layer.history_turns is not None]
        )
        self.turns = TurnStore(self.db, self.clock, history_keep=history_window(longest))
        self.jobs = JobStore(
            self.db,
            self.clock,
            max_per_conversation=config.scheduler.max_jobs_per_conversation,
            min_interval_s=config.scheduler.min_interval_s,
            catch_up_s=config.scheduler.catch_up_s,
        )
        self.plugins = Plugins(
            [
                *(entry.plugin for entry in installed(config.plugins) if entry.plugin is not None),
                *self._extra_plugins,
            ],
            timeout_s=config.plugins.timeout_s,
            model=model,
        )
        # Counted only where something can read them: the console serves /metrics.
        counted = self.metrics if config.console.enabled else None
        self.outbox.observe(_Observer(counted, self.plugins, self.changes))
        enabled = {name: server for name, server in config.mcp.servers.items() if server.enabled}
        if enabled:
            from herald.extensions.mcp import McpServer

            self.mcp_servers = [McpServer(name, server, self.clock) for name, server in enabled.items()]
        for server in self.mcp_servers:
            # Connects in the background: tools appear when it is up; a call meanwhile waits for it.
            server.start()
        sources: list[ToolSource] = [*self.mcp_servers, self.plugins]
        # What operators change in the console; the agent reads it every turn.
        stored = SettingsStore(self.db, self.clock, AGENT_SETTING_KEYS)
        await stored.load()
        self.agent_settings = agent_settings = AgentSettings(config.agent, stored)
        # Access and limits: outside the model, checked before a turn runs and at each tool call.
        self.gate = gate = Gate(
            config.access,
            config.limits,
            self.clock,
            TokenLedger(self.db, self.clock, config.agent.timezone),
        )
        forecast = self.platform.forecast
        learned = self.platform.learned
        toolbox = Toolbox(
            self.outbox,
            self.jobs,
            self.clock,
            ExternalTools(sources),
            agent_settings,
            guard=gate,
            forecast=forecast,
            media_dirs=config.agent.media_dirs,
        )
        policies = Policies(config.policy, config.agent, config.llm, agent_settings)
        # Tool calls waiting for a person (approve_tools): decided by clicks and /approve.
        self.approvals = approvals = ApprovalBook(self.db, self.clock, self.outbox, gate.is_admin)
        self._picked_models = self._policy_models()
        runner = AgentRunner(
            model=model,
            turns=self.turns,
            toolbox=toolbox,
            sender=self.outbox,
            clock=self.clock,
            config=config.agent,
            settings=settings,
            offer_tools=config.llm.offers_tools if self._model_choice is None else True,
            timeout_s=self._model_handle.timeout_s
            if self._model_handle is not None
            else config.llm.timeout_s,
            health=self.model_health,
            tracer=self.tracing.tracer,
            instrumentation=self.tracing.instrumentation,
            agent_settings=agent_settings,
            policies=policies,
            models=self._picked_models,
            images=self._image_fetcher(),
            streams=self.streams,
            approvals=approvals,
        )
        commands = Commands(
            jobs=self.jobs,
            turns=self.turns,
            clock=self.clock,
            config=config,
            status=StatusInfo(
                model=description,
                started_monotonic=time.monotonic(),
                model_state=self.model_health.describe,
                learned=lambda: [item.describe() for item in learned()],
            ),
            plugins=self.plugins,
            forecast=forecast,
        )
        self.dispatcher = Dispatcher(
            turns=self.turns,
            runner=runner,
            commands=commands,
            sender=self.outbox,
            config=config.agent,
            clock=self.clock,
            on_message=self.plugins.message_received,
            on_event=self.plugins.event_received,
            metrics=counted,
            changes=self.changes,
            tracer=self.tracing.tracer,
            policies=policies,
            gate=gate,
            jobs=self.jobs,
            forecast=forecast,
            stopped_notice=config.scheduler.stopped_notice,
            approvals=approvals,
            acknowledge=self.platform.acknowledge if isinstance(self.platform, Acknowledges) else None,
            claims=ConversationClaims(leases, self.turns, ttl_s=config.agent.conversation_lease_s)
            if leases is not None
            else None,
        )
        await self.dispatcher.resume()
        self.scheduler = Scheduler(
            self.jobs,
            self.clock,
            self.dispatcher.fire_job,
            leadership=Leadership(leases, ttl_s=config.scheduler.leader_lease_s)
            if leases is not None
            else None,
            lateness=counted.job_lateness_seconds.observe if counted is not None else None,
        )
        if config.scheduler.enabled:
            await self.scheduler.start()
        await self.platform.start(self.dispatcher.sink)
        # What the platforms' inbound transports need served (a webhook, a reverse WebSocket).
        await self._serving.enter_async_context(serve(self.platforms.endpoints()))
        if config.console.enabled:
            # Imported here: the console's web stack is most of a process's memory that nothing
            # else needs.
            from herald.console import ConsoleServer, Operations

            assert self.jobs is not None
            operations = Operations(
                db=self.db,
                jobs=self.jobs,
                clock=self.clock,
                retry_for_s=config.delivery.retry_for_s,
                timezone=config.agent.timezone,
                components=self._components,
                changes=self.changes,
                reach=self.platform.reach,
                config=config,
                agent_settings=agent_settings,
                tools=lambda: [tool.name for tool in toolbox.definitions],
            )
            self.console = ConsoleServer(config.console, self.metrics, self._probes(), operations)
            await self.console.start()
        self.started = True
        log.info("Herald started (storage %r)", self.db)

    def _image_fetcher(self) -> ImageFetcher | None:
        """Given when the model sees images ([llm] vision)."""
        vision = self._model_choice.vision if self._model_choice is not None else self.config.llm.vision
        if not vision:
            return None
        agent = self.config.agent
        return ImageFetcher(agent.image_hosts, agent.image_max_bytes, agent.image_timeout_s)

    def _policy_models(self) -> dict[str, Model]:
        """The remote `[llm.models.*]`, which a policy (the file's, or the console's later) may pick."""
        if self._model_choice is not None:
            return dict(self._model_choice.named)
        llm = self.config.llm
        picked = {layer.model for _, layer in self.config.policy.layers() if layer.model is not None}
        models: dict[str, Model] = {}
        for name, model in llm.models.items():
            if model.provider == "local":
                continue
            try:
                models[name] = Named(remote_model(model), name, model.timeout_s)
            except MissingExtra:
                if name in picked:
                    raise
                log.warning("[llm.models.%s] cannot be picked by a policy: its extra is not installed", name)
        return models

    def _probes(self) -> Probes:
        from herald.console import Probes

        db, platform = self.db, self.platform
        assert db is not None and platform is not None

        async def database() -> None:
            async with db.session() as session:
                await session.execute(text("SELECT 1"))

        return Probes(transport=platform.health, database=database, outbox_counts=lambda: counts_by_state(db))

    def _components(self) -> list[tuple[str, bool, str]]:
        """(component, ok, detail) for the console's health page."""
        rows: list[tuple[str, bool, str]] = []
        members = self.platforms.members if self.platforms is not None else {}
        for name, platform in members.items():
            transport = platform.health()
            parts = [transport.detail, f"reconnects {transport.reconnects}"]
            if transport.last_event_at is not None:
                ago = (self.clock.now() - transport.last_event_at).total_seconds()
                parts.append(f"last event {_duration(ago)} ago")
            else:
                parts.append("no event yet")
            rows.append((f"platform {name} ({transport.transport})", transport.ready, "; ".join(parts)))
            if not transport.renews_credential:
                continue
            token = "access token" if len(members) == 1 else f"{name} access token"
            expires = transport.credential_expires_in_s
            if expires is not None:
                # Renewed ahead of expiry; one that runs out means renewal is failing.
                rows.append((token, expires > 0, f"expires in {_duration(expires)}"))
            else:
                rows.append((token, True, "none fetched yet (fetched on the first send)"))
        state = self.model_health.describe()
        rows.append(("model", state == "ok", f"{self.model_description}: {state}"))
        for server in self.mcp_servers:
            tools = ", ".join(tool.name for tool in server.tools())
            rows.append((server.source, server.connected.is_set(), tools or server.error or ""))
        for plugin in self.plugins.plugins:
            adds = f"{len(plugin.tools)} tools, {len(plugin.commands)} commands"
            rows.append((f"plugin '{plugin.name}'", True, adds))
        return rows

    def _model_problem(self) -> str | None:
        return self._model_handle.problem if self._model_handle is not None else None

    def _share_rates(self, processes: int) -> None:
        assert self.platforms is not None
        for member in self.platforms.members.values():
            if isinstance(member, SharesRates):
                member.share_rates(processes)

    async def wait_ready(self) -> None:
        """Until the platform's inbound transport is connected."""
        if self.platform is None:
            raise RuntimeError("Herald.start() must run before wait_ready()")
        await self.platform.wait_ready()

    async def stop(self) -> None:
        """Stop taking events, let in-flight turns be resumed next start, then close everything."""
        if self.console is not None:
            await _quietly(self.console.stop(), "console")
            self.console = None
        await _quietly(self._serving.aclose(), "platform endpoints")
        if self.platform is not None:
            await _quietly(self.platform.stop(), "platform")
        if self.scheduler is not None:
            await _quietly(self.scheduler.stop(), "scheduler")
        if self.dispatcher is not None:
            await _quietly(self.dispatcher.stop(), "dispatcher")
        if self.turns is not None:
            await _quietly(self.turns.close(), "turn store")
        if self.outbox is not None:
            await _quietly(self.outbox.stop(), "outbox")
        if self.presence is not None:
            await _quietly(self.presence.stop(), "presence")
            self.presence = None
        await _quietly(self.plugins.stop(), "plugin hooks")
        await asyncio.gather(*(_quietly(server.stop(), server.source) for server in self.mcp_servers))
        if self._model_handle is not None:
            await _quietly(self._model_handle.close(), "model")
            self._model_handle = None
        if self._picked_models and self._model_choice is None:
            await _quietly(close_models(self._picked_models.values()), "policy models")
        self._picked_models = {}
        if self.db is not None:
            await _quietly(self.db.dispose(), "store")
        await _quietly(asyncio.to_thread(self.tracing.shutdown), "telemetry")
        if self.started:
            log.info("Herald stopped")
        self.started = False

    async def __aenter__(self) -> Herald:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def configured_platforms(
    config: HeraldConfig, db: Database, clock: Clock, *, rate_limits: bool = True
) -> dict[str, Platform]:
    """The platforms the config names, by name, built, not started (a command reads through
    them unstarted)."""
    if config.qq is None and config.onebot is None:
        raise ConfigError(
            "no platform is configured: set [qq] app_id and secret (or HERALD_QQ__APP_ID/SECRET) "
            "for a QQ Official bot, and/or [onebot] for a OneBot v11 account (docs/configuration.md)"
        )
    platforms: dict[str, Platform] = {}
    if config.qq is not None:
        from herald.qq.adapter import QQPlatform

        qq = QQPlatform(config.qq, db, clock, rate_limits=rate_limits)
        platforms[qq.name] = qq
    if config.onebot is not None:
        from herald.onebot import OneBotPlatform

        if config.onebot.name in platforms:
            raise ConfigError(
                f"[onebot] name {config.onebot.name!r} is taken by another platform: choose another"
            )
        onebot = OneBotPlatform(config.onebot, db, clock)
        platforms[onebot.name] = onebot
    return platforms


class _Observer:
    """What the outbox reports: counted, handed to plugins' delivery hooks, and told to the
    console's live pages."""

    def __init__(self, metrics: Metrics | None, plugins: Plugins, changes: ChangeFeed) -> None:
        self.metrics = metrics
        self.plugins = plugins
        self.changes = changes

    def finished(self, result: DeliveryResult, conversation: str, origin: str, state: str) -> None:
        scene = Target.parse(conversation).scene.value
        route = result.sent.route if result.sent is not None else "none"
        if self.metrics is not None:
            self.metrics.deliveries.labels(scene, route, state).inc()
        self.plugins.delivery_observer(result, conversation, origin)
        self.changes.changed(conversation)

    def refused(self, code: int | None, conversation: str) -> None:
        if self.metrics is not None:
            self.metrics.platform_errors.labels(str(code)).inc()
        self.changes.changed(conversation)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


async def _quietly(awaitable: object, what: str) -> None:
    from collections.abc import Awaitable

    assert isinstance(awaitable, Awaitable)
    try:
        await awaitable
    except Exception:
        log.exception("stopping %s failed", what)
