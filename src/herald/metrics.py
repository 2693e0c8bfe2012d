"""Herald's Prometheus metrics: one registry per Herald (so several can live in one process), fed
by the dispatcher, the agent and the outbox, and read at scrape time for the gauges."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.inbound_events = Counter(
            "herald_inbound_events", "Inbound messages stored, by scene", ["scene"], registry=r
        )
        self.deliveries = Counter(
            "herald_deliveries",
            "Outbox items finished, by scene, route (passive, event, proactive; none if not delivered) "
            "and outcome (delivered, failed, dead, expired, unknown, undeliverable)",
            ["scene", "route", "outcome"],
            registry=r,
        )
        self.platform_errors = Counter(
            "herald_platform_errors", "Send attempts the platform refused, by its code", ["code"], registry=r
        )
        self.outbox_items = Gauge("herald_outbox_items", "Outbox items by state", ["state"], registry=r)
        self.turn_seconds = Histogram(
            "herald_turn_seconds",
            "Agent turns, from start to their reply enqueued",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.llm_tokens = Counter(
            "herald_llm_tokens", "Model tokens, by kind (input, output)", ["kind"], registry=r
        )
        self.job_lateness_seconds = Histogram(
            "herald_job_lateness_seconds",
            "Job firings, from their slot to the scheduler firing them",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300),
            registry=r,
        )
        self.gateway_reconnects = Counter(
            "herald_gateway_reconnects",
            "Gateway sessions opened after the first (identify or resume)",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
