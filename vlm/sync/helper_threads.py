"""The process's helper threads for a pull's side work: requests sent at once, reads beside
a longer one. Started once and kept, so a pull does not pay for starting threads (on a busy
interpreter a new thread waits for the GIL before `submit` returns: about 5 ms each).

Only the thread that submitted waits for these tasks, and no task waits for another, so a
busy pool delays work and never deadlocks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

HELPER_THREADS = 8

P = ParamSpec("P")
T = TypeVar("T")


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=HELPER_THREADS, thread_name_prefix="vlm-helper")


def on_helper_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Run fn on a helper thread; its Future gives the result (or raises its error)."""
    return _pool().submit(fn, *args, **kwargs)
