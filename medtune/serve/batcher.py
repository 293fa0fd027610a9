"""Micro-batching: documents of concurrent requests run through a model together.

Each served pipeline or model has a :class:`MicroBatcher`: a queue and a worker thread (or a few,
``--model-workers``) running batches through the model (a loaded model is thread-safe; by default one
thread, so that the CPU's cores go to the model's own parallelism instead of several batches fighting
over them). The worker takes the oldest
waiting document and waits at most ``max_wait_s`` for more, until ``max_batch`` documents or
``max_batch_chars`` characters are waiting; then it packs a batch: always the oldest document, then
the next ones in arrival order that still fit the character budget. So

* a lone request waits a few milliseconds at most before it runs;
* a long document is batched alone (it fills the budget), never with a pile of documents padded to
  its length; the service also gives documents of ``--long-chars`` or more a batcher of their own
  (a second lane on the same model), so that short ones keep flowing while a long one computes;
* nobody starves: the oldest document is always in the next batch.

A document whose caller gave up (a timeout) before its batch started is dropped. A batch that fails
is retried one document at a time, so that one bad document fails only its own request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Sequence

from medtune.document import Document
from medtune.serve.errors import ServiceError

logger = logging.getLogger("medtune.serve")

Runner = Callable[[list[Document]], list[Document]]
SCAN_LIMIT = 256  # how far past the oldest document a batch looks for documents that fit


def document_size(doc: Document) -> int:
    """What a document costs a batch: its characters (text and text_pair), at least 1."""
    return max(1, len(doc.text) + len(doc.text_pair or ""))


@dataclass
class _Item:
    doc: Document
    size: int
    future: Future
    enqueued: float


@dataclass
class BatchStats:
    """Counters of one batcher (read by tests and the load benchmark)."""

    batches: int = 0
    documents: int = 0
    largest_batch: int = 0
    dropped: int = 0
    sizes: list[int] = field(default_factory=list)


class MicroBatcher:
    """A queue of documents in front of ``runner`` (documents in, the same number out, in order)."""

    def __init__(self, runner: Runner, *, max_batch: int = 16, max_wait_s: float = 0.005,
                 max_batch_chars: int = 8_000, max_queue: int = 1024, name: str = "model", workers: int = 1) -> None:
        self.runner = runner
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.max_batch_chars, self.max_queue = max_batch_chars, max_queue
        self.name, self.workers = name, workers
        self.stats = BatchStats()
        self._queue: deque[_Item] = deque()
        self._queued_chars = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._busy = 0  # workers running a batch

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the worker thread(s): ``workers`` > 1 runs that many batches at once on the same model
        (with ``torch.set_num_threads(1)``, one core each: no thread team waits for a busy core)."""
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._loop, name=f"medtune-batcher-{self.name}-{len(self._threads)}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Finish the documents already queued, then end the worker thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    # -------------------------------------------------------------------- submit
    def submit(self, docs: Sequence[Document]) -> list[Future]:
        """Queue documents; one future per document, resolved with its annotated copy."""
        now = time.monotonic()
        items = [_Item(doc, document_size(doc), Future(), now) for doc in docs]
        with self._cond:
            if self._stopping:
                raise ServiceError("E622", "the service is shutting down", fix="retry on another instance")
            if len(self._queue) + len(items) > self.max_queue:
                raise ServiceError("E621", f"the queue of '{self.name}' is full ({len(self._queue)} documents "
                                           f"waiting, at most {self.max_queue})",
                                   fix="retry after a short pause, send fewer documents at once, or raise --max-queue")
            self._queue.extend(items)
            self._queued_chars += sum(item.size for item in items)
            self._cond.notify_all()
        return [item.future for item in items]

    def run_now(self, docs: list[Document]) -> list[Document]:
        """Run documents through the model on the caller's thread (warm-up before serving)."""
        return self._call(docs)

    # -------------------------------------------------------------------- worker
    def _full(self) -> bool:
        return len(self._queue) >= self.max_batch or self._queued_chars >= self.max_batch_chars

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                deadline = self._queue[0].enqueued + self.max_wait_s
                while not self._stopping and not self._full():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._take()
            if batch:
                try:
                    self._run(batch)
                finally:
                    with self._cond:
                        self._busy -= 1

    def _take(self) -> list[_Item]:
        """Pack the next batch (under the lock): the oldest document, then those that still fit."""
        batch: list[_Item] = []
        kept: list[_Item] = []
        chars = 0
        scanned = 0
        # idle workers share what is waiting instead of one taking it all while the others idle
        idle = max(1, self.workers - self._busy)
        limit = min(self.max_batch, -(-len(self._queue) // idle))
        while self._queue and len(batch) < limit and scanned < SCAN_LIMIT:
            item = self._queue.popleft()
            scanned += 1
            if batch and chars + item.size > self.max_batch_chars:
                kept.append(item)
                continue
            self._queued_chars -= item.size
            if not item.future.set_running_or_notify_cancel():  # the caller gave up
                self.stats.dropped += 1
                continue
            batch.append(item)
            chars += item.size
        self._queue.extendleft(reversed(kept))
        if batch:
            self._busy += 1
        return batch

    def _call(self, docs: list[Document]) -> list[Document]:
        out = list(self.runner(docs))
        if len(out) != len(docs):
            raise RuntimeError(f"the runner returned {len(out)} documents for {len(docs)}")
        return out

    def _run(self, batch: list[_Item]) -> None:
        with self._cond:
            self.stats.batches += 1
            self.stats.documents += len(batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            if len(self.stats.sizes) < 10_000:
                self.stats.sizes.append(len(batch))
        try:
            results = self._call([item.doc for item in batch])
        except BaseException as err:  # noqa: BLE001 - every failure goes back to its caller
            if len(batch) == 1:
                batch[0].future.set_exception(err)
                return
            results = None
        if results is not None:
            for item, doc in zip(batch, results):
                item.future.set_result(doc)
            return
        for item in batch:  # isolate the document that fails the batch
            try:
                item.future.set_result(self._call([item.doc])[0])
            except BaseException as err:  # noqa: BLE001
                item.future.set_exception(err)
