"""Herald's own HTTP endpoints, served beside it: the operator's pages, Prometheus metrics and
health probes."""

from herald.console.base import Operations
from herald.console.server import ConsoleServer, Probes

__all__ = ["ConsoleServer", "Operations", "Probes"]
