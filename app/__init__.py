"""The worker: ``faust -A app worker`` (run from the repository root).

The faust App is built on first access to ``app.app`` from :class:`Settings` read from the
environment (``TABLESTREAM_*``) — this module is the edge where the environment is read.
Importing ``app.settings`` or ``app.broker`` does not build it.
"""

from __future__ import annotations

from typing import Any

from app.settings import Settings

__all__ = ["Settings", "app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from app.factory import create_app

        built = create_app(Settings.from_env())
        globals()["app"] = built
        return built
    raise AttributeError(f"module 'app' has no attribute {name!r}")
