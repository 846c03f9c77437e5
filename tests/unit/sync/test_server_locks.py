"""The per-server locks live on the context: one lock per server, shared by its threads."""

from __future__ import annotations

import threading

from vlm.context import ServiceContext
from vlm.sync.clients import ServerLocks, server_lock


def _held_elsewhere(lock: threading.RLock) -> bool:
    """Whether another thread fails to take the lock right now."""
    taken: list[bool] = []

    def try_it() -> None:
        got = lock.acquire(blocking=False)
        taken.append(got)
        if got:
            lock.release()

    thread = threading.Thread(target=try_it)
    thread.start()
    thread.join()
    return not taken[0]


def test_one_lock_per_server_of_a_context(ctx: ServiceContext) -> None:
    assert server_lock(ctx, 1) is server_lock(ctx, 1) is ctx.owned(ServerLocks).of(1)
    assert server_lock(ctx, 1) is not server_lock(ctx, 2)


def test_a_held_server_lock_keeps_other_threads_out_of_that_server_only(
    ctx: ServiceContext,
) -> None:
    with server_lock(ctx, 1):
        assert _held_elsewhere(server_lock(ctx, 1))
        assert not _held_elsewhere(server_lock(ctx, 2))
        with server_lock(ctx, 1):  # a pass may pull the inventory under its own lock
            pass
    assert not _held_elsewhere(server_lock(ctx, 1))


def test_another_context_has_its_own_locks(ctx: ServiceContext) -> None:
    other = ServiceContext(ctx.db, ctx.settings, ctx.secrets)
    assert server_lock(other, 1) is not server_lock(ctx, 1)
