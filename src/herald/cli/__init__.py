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


@app.callback()
def _root() -> None:
    # A group callback keeps every command a subcommand (`herald sim ...`), even in a test that
    # imports a single command module: Typer would otherwise run a lone command as the program.
    pass


def main() -> None:
    # Importing the command modules registers their commands on `app`.
    from herald.cli import console, doctor, extensions, jobs, outbox, policy, run, sim  # noqa: F401

    app()
