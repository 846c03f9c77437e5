"""Full sync passes (inventory pull + reconcile) and the background scheduler that runs them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vlm.alerting.delivery import DeliveryPass, deliver_due
from vlm.alerting.evaluate import AlertPass, evaluate_alerts
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
from vlm.sync.leader import Leadership, current_leader, leadership_for, server_turn
from vlm.sync.reconciler import SERVERS_AT_ONCE, ReconcileReport, reconcile_server

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
IDLE_RECHECK_SECONDS = 5.0
MIN_RETRY_WAIT_SECONDS = 0.5
JOIN_TIMEOUT_SECONDS = 15.0
LEADER_RETRY_SECONDS = 1.0  # a follower tries the leader lock this often
LISTEN_WAIT_SECONDS = 1.0  # the leader checks its session at least this often


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
    """Pull one server's inventory, reconcile it, and refresh its stored conflicts, in the
    server's turn (on PostgreSQL no other replica or CLI works on it meanwhile)."""
    server_id, name = int(server["id"]), str(server["name"])
    try:
        client = client_cache.get(server)
    except ServerConfigError as exc:
        return ServerSyncResult(server_id, name, None, None, str(exc))
    with server_turn(ctx, server_id):
        return _sync_in_turn(ctx, server_id, name, client, force=force, progress=progress)


def _sync_in_turn(
    ctx: ServiceContext,
    server_id: int,
    name: str,
    client: Any,
    *,
    force: bool,
    progress: Callable[[str], None] | None,
) -> ServerSyncResult:
    inventory = pull_inventory(ctx, server_id, client)
    if progress is not None:
        progress(f"{name}: applying reservations")
    ctx.db.write(lambda cur: requeue_failed(cur, server_id))
    report = reconcile_server(ctx, server_id, client, force=force, groups_just_read=inventory.ok)
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

    Two daemon threads: one reacts to pushes and due retries, one runs the periodic full pass,
    so a slow server in a full pass does not delay a Save on another server. Only the leader
    works (vlm/sync/leader.py): on DuckDB that is always this process, and saves push through
    the context hook; on PostgreSQL a third thread takes the leader lock when it is free,
    listens for the servers saves on any replica announce, and steps down when its session is
    lost. A follower reconciles nothing; on taking over, the new leader runs a full pass.
    """

    def __init__(
        self,
        ctx: ServiceContext,
        interval_seconds: float | None = None,
        client_cache: ClientCache | None = None,
        leadership: Leadership | None = None,
        after_pass: Sequence[Callable[[ServiceContext], object]] = (),
    ) -> None:
        self._ctx = ctx
        self._after_pass = tuple(after_pass)
        self.interval = float(
            ctx.settings.sync_interval_seconds if interval_seconds is None else interval_seconds
        )
        self._cache = client_cache or ClientCache(ctx)
        self._owns_cache = client_cache is None
        self._leadership = leadership or leadership_for(ctx)
        self._cond = threading.Condition()
        self._pushed: set[int] = set()
        self._busy: set[int] = set()  # servers whose pushed pass runs now
        self._passes: set[threading.Thread] = set()  # the threads of those passes
        self._servers_at_once = threading.BoundedSemaphore(SERVERS_AT_ONCE)
        self._stopping = threading.Event()
        self._leading = threading.Event()
        self._pass_due = threading.Event()
        self._threads: list[threading.Thread] = []
        self._previous_hook: Callable[[Iterable[int]], None] | None = None
        self.last_full_pass: list[ServerSyncResult] = []
        self.last_alert_pass: tuple[AlertPass, DeliveryPass] | None = None
        self.last_after_pass: list[object] = []
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def is_leader(self) -> bool:
        """Whether this scheduler runs the sync now: while it runs, always on DuckDB; on
        PostgreSQL only while its replica holds the leader lock."""
        return self._leading.is_set() and self.running

    @property
    def shared(self) -> bool:
        """Whether other replicas may lead instead of this one (PostgreSQL)."""
        return self._leadership.shared

    def leader_name(self) -> str | None:
        """Host and pid of the replica that leads on PostgreSQL (None while none does, and on
        DuckDB)."""
        return current_leader(self._ctx)

    def start(self) -> None:
        """Start the threads; on DuckDB also make ctx.allocations_changed push to this scheduler
        (on PostgreSQL saves reach the leader through NOTIFY, its own saves included)."""
        if self.running:
            return
        self._stopping.clear()
        self._pass_due.clear()
        self._threads = [
            threading.Thread(target=self._push_loop, name="vlm-sync-push", daemon=True),
            threading.Thread(target=self._periodic_loop, name="vlm-sync-periodic", daemon=True),
        ]
        if self._leadership.shared:
            leader = threading.Thread(target=self._leader_loop, name="vlm-sync-leader", daemon=True)
            self._threads.append(leader)
        else:
            self._leading.set()
            self._previous_hook = self._ctx.on_allocations_changed
            self._ctx.on_allocations_changed = self.push
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = JOIN_TIMEOUT_SECONDS) -> None:
        """Stop and join the threads (the leader gives its lock back), restore the context
        hook, close owned clients."""
        self._stopping.set()
        self._pass_due.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        with self._cond:
            passes = list(self._passes)
        for thread in passes:
            thread.join(timeout)
        self._leading.clear()
        if self._ctx.on_allocations_changed == self.push and self._previous_hook is not None:
            self._ctx.on_allocations_changed = self._previous_hook
        if self._owns_cache:
            self._cache.close_all()

    def push(self, server_ids: Iterable[int]) -> None:
        """Reconcile these servers as soon as possible; ignored unless this scheduler leads."""
        if self._leading.is_set():
            self._enqueue({int(s) for s in server_ids})

    def sync_now(self, progress: ProgressFn | None = None) -> list[ServerSyncResult]:
        """A synchronous full pass in the caller's thread, ignoring retry backoff. It runs on a
        follower too, like `python -m vlm sync`: each server in its turn."""
        results = sync_all(self._ctx, progress, client_cache=self._cache, force=True)
        self.last_full_pass = results
        self._guard(self._alert_pass)
        return results

    # -- threads -------------------------------------------------------------------------------

    def _enqueue(self, server_ids: set[int]) -> None:
        with self._cond:
            self._pushed.update(server_ids)
            self._cond.notify_all()

    def _push_loop(self) -> None:
        """Start a pass for each pushed or due server at once, each in its own thread: a slow
        server keeps its own thread busy, and a save on another server does not wait for it.
        A server pushed while its pass runs gets another pass when that one ends."""
        while not self._stopping.is_set():
            wait = self._retry_wait() if self._leading.is_set() else IDLE_RECHECK_SECONDS
            with self._cond:
                if not self._pushed - self._busy and not self._stopping.is_set():
                    self._cond.wait(wait)
                ids = self._pushed - self._busy
                self._pushed -= ids
            if self._stopping.is_set():
                return
            if self._leading.is_set():
                self._guard(self._start_passes, ids)

    def _start_passes(self, pushed: set[int]) -> None:
        """Start a pass for each pushed server and each with retries due, unless one runs."""
        due: set[int] = set()
        try:
            due = set(servers_with_due_retries(self._ctx.db))
        except Exception as exc:  # noqa: BLE001 - the pushed servers still get their pass
            self.last_error = f"cannot read the retry schedule: {exc}"
            log.exception("cannot read the retry schedule")
        with self._cond:
            starting = (pushed | due) - self._busy
            self._busy |= starting
        for server_id in sorted(starting):
            thread = threading.Thread(
                target=self._reconcile_one,
                args=(server_id,),
                name=f"vlm-sync-server-{server_id}",
                daemon=True,
            )
            with self._cond:
                self._passes.add(thread)
            thread.start()

    def _periodic_loop(self) -> None:
        while not self._stopping.is_set():
            if self._leading.is_set():
                self._guard(self._full_pass)
                self._guard(self._alert_pass)
            self._pass_due.wait(self.interval)
            self._pass_due.clear()

    def _leader_loop(self) -> None:
        """Lead while the lock is held: follow announced changes, check the session; else try
        to take the lock every LEADER_RETRY_SECONDS."""
        try:
            while not self._stopping.is_set():
                if self._leading.is_set():
                    self._follow_changes()
                elif not self._take_lead():
                    self._stopping.wait(LEADER_RETRY_SECONDS)
        finally:
            self._step_down()

    def _take_lead(self) -> bool:
        try:
            if not self._leadership.acquire():
                return False
        except Exception as exc:  # noqa: BLE001 - the database may be away for a while
            self.last_error = f"cannot take the sync lead: {exc}"
            log.warning("cannot take the sync lead: %s", exc)
            return False
        self._leading.set()
        self._pass_due.set()  # what changed while nobody led is applied by a full pass
        with self._cond:
            self._cond.notify_all()
        return True

    def _follow_changes(self) -> None:
        try:
            changed = self._leadership.changes(LISTEN_WAIT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - LeadershipLost, or the pool closed under us
            self.last_error = f"lost the sync lead: {exc}"
            log.warning("lost the sync lead: %s", exc)
            self._step_down()
            return
        if changed:
            self._enqueue(changed)

    def _step_down(self) -> None:
        self._leading.clear()
        try:
            self._leadership.release()
        except Exception:  # noqa: BLE001 - nothing more to give back
            log.exception("releasing the sync lead failed")

    def _retry_wait(self) -> float:
        due_in: float | None = None
        try:
            due_in = seconds_until_next_retry(self._ctx.db)
        except Exception:  # noqa: BLE001 - a closed database must not kill the thread
            log.exception("cannot read the retry schedule")
        if due_in is None:
            return IDLE_RECHECK_SECONDS
        return min(IDLE_RECHECK_SECONDS, max(MIN_RETRY_WAIT_SECONDS, due_in))

    def _reconcile_one(self, server_id: int) -> None:
        try:
            with self._servers_at_once:
                self._guard(self._reconcile_server, server_id)
        finally:
            with self._cond:
                self._busy.discard(server_id)
                self._passes.discard(threading.current_thread())
                self._cond.notify_all()

    def _reconcile_server(self, server_id: int) -> None:
        if self._stopping.is_set() or not self._leading.is_set():
            return
        try:
            client = self._cache.get_by_id(server_id)
        except Exception as exc:  # noqa: BLE001 - a deleted or misconfigured server
            self.last_error = str(exc)
            return
        with server_turn(self._ctx, server_id):
            report = reconcile_server(self._ctx, server_id, client, read_first=False)
        if report.error:
            self.last_error = report.error

    def _full_pass(self) -> None:
        """sync_server for every server, stopping early when this scheduler stops leading."""
        results = []
        for server in load_servers(self._ctx.db):
            if self._stopping.is_set() or not self._leading.is_set():
                break
            results.append(sync_server(self._ctx, server, self._cache, force=False))
        self.last_full_pass = results

    def _alert_pass(self) -> None:
        """After a full pass: the after_pass tasks (the idle-release policy), then fire and clear
        alerts and send the messages that are due."""
        if self._stopping.is_set() or not self._leading.is_set():
            return
        self.last_after_pass = [self._run_after_pass(task) for task in self._after_pass]
        evaluated = evaluate_alerts(self._ctx)
        self.last_alert_pass = (evaluated, deliver_due(self._ctx))

    def _run_after_pass(self, task: Callable[[ServiceContext], object]) -> object:
        """One after_pass task; its failure is logged and kept, the alert pass still runs."""
        try:
            return task(self._ctx)
        except Exception as exc:  # noqa: BLE001 - one failing task must not stop the others
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("after-pass task %s failed", getattr(task, "__name__", task))
            return exc

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        """Run fn; an unexpected error is logged and kept, the thread lives on."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the scheduler must survive anything
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("sync pass failed")
