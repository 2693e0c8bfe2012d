"""The `herald` command line. Each command (group) lives in its own module and registers on `app`."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="herald",
    help="Herald: an LLM agent on the QQ Official Bot platform that delivers every message it means to send.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    # Importing the command modules registers their commands on `app`.
    from herald.cli import sim  # noqa: F401

    for optional in ("doctor", "outbox", "jobs", "run"):
        try:
            __import__(f"herald.cli.{optional}")
        except ModuleNotFoundError as exc:
            if exc.name != f"herald.cli.{optional}":
                raise
    app()
