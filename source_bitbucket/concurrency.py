"""Reading several repositories at once while the CDK consumes them one after another.

The CDK's sequential read loop (``Stream.read``) stays in charge: it asks for one repository
slice at a time, emits its records in order (the stream advances its per-repository state with
``state.get_updated_state`` as it hands each record over) and checkpoints the stream's ``state``
after each slice. Which code runs where: ``SlicePrefetcher`` threads run ``read_slice`` (HTTP,
parsing, the commit frontier, the shared pull request listing of their repository); the CDK's thread
runs everything that touches state (``advance_state``, ``on_slice_read``). It only fetches ahead:
up to ``num_workers`` threads read the next slices (in listing order) into bounded buffers,
so the HTTP latency of many repositories overlaps while state stays exact and the records of
one repository keep their API order.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional

_END = object()


class SlicePrefetcher:
    """Reads ``slices`` with ``read_slice`` on ``workers`` daemon threads, ahead of the consumer.

    Args:
        read_slice: reads one slice and yields its items, e.g. pages of records (runs on a worker thread).
        slices: every slice of the stream, in the order the consumer will ask for them.
        workers: threads reading at once.
        window: slices started but not yet consumed (bounds memory with ``buffer_records``).
        buffer_items: items (pages of records) buffered per slice before its worker waits for the consumer.

    ``items(i)`` must be called for i = 0, 1, 2... in order; it yields slice i's items in the
    order ``read_slice`` produced them and re-raises the exception that ended the slice. Items
    are handed over whole (a page of records is one queue operation), so memory is bounded by
    ``window`` x ``buffer_items`` items plus one item being read per worker.
    """

    def __init__(
        self,
        read_slice: Callable[[Mapping[str, Any]], Iterable[Any]],
        slices: List[Mapping[str, Any]],
        workers: int,
        window: Optional[int] = None,
        buffer_items: int = 6,
    ) -> None:
        self._read_slice = read_slice
        self._slices = slices
        self._buffers = [queue.Queue(maxsize=buffer_items) for _ in slices]
        self._window = threading.Semaphore(window or 2 * workers)
        self._next = 0
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._abandoned: set = set()
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"prefetch-{n}") for n in range(workers)]
        for thread in self._threads:
            thread.start()

    def items(self, index: int) -> Iterator[Any]:
        """Yield the items of slice ``index`` as they arrive."""
        buffer = self._buffers[index]
        try:
            while True:
                item = buffer.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        except GeneratorExit:  # the consumer stopped early (e.g. a record limit): free this slice only
            self._abandoned.add(index)
            raise
        except BaseException:
            self.cancel()
            raise
        finally:
            self._window.release()

    def cancel(self) -> None:
        """Stop the workers (they finish their current request and exit)."""
        self._cancelled.set()

    def _work(self) -> None:
        while not self._cancelled.is_set():
            while not self._window.acquire(timeout=0.2):
                if self._cancelled.is_set():
                    return
            with self._lock:
                index, self._next = self._next, self._next + 1
            if index >= len(self._slices):
                self._window.release()
                return
            try:
                for item in self._read_slice(self._slices[index]):
                    if not self._put(index, item):
                        break
                end: Any = _END
            except BaseException as error:  # handed to the consumer, re-raised on its thread
                end = _Failure(error)
            self._put(index, end)

    def _put(self, index: int, item: Any) -> bool:
        """Hand ``item`` to slice ``index``'s consumer; False once the sync or the slice was given up."""
        while not self._cancelled.is_set() and index not in self._abandoned:
            try:
                self._buffers[index].put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
