"""Pieces every tablestream package shares: the exception root and the JSON codec."""

from core.errors import TablestreamError

__all__ = ["TablestreamError"]
