"""Map a function over items with a process pool and a tqdm progress bar."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterable
from typing import TypeVar

from tqdm import tqdm

In = TypeVar("In")
Out = TypeVar("Out")


def parallel_map(function: Callable[[In], Out], items: Iterable[In], num_workers: int, desc: str) -> list[Out]:
    """Apply ``function`` to every item, in ``num_workers`` processes (1: in this process).

    Returns the results in the order of ``items``. ``function`` must be a module-level function
    (it is pickled). An exception in a worker is raised here.

    Example:
        >>> parallel_map(abs, [-1, 2, -3], num_workers=1, desc="demo")
        [1, 2, 3]
    """
    items = list(items)
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, found {num_workers}")
    if num_workers == 1 or len(items) <= 1:
        return [function(item) for item in tqdm(items, desc=desc, unit="case")]
    context = multiprocessing.get_context("spawn" if _torch_threads_started() else None)
    with context.Pool(min(num_workers, len(items))) as pool:
        iterator = pool.imap(function, items, chunksize=1)
        return list(tqdm(iterator, total=len(items), desc=desc, unit="case"))


def _torch_threads_started() -> bool:
    """Forking after torch started its thread pools can hang; spawn is the safe choice then."""
    return "torch" in sys.modules
