"""The dependencies every service function receives: store, settings, secrets and the sync hook."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from vlm.config import Settings
from vlm.secret_box import SecretBox
from vlm.store import Database, leadership, open_database

T = TypeVar("T")
log = logging.getLogger(__name__)


def _ignore_change(server_ids: Iterable[int]) -> None:
    """Default change hook: nothing listens."""


@dataclass
class ServiceContext:
    """Injected into services; the sync scheduler sets on_allocations_changed to push at once."""

    db: Database
    settings: Settings
    secrets: SecretBox
    on_allocations_changed: Callable[[Iterable[int]], None] = field(default=_ignore_change)
    # The calendar day allocations' start and end days are compared with (tests move it on).
    today: Callable[[], date] = field(default=date.today, repr=False, compare=False)
    _owned: dict[type, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _owned_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def owned(self, kind: type[T]) -> T:
        """This context's one instance of kind (caches and locks that live as long as its db)."""
        with self._owned_lock:
            if kind not in self._owned:
                self._owned[kind] = kind()
            return self._owned[kind]

    @classmethod
    def open(cls, settings: Settings) -> ServiceContext:
        """Open and migrate the settings' database and build a context around it."""
        db = open_database(settings.database, memory_limit=settings.db_memory_limit)
        return cls(db, settings, SecretBox(settings.secret_key))

    def allocations_changed(self, server_ids: Iterable[int]) -> None:
        """Tell the reconciler which servers have new desired state (call it after the write
        commits): on PostgreSQL every replica's save reaches the leader through NOTIFY, and the
        local hook hears it in any case."""
        ids = {int(s) for s in server_ids}
        if not ids:
            return
        if getattr(self.db, "dialect", "duckdb") == "postgres":
            self._announce(ids)
        self.on_allocations_changed(ids)

    def _announce(self, ids: set[int]) -> None:
        """NOTIFY the sync leader; the save stands even when this fails (the leader's next full
        pass applies it)."""
        try:
            leadership.announce_changes(self.db, ids)
        except Exception:  # noqa: BLE001 - the write has committed; only the wake-up is lost
            log.exception("could not wake the sync leader for servers %s", sorted(ids))
