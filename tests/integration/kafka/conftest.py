"""The pipeline tests' ``workers`` fixture, for the Kafka-only tests that run workers."""

from tests.integration.agents.conftest import workers

__all__ = ["workers"]
