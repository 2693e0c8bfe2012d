"""Every table module lives here, one per area, all on `herald.store.base.Base`; a platform's own
tables live in its package's `tables` module (`herald/qq/tables.py`), also on `Base`.

`load_all()` imports them so `Base.metadata` is complete (for Alembic and for tests).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import herald


def load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    # Found by file, not by import: the store imports no package above it, and looking must not
    # load a package that has no tables (the console's web stack).
    for root in herald.__path__:
        for path in sorted(Path(root).glob("*/tables.py")):
            importlib.import_module(f"herald.{path.parent.name}.tables")
