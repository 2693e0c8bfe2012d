"""Herald's own HTTP endpoints, served beside it: Prometheus metrics and health probes."""

from herald.console.server import ConsoleServer, Probes

__all__ = ["ConsoleServer", "Probes"]
