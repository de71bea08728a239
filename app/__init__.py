"""The worker: ``faust -A app worker`` (run from the repository root).

The faust App is built on first access to ``app.app`` from :class:`Settings` read from the
environment (``TABLESTREAM_*``) — this module is the edge where the environment is read. A bad
setting ends every ``faust -A app ...`` command with one line on stderr and exit status 2; an
ignored variable (a ``TABLESTREAM_*`` typo, a faust variable) is one warning line each.
Importing ``app.settings`` or ``app.broker`` does not build it.
"""

from __future__ import annotations

import sys
from typing import Any

from app.settings import Settings, env_warnings
from core.errors import ConfigError

__all__ = ["Settings", "app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from app.factory import create_app, exit_config_error

        for line in env_warnings():
            print(f"warning: {line}", file=sys.stderr, flush=True)
        try:
            built = create_app(Settings.from_env())
        except ConfigError as exc:
            exit_config_error(exc)
        globals()["app"] = built
        return built
    raise AttributeError(f"module 'app' has no attribute {name!r}")
