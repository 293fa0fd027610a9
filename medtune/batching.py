"""The one way medtune streams work through a model: documents in bounded buffers, each buffer's
features run in batches of similar length (so padding stays small), results back in input order.

Every task's prediction, the pipeline and the linker's encoder use these two helpers; nothing else
reimplements them.
"""

from __future__ import annotations

from itertools import islice
from typing import Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")


def buffered(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items: memory stays bounded however long ``items`` is."""
    if size < 1:
        raise ValueError(f"buffer size must be at least 1, not {size}")
    iterator = iter(items)
    while True:
        chunk = list(islice(iterator, size))
        if not chunk:
            return
        yield chunk


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices into ``lengths`` in batches of at most ``batch_size``, shortest first (stable order
    among equal lengths), so that a batch pads to the length of similar items."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for b in range(0, len(order), batch_size):
        yield order[b: b + batch_size]
