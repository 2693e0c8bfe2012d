"""Bytes of media waiting in the outbox, kept as files beside the database instead of in its rows.

An outbox row stays small: a media segment given as bytes (a plugin's generated picture, a
converted clip) is written to `<spool>/<item id>.<segment index>` and the row stores that path.
The file is written to a temporary name, flushed to disk and renamed before the row commits, so a
row never names a file that is not whole. A crash between the two leaves a file no row names; the
outbox removes such files when it starts (`sweep`), and removes an item's files when it ends
(kept while its outcome is unknown, since the operator may resend it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def media_spool_dir(configured: str, database_url: str) -> str:
    """`[delivery] media_spool`, or a `media` folder beside the SQLite database file."""
    if configured:
        return configured
    if database_url.startswith("sqlite") and ":///" in database_url:
        database = database_url.split(":///", 1)[1].split("?", 1)[0]
        if database and database != ":memory:":
            return str(Path(database).parent / "media")
    return "./data/media"


class MediaSpool:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def put(self, item_id: str, index: int, data: bytes) -> str:
        """Write one segment's bytes durably (blocking: run it in a thread); returns its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{item_id}.{index}"
        temporary = self.directory / f"{item_id}.{index}.tmp"
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
        _sync_directory(self.directory)
        return str(final.resolve())

    def owns(self, path: str) -> bool:
        return Path(path).resolve().parent == self.directory.resolve()

    def release(self, item_id: str) -> None:
        """Remove an item's files (none is fine)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.glob(f"{item_id}.*"):
            path.unlink(missing_ok=True)

    def item_ids(self) -> set[str]:
        if not self.directory.is_dir():
            return set()
        return {path.name.split(".", 1)[0] for path in self.directory.iterdir() if path.is_file()}

    def sweep(self, keep: Iterable[str]) -> int:
        """Remove the files of every item not in `keep`; returns how many items were swept."""
        kept = set(keep)
        gone = self.item_ids() - kept
        for item_id in gone:
            self.release(item_id)
        return len(gone)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
