"""Inventory pull: feature totals and reservation groups of one server into DuckDB, in one write."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from vlm.flexnet import FeatureTotal, FlexNetClient, FlexNetError, ReservationGroup
from vlm.flexnet.models import flatten_groups
from vlm.services.context import ServiceContext
from vlm.sync import drift
from vlm.sync import store_queries as q
from vlm.sync.clients import ServerConfigError, borrowed_client, server_lock


@dataclass(frozen=True)
class InventoryResult:
    """What one inventory pull found (or the error that stopped it)."""

    server_id: int
    ok: bool
    error: str | None = None
    features: int = 0
    groups: int = 0
    owned_groups: int = 0
    snapshots_added: int = 0
    conflicts: int = 0
    latency_ms: float | None = None
    duration_s: float = 0.0


def _flatten_parsed(groups: Iterable[ReservationGroup]) -> Iterator[tuple]:
    """The rows flatten_groups gives for JSON, from parsed groups."""
    for group in groups:
        head = (group.id, group.name)
        if not group.reservations:
            yield head
        for res in group.reservations:
            reservation = (*head, res.id, res.host_id.type, res.host_id.value)
            if not res.entries:
                yield reservation
            for e in res.entries:
                yield (*reservation, e.id, e.feature_name, e.feature_version, e.count, e.state)


def mirror_rows(server_id: int, groups: Iterable[ReservationGroup], prefix: str) -> list[tuple]:
    """Mirror rows (MIRROR_COLUMNS order) of parsed groups."""
    return _mirror_rows(server_id, _flatten_parsed(groups), prefix)


def raw_mirror_rows(
    server_id: int, raw_groups: Iterable[Mapping[str, Any]], prefix: str
) -> list[tuple]:
    """Mirror rows (MIRROR_COLUMNS order) straight from the server's JSON."""
    return _mirror_rows(server_id, flatten_groups(raw_groups), prefix)


def _mirror_rows(server_id: int, flats: Iterable[tuple], prefix: str) -> list[tuple]:
    """Mirror rows from flattened groups; a group is owned when its name has the prefix.

    A reservation without entries, or a group without reservations, is kept as one placeholder
    row (empty feature name, count 0) so that its existence is remembered.
    """
    rows: list[tuple] = []
    owned: dict[str, bool] = {}
    for flat in flats:
        name = flat[1]
        mine = owned.get(name)
        if mine is None:
            mine = owned[name] = name.startswith(prefix)
        if len(flat) == 10:
            rows.append((server_id, flat[0], name, mine, *flat[2:]))
        elif len(flat) == 5:
            rows.append((server_id, flat[0], name, mine, *flat[2:], None, "", "", 0, None))
        else:
            rows.append((server_id, flat[0], name, mine, None, "", "", None, "", "", 0, None))
    return rows


def mirror_frame(server_id: int, groups: Iterable[ReservationGroup], prefix: str) -> pd.DataFrame:
    return q.frame(mirror_rows(server_id, groups, prefix), q.MIRROR_DTYPES)


def raw_mirror_frame(
    server_id: int, raw_groups: Iterable[Mapping[str, Any]], prefix: str
) -> pd.DataFrame:
    return q.frame(raw_mirror_rows(server_id, raw_groups, prefix), q.MIRROR_DTYPES)


def foreign_counts(mirror: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Counts reserved by groups VLM does not own, per (feature name, version)."""
    foreign = mirror[~mirror["owned"]]
    return foreign.groupby(["feature_name", "feature_version"])["count"].sum().to_dict()


def feature_frame(totals: list[FeatureTotal], others: dict[tuple[str, str], int]) -> pd.DataFrame:
    """One row per (name, version) with reserved_by_others from the foreign groups' entries."""
    rows = [
        (t.name, t.version, t.total, t.used, t.reserved, int(others.get((t.name, t.version), 0)))
        + (t.concurrent, t.uncounted, t.metered, t.expiry, t.slices)
        for t in totals
    ]
    return q.frame(rows, q.FEATURE_DTYPES)


@dataclass(frozen=True)
class _StoredGroups:
    """What the last pull stored for a server's reservation groups, by answer fingerprint."""

    fingerprint: str
    others: dict[tuple[str, str], int]
    groups: int
    owned: int


_stored_groups: dict[tuple[str, int], _StoredGroups] = {}
_stored_lock = threading.Lock()


def forget_stored_groups(ctx: ServiceContext, server_id: int) -> None:
    """The mirror of a server was written elsewhere: the next pull rebuilds it in full."""
    with _stored_lock:
        _stored_groups.pop((ctx.db.path, server_id), None)


def _unchanged_groups(
    ctx: ServiceContext, server_id: int, fingerprint: str | None
) -> _StoredGroups | None:
    with _stored_lock:
        stored = _stored_groups.get((ctx.db.path, server_id))
    return (
        stored if fingerprint is not None and stored and stored.fingerprint == fingerprint else None
    )


def _fetch(
    api: FlexNetClient,
) -> tuple[list[FeatureTotal], list[dict[str, Any]], str | None, float]:
    t0 = time.perf_counter()
    totals = api.feature_totals(active_only=True)
    latency_ms = (time.perf_counter() - t0) * 1000.0
    groups, fingerprint = api.fingerprinted_reservation_groups()
    return totals, groups, fingerprint, latency_ms


def pull_inventory(
    ctx: ServiceContext, server_id: int, client: FlexNetClient | None = None
) -> InventoryResult:
    """Read features and reservation groups of one server and store them; errors are recorded."""
    started = time.perf_counter()
    with server_lock(ctx.db, server_id):
        try:
            with borrowed_client(ctx, server_id, client) as api:
                totals, groups, fingerprint, latency_ms = _fetch(api)
        except (FlexNetError, ServerConfigError) as exc:
            message = str(exc)
            ctx.db.write(lambda cur: q.record_server_error(cur, server_id, message, None))
            return InventoryResult(
                server_id, False, message, duration_s=time.perf_counter() - started
            )
        prefix = ctx.settings.group_prefix
        unchanged = _unchanged_groups(ctx, server_id, fingerprint)
        if unchanged is None:
            mirror = raw_mirror_frame(server_id, groups, prefix)
            owned = sum(1 for g in groups if str(g.get("name", "")).startswith(prefix))
            seen = _StoredGroups(fingerprint or "", foreign_counts(mirror), len(groups), owned)
        else:
            mirror, seen = None, unchanged
        features = feature_frame(totals, seen.others)

        def store(cur: duckdb.DuckDBPyConnection) -> tuple[int, int]:
            if mirror is not None:
                q.replace_mirror(cur, server_id, mirror)
            previous = q.feature_figures(cur, server_id)
            q.upsert_features(cur, server_id, features)
            q.mark_absent_features(cur, server_id, features)
            added = q.insert_changed_snapshots(cur, server_id, previous)
            q.record_server_success(cur, server_id, latency_ms)
            return added, drift.store_conflicts(ctx, server_id)

        added, conflicts = ctx.db.write(store)
        with _stored_lock:
            if fingerprint is None:
                _stored_groups.pop((ctx.db.path, server_id), None)
            else:
                _stored_groups[(ctx.db.path, server_id)] = seen
    return InventoryResult(
        server_id=server_id,
        ok=True,
        features=len(totals),
        groups=seen.groups,
        owned_groups=seen.owned,
        snapshots_added=added,
        conflicts=conflicts,
        latency_ms=latency_ms,
        duration_s=time.perf_counter() - started,
    )


def refresh_reservations(ctx: ServiceContext, server_id: int, client: FlexNetClient) -> int:
    """Re-read every reservation group of one server into the mirror; returns the group count."""
    groups = client.reservation_groups_with_reservations()
    mirror = mirror_frame(server_id, groups, ctx.settings.group_prefix)

    def store(cur: duckdb.DuckDBPyConnection) -> None:
        q.replace_mirror(cur, server_id, mirror)
        q.update_reserved_by_others(cur, server_id)

    ctx.db.write(store)
    forget_stored_groups(ctx, server_id)
    return len(groups)
