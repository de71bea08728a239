"""The generated fold's slots (:mod:`sql.codegen.fold_batch`): what it learned about each record
key of a partition, so the next record with that key skips the key check, the group or window
lookup and the output key's formatting."""

from __future__ import annotations

from typing import Any

#: Record keys whose slot is kept per partition (then all forgotten at once and made again).
SLOTS_KEPT = 100_000


class Slots:
    """Per partition, the fold's slot of each record key that passed the key check: a list
    ``[key column value, group key, start, window, *its accumulators, output key, its
    partition]`` (windows) or ``[value, group key, accumulators, *the same, output key, its
    partition]`` (GROUP BY), the output key and partition None until found. A record
    whose key has a slot with an equal value needs no key check, and one in the slot's group
    (and window) no group or window lookup and no output key formatting: one dict lookup by
    the record key's bytes instead of three (and the output key's bytes kept hash their
    partition once). The operator's dicts stay the truth: a slot only caches what they give."""

    def __init__(self) -> None:
        self.by_partition: dict[int, dict[bytes, list[Any]]] = {}
        #: The output's partition cache the slots' partitions agree with (see ``__call__``).
        self.outputs: object = None

    def __call__(self, partition: int, outputs: object = None) -> dict[bytes, list[Any]]:
        """The slots of ``partition``; ``outputs``: the output's partition cache of its topic,
        a new one when the topic's partitions changed: then every slot starts over (a slot
        keeps its output key's partition)."""
        if outputs is not self.outputs:
            self.by_partition.clear()
            self.outputs = outputs
        slots = self.by_partition.get(partition)
        if slots is None or len(slots) >= SLOTS_KEPT:
            slots = self.by_partition[partition] = {}
        return slots
