"""Every table module lives here, one per area, all on `herald.store.base.Base`.

`load_all()` imports them so `Base.metadata` is complete (for Alembic and for tests).
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
