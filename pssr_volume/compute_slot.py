"""One task computes at a time in a worker process, while others wait for their writes.

A block task has two halves. It computes: reads its tile, runs the network, rounds and pools
its voxels and starts the writes of its levels. Then it commits: waits until tensorstore's
threads have encoded its chunks and the files are on disk (each one fsynced), and only then
records itself in the journal. A worker that ran one task at a time left its core, or its
GPU, idle for the whole commit (on the test machine about eight fsyncs of ~8 ms a block).

So the workers this tool starts run :data:`TASK_THREADS` task threads each, and a task computes
only while it holds its process's slot (:meth:`ComputeSlot.compute`): while one block
commits, the next one computes. What a task guarantees is unchanged (it returns once its
data is on disk and journaled), and so is the memory a worker needs for the network: one
block computes at a time; the others hold only their stored voxels until they are written.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

TASK_THREADS = 2  # task threads per worker process: one computes while the other commits


class ComputeSlot:
    """The process's compute slot, with counts a test or a benchmark can read: the most
    tasks in a task body at once (:attr:`peak_tasks`) and the most computing at once
    (:attr:`peak_computing`, never more than one)."""

    def __init__(self) -> None:
        self._slot = threading.Lock()
        self._counts = threading.Lock()
        self.tasks = self.computing = 0
        self.peak_tasks = self.peak_computing = 0

    @contextlib.contextmanager
    def task(self) -> Iterator[None]:
        """A task's whole body: computing and committing."""
        with self._counted("tasks"):
            yield

    @contextlib.contextmanager
    def compute(self) -> Iterator[None]:
        """Hold the slot: no other task of this process computes meanwhile."""
        with self._slot, self._counted("computing"):
            yield

    @contextlib.contextmanager
    def _counted(self, name: str) -> Iterator[None]:
        """Count ``name`` (``tasks`` or ``computing``) up meanwhile, and its peak."""
        with self._counts:
            now = getattr(self, name) + 1
            setattr(self, name, now)
            setattr(self, f"peak_{name}", max(getattr(self, f"peak_{name}"), now))
        try:
            yield
        finally:
            with self._counts:
                setattr(self, name, getattr(self, name) - 1)

    def peaks(self, reset: bool = False) -> tuple[int, int]:
        """``(peak_tasks, peak_computing)`` so far; ``reset`` starts them again from now."""
        with self._counts:
            found = (self.peak_tasks, self.peak_computing)
            if reset:
                self.peak_tasks, self.peak_computing = self.tasks, self.computing
        return found


SLOT = ComputeSlot()  # the one slot of this process


def peaks(reset: bool = False) -> tuple[int, int]:
    """This process's slot's :meth:`ComputeSlot.peaks` (a function Dask's ``Client.run``
    sends by reference)."""
    return SLOT.peaks(reset)
