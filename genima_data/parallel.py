"""Run a function over episodes: in this process, on a local process pool, or on a distributed engine.

Work is submitted with a bound on what is in flight (memory stays flat on 100k episodes) and results are
yielded as they complete. Functions and items must be picklable; each worker process opens its own
readers and writers (file handles never cross a fork).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from genima_data.errors import GenimaDataError

Item = TypeVar("Item")
Result = TypeVar("Result")

ENGINES = ("local", "ray")


def run_tasks(
    fn: Callable[[Item], Result],
    items: Iterable[Item],
    *,
    workers: int = 1,
    engine: str = "local",
    address: str | None = None,
    max_in_flight: int | None = None,
) -> Iterator[tuple[Item, Result]]:
    """Yield ``(item, fn(item))`` for every item, in completion order.

    Closing the iterator early (an error upstream) cancels what has not started and waits for what has.
    """
    if engine not in ENGINES:
        raise GenimaDataError(f"unknown engine '{engine}'; choose from {', '.join(ENGINES)}")
    if engine == "ray":
        from genima_data.parallel_ray import run_tasks_ray

        yield from run_tasks_ray(fn, items, workers=workers, address=address, max_in_flight=max_in_flight)
        return
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    limit = max_in_flight or 2 * workers
    # spawn: workers start clean, with no inherited HDF5/zarr handles or threads
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    pending: dict[Future, Any] = {}
    iterator = iter(items)
    try:
        for item in iterator:
            pending[_submit(pool, fn, item)] = item
            if len(pending) >= limit:
                yield from _drain(pending)
        while pending:
            yield from _drain(pending)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _submit(pool: ProcessPoolExecutor, fn: Callable, item: Any) -> Future:
    """Submit one task with SIGINT ignored: workers start on submit and inherit that, so Ctrl-C stops only
    this process, which cancels what has not started (no KeyboardInterrupt traceback from every worker)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        return pool.submit(fn, item)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return pool.submit(fn, item)
    finally:
        signal.signal(signal.SIGINT, previous)


def _drain(pending: dict[Future, Any]) -> Iterator[tuple[Any, Any]]:
    done, _ = wait(pending, return_when=FIRST_COMPLETED)
    for future in done:
        item = pending.pop(future)
        yield item, future.result()
