"""Fixtures of the external-table integration tests."""

from __future__ import annotations

from tests.integration.agents.conftest import workers

__all__ = ["workers"]
