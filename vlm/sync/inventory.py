"""Inventory pull: feature totals and reservation groups of one server into DuckDB, in one write."""

from __future__ import annotations

import threading
import time
from concurrent.futures import wait
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple

import duckdb
import pandas as pd

from vlm.context import ServiceContext
from vlm.flexnet import FeatureTotal, FlexNetClient, FlexNetError
from vlm.flexnet.group_answer import GroupsAnswer
from vlm.flexnet.usage import Sighting
from vlm.store.answer_digest import digests_comparable
from vlm.store.features import (
    FEATURE_DTYPES,
    insert_changed_snapshots,
    insert_snapshots,
    mark_absent_features,
    stored_features,
    update_features_by_id,
    update_reserved_by_others,
    upsert_features,
)
from vlm.store.figures import COUNTED, license_kind
from vlm.store.frames import frame
from vlm.store.hourly import add_moves_to_hourly, add_pull_to_hourly
from vlm.store.reservations import MirrorSummary, mirror_summary, replace_mirror
from vlm.store.servers import (
    kept_mirror_digest,
    record_server_error,
    record_server_success,
    set_mirror_digest,
)
from vlm.store.usage import record_sightings
from vlm.sync import drift
from vlm.sync.clients import ServerConfigError, borrowed_client, server_lock
from vlm.sync.helper_threads import on_helper_thread
from vlm.sync.mirror import answer_mirror_rows, mirror_table
from vlm.sync.observed import (
    Observation,
    answer_proves_nothing_new,
    proves_nothing_new,
    record_observation,
)


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
    observation: Observation | None = None
    duration_s: float = 0.0
    usage_error: str | None = None


def foreign_counts(rows: list[tuple]) -> dict[tuple[str, str], int]:
    """Counts reserved by groups VLM does not own, per (feature name, version)."""
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        if not row[3] and row[10]:
            key = (row[8], row[9])
            counts[key] = counts.get(key, 0) + row[10]
    return counts


def feature_rows(totals: list[FeatureTotal], others: dict[tuple[str, str], int]) -> list[tuple]:
    """One row (FEATURE_DTYPES order) per (name, version) with reserved_by_others from the
    foreign groups' entries."""
    return [
        (t.name, t.version, t.total, t.used, t.reserved, int(others.get((t.name, t.version), 0)))
        + (t.concurrent, t.uncounted, t.metered, t.expiry, t.slices)
        for t in totals
    ]


@dataclass(frozen=True)
class FeatureChanges:
    """What a pull must write for one server's features, found by comparing with the DB:
    `changed` rows (feature_rows order), `absent` keys, the `stored` rows compared with, and
    `by_id` the (stored row, row) pairs of the changed rows when they can be written by id."""

    changed: list[tuple]
    absent: list[tuple[str, str]]
    stored: list[tuple]
    by_id: list[tuple[tuple, tuple]] | None

    @property
    def empty(self) -> bool:
        return not self.changed and not self.absent

    @property
    def moves_drift_inputs(self) -> bool:
        """Whether writing them moves a column the drift report reads (vlm.store.drift: a
        feature's id, name, version, total, reserved_by_others): a feature new, back or absent,
        or a stored one whose total or reserved_by_others changed."""
        if self.by_id is None:
            return not self.empty
        return any(old[3] != row[2] or old[6] != row[5] for old, row in self.by_id)

    def changed_frame(self) -> pd.DataFrame:
        """The changed rows as a frame (FEATURE_DTYPES)."""
        return frame(self.changed, FEATURE_DTYPES)

    def previous(self) -> pd.DataFrame:
        """The stored (id, total, used, reserved) of every feature (PREVIOUS_DTYPES)."""
        return frame([(row[0], row[3], row[4], row[5]) for row in self.stored], PREVIOUS_DTYPES)


PREVIOUS_DTYPES = {"id": "int64", "total": "int64", "used": "int64", "reserved": "int64"}


def feature_changes(stored: list[tuple], rows: list[tuple]) -> FeatureChanges:
    """The feature rows (feature_rows) that are new or differ from `stored` (stored_features),
    and the stored features the server no longer lists (still present or with non-zero figures)."""
    known = {(row[1], row[2]): row for row in stored}
    changed = [
        row
        for row in rows
        if (old := known.get((row[0], row[1]))) is None or not old[12] or old[1:12] != row
    ]
    listed = {(row[0], row[1]) for row in rows}
    absent = [
        key
        for key, old in known.items()
        if key not in listed and (old[12] or old[3] or old[4] or old[5])
    ]
    by_id = None if absent or len(listed) < len(rows) else _changed_by_id(known, changed)
    return FeatureChanges(changed, absent, stored, by_id)


def _kind(flags: tuple) -> str:
    """The license kind of a feature from its (concurrent, uncounted, metered) flags."""
    concurrent, uncounted, metered = flags
    return license_kind(
        concurrent=bool(concurrent), uncounted=bool(uncounted), metered=bool(metered)
    )


def _changed_by_id(
    known: dict[tuple[str, str], tuple], changed: list[tuple]
) -> list[tuple[tuple, tuple]] | None:
    """(stored row, row) of each changed row, when every one is a feature stored as present
    whose license kind stays; else None (a new feature, one back, or a change of kind)."""
    pairs = []
    for row in changed:
        old = known.get((row[0], row[1]))
        if old is None or not old[12] or _kind(old[7:10]) != _kind(row[6:9]):
            return None
        pairs.append((old, row))
    return pairs


def store_feature_changes(cur: duckdb.DuckDBPyConnection, server_id: int, rows: list[tuple]) -> int:
    """Write the features that changed (and mark the ones gone); returns the snapshots added."""
    return write_feature_changes(
        cur, server_id, feature_changes(stored_features(cur, server_id), rows)
    )


def write_feature_changes(
    cur: duckdb.DuckDBPyConnection, server_id: int, changes: FeatureChanges
) -> int:
    """Write changes found by feature_changes; returns the snapshots added."""
    if changes.empty:
        return 0
    if changes.by_id is not None:
        return store_changes_by_id(cur, server_id, changes.by_id)
    return store_changes_in_full(cur, server_id, changes)


def store_changes_in_full(
    cur: duckdb.DuckDBPyConnection, server_id: int, changes: FeatureChanges
) -> int:
    """The general path: upsert the changed rows, mark the absent ones, snapshot what moved by
    comparing with the stored figures, and add it to the hourly summaries from a fresh read."""
    upsert_features(cur, server_id, changes.changed_frame())
    mark_absent_features(cur, server_id, changes.absent)
    added = insert_changed_snapshots(cur, server_id, changes.previous())
    add_pull_to_hourly(cur, server_id, changes.stored)
    return added


def store_changes_by_id(
    cur: duckdb.DuckDBPyConnection, server_id: int, pairs: list[tuple[tuple, tuple]]
) -> int:
    """Update features already stored by id and snapshot and summarise their moves from the
    figures held (FeatureChanges.by_id): the same rows as the general path, fewer statements."""
    update_features_by_id(cur, [(old[0], *row[2:]) for old, row in pairs])
    moved = [(old, row) for old, row in pairs if old[3:6] != row[2:5]]
    added = insert_snapshots(cur, [(old[0], *row[2:5]) for old, row in moved])
    changes = [_hourly_change(old, row) for old, row in moved]
    counted = [
        change
        for change, (_, row) in zip(changes, moved, strict=True)
        if _kind(row[6:9]) == COUNTED
    ]
    add_moves_to_hourly(cur, server_id, changes, counted)
    return added


def _hourly_change(old: tuple, row: tuple) -> tuple:
    """A moved feature's figures now and their move since the stored ones (CHANGE_TYPES order
    of vlm.store.hourly)."""
    figures = row[2:5]
    moves = (now - before for now, before in zip(figures, old[3:6], strict=True))
    return (old[0], *figures, *moves, False)


@dataclass(frozen=True)
class _StoredInventory:
    """What the last pull of a server stored, with the fingerprints of the answers it came from."""

    groups_fingerprint: str | None
    features_fingerprint: str
    totals: list[FeatureTotal]
    others: dict[tuple[str, str], int]
    groups: int
    owned: int
    usage_fingerprint: str | None = None


# The features fingerprint remembered when only the groups were read: no answer has it, so the
# next pull reads, compares and stores the features in full.
FEATURES_NOT_READ = ""


class StoredInventories:
    """What the last pull of each server of one context's database stored (ctx.owned)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_server: dict[int, _StoredInventory] = {}

    def last(self, server_id: int) -> _StoredInventory | None:
        with self._lock:
            return self._by_server.get(server_id)

    def remember(self, server_id: int, stored: _StoredInventory) -> None:
        with self._lock:
            self._by_server[server_id] = stored

    def forget(self, server_id: int) -> None:
        with self._lock:
            self._by_server.pop(server_id, None)


def forget_stored_inventory(ctx: ServiceContext, server_id: int) -> None:
    """The server's rows were written elsewhere: the next pull compares and rewrites in full."""
    ctx.owned(StoredInventories).forget(server_id)


def _last_stored(ctx: ServiceContext, server_id: int) -> _StoredInventory | None:
    return ctx.owned(StoredInventories).last(server_id)


def kept_digest(ctx: ServiceContext, server_id: int, instance_id: str | None) -> str | None:
    """After a restart: the digest of the groups answer the stored mirror came from, when it was
    read with today's prefix from the same server instance (else None: parse in full)."""
    kept = kept_mirror_digest(ctx.db, server_id)
    if kept is None:
        return None
    digest, prefix, stored_instance = kept
    if prefix != ctx.settings.group_prefix or stored_instance != instance_id:
        return None
    return digest


def kept_inventory(
    ctx: ServiceContext, server_id: int, digest: str, summary: MirrorSummary | None = None
) -> _StoredInventory:
    """What the stored mirror says (its `summary`, read here when not given), for a groups
    answer it holds (its digest matched kept_digest, or its rows the mirror's)."""
    others, groups, owned = summary or mirror_summary(ctx.db, server_id)
    stored = _StoredInventory(digest, FEATURES_NOT_READ, [], others, groups, owned)
    ctx.owned(StoredInventories).remember(server_id, stored)
    return stored


class GroupsRead(NamedTuple):
    """A read of a server's groups: the answer (None when it is the one the stored mirror came
    from), its fingerprint, the last pull it is compared with, and whether the stored mirror
    was just found to hold this answer (its digest is then stored with the mirror's next write)."""

    answer: GroupsAnswer | None
    fingerprint: str | None
    last: _StoredInventory | None
    adopted: bool = False


def _read_groups(
    ctx: ServiceContext,
    server_id: int,
    api: FlexNetClient,
    last: _StoredInventory | None,
    instance_id: str | None,
    fetched: tuple[bytes, str] | None = None,
) -> GroupsRead:
    """The groups answer (`fetched`: its bytes and fingerprint, when already read), unless it
    is the one the last pull stored, or after a restart the one the kept mirror came from.
    With neither known (the reconciler wrote the mirror since), an answer whose rows equal the
    stored mirror's (by digest, observed.answer_proves_nothing_new) is not decoded either, and
    its fingerprint is adopted as the mirror's."""
    kept = None if last else kept_digest(ctx, server_id, instance_id)
    body, fingerprint = fetched if fetched is not None else api.group_answer_bytes()
    if fingerprint == (last.groups_fingerprint if last else kept):
        return GroupsRead(None, fingerprint, last or kept_inventory(ctx, server_id, fingerprint))
    if last is None and kept is None and digests_comparable(ctx.db):
        summary = _summary_if_held(ctx, server_id, body, instance_id)
        if summary is not None:
            held = kept_inventory(ctx, server_id, fingerprint, summary)
            return GroupsRead(None, fingerprint, held, adopted=True)
    answer, fingerprint = api.decode_group_answer(body, fingerprint)
    return GroupsRead(answer, fingerprint, last)


def _summary_if_held(
    ctx: ServiceContext, server_id: int, body: bytes, instance_id: str | None
) -> MirrorSummary | None:
    """The stored mirror's summary when it holds exactly the answer's rows (by digest,
    observed.answer_proves_nothing_new), else None; read on a helper thread meanwhile."""
    summary = on_helper_thread(mirror_summary, ctx.db, server_id)
    try:
        prefix = ctx.settings.group_prefix
        held = answer_proves_nothing_new(ctx.db, server_id, body, prefix, instance_id)
    finally:
        wait((summary,))
    return summary.result() if held else None


@dataclass(frozen=True)
class _Answers:
    """The server's two answers; a part is None when its fingerprint matched the last pull."""

    totals: list[FeatureTotal] | None
    features_fingerprint: str
    groups: GroupsAnswer | None
    groups_fingerprint: str | None
    groups_adopted: bool
    latency_ms: float
    instance_id: str | None
    usage: set[Sighting] | None
    usage_fingerprint: str | None
    usage_error: str | None


def instance_id_of(api: FlexNetClient) -> str | None:
    """The server's instance id from /health (None when it does not say)."""
    value = api.health().get("serverInstanceID")
    return None if value in (None, "") else str(value)


def _timed_feature_totals(
    api: FlexNetClient, last: _StoredInventory | None
) -> tuple[list[FeatureTotal] | None, str, float]:
    """The feature totals (None when the answer is the last pull's), their fingerprint, and how
    long the server took to answer (ms)."""
    started = time.perf_counter()
    totals, fingerprint = api.fingerprinted_feature_totals(
        active_only=True, unless=last.features_fingerprint if last else None
    )
    return totals, fingerprint, (time.perf_counter() - started) * 1000.0


def _fetch(
    ctx: ServiceContext, server_id: int, api: FlexNetClient, last: _StoredInventory | None
) -> tuple[_Answers, _StoredInventory | None]:
    """The server's answers, and the last pull they are compared with (after a restart, what
    the database kept when the groups answer is the one the stored mirror came from).

    The four GETs go out at once: features, health and usage on helper threads while this
    thread reads the groups answer, so a pull waits about one round trip, not four. What is
    done with the answers (decoding, comparing with the database) follows, in order."""
    features = on_helper_thread(_timed_feature_totals, api, last)
    health = on_helper_thread(instance_id_of, api)
    usage = on_helper_thread(_read_usage, api, last)
    try:
        fetched = api.group_answer_bytes()
    finally:
        wait((features, health, usage))
    totals, features_fp, latency_ms = features.result()
    instance_id = health.result()
    groups = _read_groups(ctx, server_id, api, last, instance_id, fetched)
    usage_read, usage_fp, usage_error = usage.result()
    answers = _Answers(
        totals,
        features_fp,
        groups.answer,
        groups.fingerprint,
        groups.adopted,
        latency_ms,
        instance_id,
        usage_read,
        usage_fp,
        usage_error,
    )
    return answers, groups.last


def _read_usage(
    api: FlexNetClient, last: _StoredInventory | None
) -> tuple[set[Sighting] | None, str | None, str | None]:
    """Who holds which feature now (None when the answer is the last pull's, or could not be
    read: usage is secondary, so its failure is reported without failing the pull)."""
    try:
        usage, fingerprint = api.fingerprinted_usage(
            unless=last.usage_fingerprint if last else None
        )
    except FlexNetError as exc:
        return None, None, f"who is using the features could not be read: {exc}"
    return usage, fingerprint or None, None


def _groups_seen(
    answer: GroupsAnswer, rows: list[tuple], prefix: str
) -> tuple[dict[tuple[str, str], int], int, int]:
    """What a groups answer says: the counts others reserve per feature, how many groups there
    are and how many of them are VLM's."""
    names = answer.names()
    owned = sum(1 for name in names if name.startswith(prefix))
    return foreign_counts(rows), len(names), owned


def _inventory_seen(
    server_id: int, answers: _Answers, last: _StoredInventory | None, prefix: str
) -> tuple[_StoredInventory, list[tuple] | None]:
    """What this pull saw (answers completed from the last pull where unchanged) and the
    reservation mirror rows to store (None when the groups answer is unchanged)."""
    rows = None
    if answers.groups is None and last is not None:
        others, groups, owned = last.others, last.groups, last.owned
    else:
        answer = answers.groups or GroupsAnswer(raw=[])
        rows = answer_mirror_rows(server_id, answer, prefix)
        others, groups, owned = _groups_seen(answer, rows, prefix)
    totals = answers.totals if answers.totals is not None else (last.totals if last else [])
    usage_fingerprint = answers.usage_fingerprint
    if answers.usage is None and answers.usage_error is None and last is not None:
        usage_fingerprint = last.usage_fingerprint
    seen = _StoredInventory(
        answers.groups_fingerprint,
        answers.features_fingerprint,
        totals,
        others,
        groups,
        owned,
        usage_fingerprint,
    )
    return seen, rows


def _store_read(
    cur: duckdb.DuckDBPyConnection,
    server_id: int,
    prefix: str,
    rows: list[tuple],
    instance_id: str | None,
) -> Observation | None:
    """Store what a full read of the groups proves and its mirror; None (nothing written) when
    it equals the stored mirror (vlm.sync.observed.proves_nothing_new)."""
    table = mirror_table(rows)
    if proves_nothing_new(cur, server_id, rows, table, instance_id):
        return None
    observation = record_observation(cur, server_id, prefix, rows, instance_id)
    replace_mirror(cur, server_id, table)
    return observation


def pull_inventory(
    ctx: ServiceContext, server_id: int, client: FlexNetClient | None = None
) -> InventoryResult:
    """Read features and reservation groups of one server and store what changed; errors are
    recorded. Answers byte-identical to the last pull's (after a restart: a groups answer with
    the digest the stored mirror came from) are neither parsed nor compared."""
    started = time.perf_counter()
    with server_lock(ctx, server_id):
        last = _last_stored(ctx, server_id)
        reading_ahead = on_helper_thread(drift.read_inputs_ahead, ctx, server_id)
        try:
            with borrowed_client(ctx, server_id, client) as api:
                answers, last = _fetch(ctx, server_id, api, last)
        except (FlexNetError, ServerConfigError) as exc:
            wait((reading_ahead,))
            message = str(exc)
            ctx.db.write(lambda cur: record_server_error(cur, server_id, message, None))
            return InventoryResult(
                server_id, False, message, duration_s=time.perf_counter() - started
            )
        ahead = reading_ahead.result()
        prefix = ctx.settings.group_prefix
        seen, mirror_rows_seen = _inventory_seen(server_id, answers, last, prefix)
        unchanged = answers.totals is None and mirror_rows_seen is None

        def store(cur: duckdb.DuckDBPyConnection) -> tuple[int, int, Observation | None]:
            added = 0
            observation = None
            inputs_moved = False
            if mirror_rows_seen is not None:
                observation = _store_read(
                    cur, server_id, prefix, mirror_rows_seen, answers.instance_id
                )
                inputs_moved = observation is not None
            if not unchanged:
                rows = feature_rows(seen.totals, seen.others)
                changes = feature_changes(stored_features(cur, server_id), rows)
                added = write_feature_changes(cur, server_id, changes)
                inputs_moved = inputs_moved or changes.moves_drift_inputs
            if answers.usage is not None:
                record_sightings(cur, server_id, answers.usage, datetime.now())
            digest = None
            if mirror_rows_seen is not None or answers.groups_adopted:
                digest = (answers.groups_fingerprint, prefix)
            record_server_success(cur, server_id, answers.latency_ms, digest)
            kept_inputs = None if inputs_moved else ahead
            return added, drift.store_conflicts(ctx, server_id, kept_inputs), observation

        added, conflicts, observation = ctx.db.write(store)
        ctx.owned(StoredInventories).remember(server_id, seen)
    return InventoryResult(
        server_id=server_id,
        ok=True,
        features=len(seen.totals),
        groups=seen.groups,
        owned_groups=seen.owned,
        snapshots_added=added,
        conflicts=conflicts,
        latency_ms=answers.latency_ms,
        duration_s=time.perf_counter() - started,
        observation=observation,
        usage_error=answers.usage_error,
    )


def read_reservations(
    ctx: ServiceContext, server_id: int, client: FlexNetClient
) -> Observation | None:
    """Read every reservation group of one server and store what the read proves (see
    vlm.sync.observed); None when the answer is byte-identical to the last pull's, or equals
    the stored mirror row for row: that mirror is then still the server's state. The reconciler
    plans from this read; what it stored becomes the last pull's groups, so an unchanged server
    is not parsed again next pass."""
    last = _last_stored(ctx, server_id)
    instance_id = instance_id_of(client)
    raw, fingerprint, last, adopted = _read_groups(ctx, server_id, client, last, instance_id)
    prefix = ctx.settings.group_prefix
    if raw is None:
        if adopted:
            ctx.db.write(lambda cur: set_mirror_digest(cur, server_id, fingerprint, prefix))
        return None
    rows = answer_mirror_rows(server_id, raw, prefix)

    def store(cur: duckdb.DuckDBPyConnection) -> Observation | None:
        observation = _store_read(cur, server_id, prefix, rows, instance_id)
        set_mirror_digest(cur, server_id, fingerprint, prefix)
        if observation is not None:
            update_reserved_by_others(cur, server_id)
        return observation

    observation = ctx.db.write(store)
    others, groups, owned = _groups_seen(raw, rows, prefix)
    base = last or _StoredInventory(None, FEATURES_NOT_READ, [], {}, 0, 0)
    refreshed = replace(
        base, groups_fingerprint=fingerprint, others=others, groups=groups, owned=owned
    )
    ctx.owned(StoredInventories).remember(server_id, refreshed)
    return observation
