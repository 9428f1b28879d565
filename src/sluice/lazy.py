"""Names a package loads on first use: a module `__getattr__` (PEP 562), so that importing a package does not
load the heavy dependencies of every name it exports (SQLAlchemy, matplotlib, aiohttp...)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def on_first_use(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """The `__getattr__` of `package`: reading `name` imports `names[name]` (a module) and keeps what it found."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    return __getattr__


__all__ = ["on_first_use"]
