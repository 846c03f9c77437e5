"""Full sync passes (inventory pull + reconcile) and the background scheduler that runs them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vlm.context import ServiceContext
from vlm.store.reservations import (
    requeue_failed,
    seconds_until_next_retry,
    servers_with_due_retries,
)
from vlm.store.servers import load_servers
from vlm.sync import drift
from vlm.sync.clients import ClientCache, ServerConfigError
from vlm.sync.inventory import InventoryResult, pull_inventory
from vlm.sync.reconciler import ReconcileReport, reconcile_server

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
IDLE_RECHECK_SECONDS = 5.0
MIN_RETRY_WAIT_SECONDS = 0.5
JOIN_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class ServerSyncResult:
    """The outcome of one server's part of a full pass."""

    server_id: int
    server_name: str
    inventory: InventoryResult | None
    reconcile: ReconcileReport | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        parts = [f"{self.server_name}:"]
        inv, rec = self.inventory, self.reconcile
        if inv is not None and inv.ok:
            parts.append(f"inventory ok ({inv.features} features, {inv.groups} groups);")
        if rec is not None and rec.error is None:
            parts.append(
                f"reservations: {rec.operations} operations, {rec.applied} applied, "
                f"{rec.failed} failed, {rec.transient} to retry, {rec.removed} removed;"
            )
        parts.append("ok" if self.ok else f"error: {self.error}")
        return " ".join(parts)


def _problem(inventory: InventoryResult, report: ReconcileReport) -> str | None:
    """One message for whatever went wrong with a server in a pass (None if nothing did)."""
    problems = []
    if not inventory.ok:
        problems.append(f"inventory: {inventory.error}")
    if report.error is not None:
        problems.append(f"reservations: {report.error}")
    elif report.transient:
        problems.append(f"{report.transient} allocation(s) not applied yet, will be retried")
    return "; ".join(problems) or None


def _notify(progress: ProgressFn | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)), message)


def sync_server(
    ctx: ServiceContext,
    server: dict[str, Any],
    client_cache: ClientCache,
    *,
    force: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ServerSyncResult:
    """Pull one server's inventory, reconcile it, and refresh its stored conflicts."""
    server_id, name = int(server["id"]), str(server["name"])
    try:
        client = client_cache.get(server)
    except ServerConfigError as exc:
        return ServerSyncResult(server_id, name, None, None, str(exc))
    inventory = pull_inventory(ctx, server_id, client)
    if progress is not None:
        progress(f"{name}: applying reservations")
    ctx.db.write(lambda cur: requeue_failed(cur, server_id))
    report = reconcile_server(ctx, server_id, client, force=force)
    if report.hosts_changed:
        drift.store_conflicts(ctx, server_id)
    return ServerSyncResult(server_id, name, inventory, report, _problem(inventory, report))


def sync_all(
    ctx: ServiceContext,
    progress: ProgressFn | None = None,
    *,
    client_cache: ClientCache | None = None,
    force: bool = True,
) -> list[ServerSyncResult]:
    """One full pass over every license server (what "Sync now" and `python -m vlm sync` run).

    force=True ignores the retry backoff of pending allocations, as the user asked for it.
    """
    cache = client_cache or ClientCache(ctx)
    try:
        servers = load_servers(ctx.db)
        results: list[ServerSyncResult] = []
        count = max(len(servers), 1)
        _notify(progress, 0.0, f"syncing {len(servers)} license server(s)")
        for index, server in enumerate(servers):
            _notify(progress, index / count, f"{server['name']}: reading inventory")
            step = (index + 0.5) / count
            result = sync_server(
                ctx, server, cache, force=force, progress=lambda m, s=step: _notify(progress, s, m)
            )
            results.append(result)
        failed = sum(1 for r in results if not r.ok)
        _notify(progress, 1.0, f"done: {len(results) - failed} ok, {failed} with errors")
        return results
    finally:
        if client_cache is None:
            cache.close_all()


class SyncScheduler:
    """Background sync: pushes reconcile at once, retries when due, full pass every interval.

    Two daemon threads: one reacts to push() and due retries, one runs the periodic full pass,
    so a slow server in a full pass does not delay a Save on another server.
    """

    def __init__(
        self,
        ctx: ServiceContext,
        interval_seconds: float | None = None,
        client_cache: ClientCache | None = None,
    ) -> None:
        self._ctx = ctx
        self.interval = float(
            ctx.settings.sync_interval_seconds if interval_seconds is None else interval_seconds
        )
        self._cache = client_cache or ClientCache(ctx)
        self._owns_cache = client_cache is None
        self._cond = threading.Condition()
        self._pushed: set[int] = set()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._previous_hook: Callable[[Iterable[int]], None] | None = None
        self.last_full_pass: list[ServerSyncResult] = []
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        """Start the threads and make ctx.allocations_changed push to this scheduler."""
        if self.running:
            return
        self._stopping.clear()
        self._previous_hook = self._ctx.on_allocations_changed
        self._ctx.on_allocations_changed = self.push
        self._threads = [
            threading.Thread(target=self._push_loop, name="vlm-sync-push", daemon=True),
            threading.Thread(target=self._periodic_loop, name="vlm-sync-periodic", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = JOIN_TIMEOUT_SECONDS) -> None:
        """Stop and join the threads, restore the context hook, close owned clients."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        if self._ctx.on_allocations_changed == self.push and self._previous_hook is not None:
            self._ctx.on_allocations_changed = self._previous_hook
        if self._owns_cache:
            self._cache.close_all()

    def push(self, server_ids: Iterable[int]) -> None:
        """Reconcile these servers as soon as possible (called after every allocation change)."""
        with self._cond:
            self._pushed.update(int(s) for s in server_ids)
            self._cond.notify_all()

    def sync_now(self, progress: ProgressFn | None = None) -> list[ServerSyncResult]:
        """A synchronous full pass in the caller's thread, ignoring retry backoff."""
        results = sync_all(self._ctx, progress, client_cache=self._cache, force=True)
        self.last_full_pass = results
        return results

    # -- threads -------------------------------------------------------------------------------

    def _push_loop(self) -> None:
        while not self._stopping.is_set():
            wait = self._retry_wait()
            with self._cond:
                if not self._pushed and not self._stopping.is_set():
                    self._cond.wait(wait)
                ids, self._pushed = self._pushed, set()
            if self._stopping.is_set():
                return
            self._guard(self._reconcile_pushed_and_due, ids)

    def _periodic_loop(self) -> None:
        while not self._stopping.is_set():
            self._guard(self._full_pass)
            self._stopping.wait(self.interval)

    def _retry_wait(self) -> float:
        due_in: float | None = None
        try:
            due_in = seconds_until_next_retry(self._ctx.db)
        except Exception:  # noqa: BLE001 - a closed database must not kill the thread
            log.exception("cannot read the retry schedule")
        if due_in is None:
            return IDLE_RECHECK_SECONDS
        return min(IDLE_RECHECK_SECONDS, max(MIN_RETRY_WAIT_SECONDS, due_in))

    def _reconcile_pushed_and_due(self, pushed: set[int]) -> None:
        self._reconcile(pushed | set(servers_with_due_retries(self._ctx.db)))

    def _reconcile(self, server_ids: set[int]) -> None:
        for server_id in sorted(server_ids):
            if self._stopping.is_set():
                return
            try:
                client = self._cache.get_by_id(server_id)
            except Exception as exc:  # noqa: BLE001 - a deleted or misconfigured server
                self.last_error = str(exc)
                continue
            report = reconcile_server(self._ctx, server_id, client)
            if report.error:
                self.last_error = report.error

    def _full_pass(self) -> None:
        self.last_full_pass = sync_all(self._ctx, client_cache=self._cache, force=False)

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        """Run fn; an unexpected error is logged and kept, the thread lives on."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the scheduler must survive anything
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("sync pass failed")
