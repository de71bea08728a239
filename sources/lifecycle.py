"""The lifecycle every external table shares: opened by blocking calls run in a thread (a
driver's connect, a catalog's metadata and a first scan), ready once that returned."""

from __future__ import annotations

import asyncio

from mode import Service


class OpenedInThread(Service):
    """A table whose :meth:`open_sync` / :meth:`close_sync` block: run off the event loop at
    start and stop; :attr:`is_ready` once open."""

    _ready = False
    _ready_event: asyncio.Event | None = None

    def open_sync(self) -> None:
        raise NotImplementedError

    def close_sync(self) -> None:
        raise NotImplementedError

    async def on_start(self) -> None:
        self._ready_event = asyncio.Event()
        await asyncio.to_thread(self.open_sync)
        self._ready_event.set()

    async def on_stop(self) -> None:
        await asyncio.to_thread(self.close_sync)

    @property
    def is_ready(self) -> bool:
        return self._ready

    async def wait_until_ready(self, timeout: float | None = None) -> bool:
        if self._ready:
            return True
        if self._ready_event is None:
            self._ready_event = asyncio.Event()
        try:
            await asyncio.wait_for(self._ready_event.wait(), timeout)
        except TimeoutError:
            return False
        return True
