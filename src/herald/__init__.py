"""Herald: an LLM agent on the QQ Official Bot platform that delivers every message it means to send."""

import sys

__version__ = "0.1.0"

# httpx loads its command-line tool (`httpx._main`: rich's syntax highlighting and pygments, 4 MB
# resident and 50 ms of every start) whenever click, rich and pygments are installed, as Herald's
# own CLI needs them to be. Nothing in Herald runs that tool: a `None` entry makes the import fail
# (httpx then defines a `main` that says its CLI is unavailable), if httpx is not loaded yet.
# (typeshed allows modules only; `None` is the import system's documented way to refuse one.)
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
