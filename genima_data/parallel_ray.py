"""Run per-episode tasks on a Ray cluster (the `ray` extra), with the local pool's semantics.

`run_tasks_ray` is what `parallel.run_tasks(..., engine="ray")` calls: at most `max_in_flight` tasks are
submitted at a time (memory stays flat however many episodes there are), results are yielded as they
complete, and closing the iterator early cancels what is still queued. Each task needs one CPU; Ray
places tasks on whatever nodes the cluster has. Tasks must be importable functions of picklable items,
and the files they read and write must be reachable from every node (a shared file system).

Without `address` a private local Ray instance is started (and stopped afterwards) with `workers` CPUs;
with ``address="auto"`` or ``"ray://host:10001"`` an existing cluster is joined. A Ray that is already
initialised in this process is used as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from genima_data.errors import GenimaDataError

Item = TypeVar("Item")
Result = TypeVar("Result")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise GenimaDataError("--engine ray needs Ray: pip install 'genima-data[ray]'") from None
    return ray


def run_tasks_ray(
    fn: Callable[[Item], Result],
    items: Iterable[Item],
    *,
    workers: int = 1,
    address: str | None = None,
    max_in_flight: int | None = None,
) -> Iterator[tuple[Item, Result]]:
    """Yield ``(item, fn(item))`` for every item, in completion order, computed by Ray tasks."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        local = {"num_cpus": max(1, workers)} if address is None else {}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **local)
    task = ray.remote(num_cpus=1, max_retries=0)(_call)
    limit = max_in_flight or 2 * max(1, workers)
    pending: dict[Any, Item] = {}
    try:
        for item in items:
            pending[task.remote(fn, item)] = item
            if len(pending) >= limit:
                yield _next_done(ray, pending)
        while pending:
            yield _next_done(ray, pending)
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started_here:
            ray.shutdown()


def _call(fn: Callable[[Item], Result], item: Item) -> Result:
    """The Ray task: any picklable callable (a builtin too), like the local process pool accepts."""
    return fn(item)


def _next_done(ray: Any, pending: dict[Any, Any]) -> tuple[Any, Any]:
    """Wait for one task to finish; its exception, if any, is raised as the original type."""
    (ref,), _ = ray.wait(list(pending), num_returns=1)
    item = pending.pop(ref)
    try:
        return item, ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        raise exc.as_instanceof_cause() from None
