"""Streaming agents: consume event streams, run compiled SQL, write results to topics.

Not built yet: this is the streaming-pipelines issue. The package exists so the layout (and the
type checker's package list) is the one the rest of the code will grow into.
"""
