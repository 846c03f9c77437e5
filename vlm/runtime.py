"""The process-wide runtime: settings, service context and sync scheduler, shared by UI and API."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vlm.config import Settings
from vlm.context import ServiceContext

log = logging.getLogger(__name__)


class Scheduler(Protocol):
    @property
    def running(self) -> bool: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def shared(self) -> bool: ...

    def start(self) -> Any: ...

    def stop(self) -> Any: ...

    def sync_now(self, progress: Any = None) -> Any: ...

    def leader_name(self) -> str | None: ...


@dataclass
class Runtime:
    """Everything a UI session or API request shares with every other one of this process."""

    settings: Settings
    ctx: ServiceContext
    scheduler: Scheduler | None
    scheduler_problem: str | None = None

    @property
    def sync_status(self) -> str:
        """One line on whether this process runs the background sync (a follower replica does
        not: another replica leads)."""
        scheduler = self.scheduler
        if scheduler is None:
            return self.scheduler_problem or "The sync engine is not running."
        if not scheduler.running:
            return "The background sync is stopped."
        if not scheduler.shared:
            return "The background sync runs in this process."
        if scheduler.is_leader:
            return "This replica leads the background sync."
        leader = scheduler.leader_name()
        if leader is None:
            return "No replica leads the background sync yet; one takes over within seconds."
        return f"Another replica ({leader}) leads the background sync; this one only serves."

    def close(self) -> None:
        if self.scheduler is not None:
            try:
                self.scheduler.stop()
            except Exception:  # a failing stop must not keep the database open
                log.exception("stopping the sync scheduler failed")
        self.ctx.db.close()


AfterPass = Sequence[Callable[[ServiceContext], object]]


def _start_scheduler(
    ctx: ServiceContext, after_pass: AfterPass
) -> tuple[Scheduler | None, str | None]:
    try:
        from vlm.sync.scheduler import SyncScheduler
    except ImportError as exc:
        log.warning("sync scheduler unavailable: %s", exc)
        return None, f"the sync engine is not available ({exc})"
    scheduler = SyncScheduler(ctx, after_pass=after_pass)
    scheduler.start()
    return scheduler, None


def open_runtime(
    settings: Settings,
    before_sync: Callable[[ServiceContext], None] | None = None,
    after_pass: AfterPass = (),
) -> Runtime:
    """Open and migrate the database, run before_sync on it (the demo seeds there), then start
    the sync scheduler, which runs the after_pass tasks after each full pass (the services'
    policies: the scheduler sits below the services and cannot import them)."""
    ctx = ServiceContext.open(settings)
    try:
        if before_sync is not None:
            before_sync(ctx)
    except BaseException:
        ctx.db.close()
        raise
    scheduler, problem = _start_scheduler(ctx, after_pass)
    return Runtime(settings, ctx, scheduler, scheduler_problem=problem)


_lock = threading.Lock()
_current: Runtime | None = None
_refusal: tuple[str, ...] | None = None


def install_runtime(runtime: Runtime | None) -> None:
    """Make this runtime the process's (None forgets it; the caller closes the old one)."""
    global _current, _refusal
    with _lock:
        _current, _refusal = runtime, None


def current_runtime() -> Runtime | None:
    """The runtime the server's lifespan opened, if any."""
    with _lock:
        return _current


def refuse_runtime(problems: list[str]) -> None:
    """Record that the server's lifespan opened no runtime, and why (unsafe settings)."""
    global _current, _refusal
    with _lock:
        _current, _refusal = None, tuple(problems)


def runtime_refusal() -> list[str] | None:
    """Why the server's lifespan refused to open a runtime; None when it did not refuse (or when
    no server lifespan runs in this process, as under AppTest or `streamlit run app.py`)."""
    with _lock:
        return None if _refusal is None else list(_refusal)
