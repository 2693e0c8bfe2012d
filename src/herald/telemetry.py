"""Optional OpenTelemetry traces of a turn: `herald.turn` → the model requests (pydantic-ai's own
spans) → `herald.tool <name>` → `herald.delivery` for each item the turn sent.

Off by default: every component then holds `core.tracing.OffTracer`, which costs a function call
per span. With `[telemetry] otlp_endpoint`, Herald makes its own tracer provider (not the
process-global one, so an embedding application's tracing is left alone) and exports in batches
from a background thread, off the message path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from pydantic_ai.models.instrumented import InstrumentationSettings

from herald.config import ConfigError, TelemetryConfig
from herald.core.tracing import OffTracer

log = logging.getLogger(__name__)

TRACER_NAME = "herald"


@dataclass
class Tracing:
    tracer: trace.Tracer = field(default_factory=OffTracer)
    # For pydantic-ai's model request spans; None when tracing is off.
    instrumentation: InstrumentationSettings | None = None
    _provider: Any = None

    @property
    def enabled(self) -> bool:
        return self._provider is not None

    def shutdown(self) -> None:
        """Export what is buffered, then stop the exporter (bounded: a dead collector does not
        hold up Herald's stop)."""
        if self._provider is not None:
            self._provider.force_flush(timeout_millis=5000)
            self._provider.shutdown()
            self._provider = None


def start_tracing(config: TelemetryConfig) -> Tracing:
    if config.otlp_endpoint is None:
        return Tracing()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"[telemetry] otlp_endpoint is set but the OpenTelemetry SDK is not installed ({exc.name}): "
            "pip install 'herald[otel]', or unset [telemetry] otlp_endpoint"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=config.otlp_endpoint)))
    instrumentation = InstrumentationSettings(
        tracer_provider=provider,
        include_content=config.include_content,
        include_binary_content=False,
        include_model_request_parameters=False,
    )
    log.info("telemetry: exporting traces to %s", config.otlp_endpoint)
    return Tracing(provider.get_tracer(TRACER_NAME), instrumentation, provider)
