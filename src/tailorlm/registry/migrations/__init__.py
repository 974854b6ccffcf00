"""Numbered schema migrations, applied in order and never edited once released (append a new one)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def all_migrations() -> list[tuple[int, str, ModuleType]]:
    """Every `mNNN_name` module in this package, sorted by number."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("m") and info.name[1:4].isdigit():
            module = importlib.import_module(f"{__name__}.{info.name}")
            found.append((int(info.name[1:4]), info.name, module))
    return sorted(found, key=lambda item: item[0])
