"""The `herald` command line. Each command (group) lives in its own module and registers on `app`."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

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
    # The imports below create most of the objects the process will ever hold (the libraries'
    # modules, classes and schemas), and the collector would scan them again and again while they
    # are made: a tenth of the start. None of them is garbage, so the collector is off until they
    # exist, and then they are frozen (never scanned again, which also shortens every later full
    # collection).
    with collector_paused():
        register_commands()
    app()


def register_commands() -> None:
    """Import the command modules: each registers its commands on `app` as it is imported."""
    from herald.cli import console, doctor, extensions, jobs, outbox, policy, run, sim  # noqa: F401


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The garbage collector off inside; what exists on the way out is frozen (never scanned)."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
