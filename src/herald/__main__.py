"""`python -m herald` is the `herald` command (how `herald run --workers N` starts its workers)."""

from herald.cli import main

main()
