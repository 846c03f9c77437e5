"""The trend cache belongs to its service context: no module global, cleared per context."""

from __future__ import annotations

import pandas as pd

from tests.conftest import ADMIN
from vlm.services import reports
from vlm.services.reports import TrendCache
from vlm.store import Database, open_database


class Counter:
    """A compute function that counts its calls and returns a frame numbered by the call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> pd.DataFrame:
        self.calls += 1
        return pd.DataFrame({"call": [self.calls]})


def test_each_context_owns_one_trend_cache(ctx, tmp_path) -> None:
    assert ctx.owned(TrendCache) is ctx.owned(TrendCache)
    other = type(ctx)(open_database(str(tmp_path / "other.duckdb")), ctx.settings, ctx.secrets)
    try:
        assert other.owned(TrendCache) is not ctx.owned(TrendCache)
    finally:
        other.db.close()
    assert not hasattr(reports, "_TREND_CACHE")


def test_clear_caches_forgets_the_contexts_trends(ctx, frame_reads) -> None:
    calls = frame_reads
    reports.server_trend(ctx, ADMIN, None, days=1)
    reports.server_trend(ctx, ADMIN, None, days=1)
    assert len(calls) == 1
    reports.clear_caches(ctx)
    reports.server_trend(ctx, ADMIN, None, days=1)
    assert len(calls) == 2


def test_a_write_invalidates_and_a_copy_is_handed_out() -> None:
    db = Database(":memory:")
    cache, compute = TrendCache(), Counter()
    try:
        first = cache.get_or_compute(db, ("k",), compute)
        first.loc[0, "call"] = 99
        assert cache.get_or_compute(db, ("k",), compute)["call"].tolist() == [1]
        db.write(lambda cur: None)
        assert cache.get_or_compute(db, ("k",), compute)["call"].tolist() == [2]
        assert compute.calls == 2
    finally:
        db.close()


def test_the_oldest_entry_goes_when_the_cache_is_full() -> None:
    db = Database(":memory:")
    cache, compute = TrendCache(size=2), Counter()
    try:
        for key in ("a", "b", "c"):
            cache.get_or_compute(db, (key,), compute)
        assert cache.get_or_compute(db, ("c",), compute)["call"].tolist() == [3]
        assert cache.get_or_compute(db, ("b",), compute)["call"].tolist() == [2]
        assert cache.get_or_compute(db, ("a",), compute)["call"].tolist() == [4]
    finally:
        db.close()


def test_the_dashboards_sums_read_the_server_figures_once_per_write(ctx, frame_reads) -> None:
    calls = frame_reads
    before = reports.kpis(ctx, ADMIN)
    reports.server_stack(ctx, ADMIN)
    reports.vlm_stack(ctx, ADMIN)
    reports.over_committed(ctx, ADMIN)
    reports.license_kinds(ctx, ADMIN)
    figures_reads = [sql for sql in calls if "reserved_by_others" in sql and "vlm_features" in sql]
    assert len(figures_reads) == 1
    ctx.db.write(
        lambda cur: cur.execute(
            "INSERT INTO license_servers (name, base_url, username) VALUES ('x', 'http://x', 'a')"
        )
    )
    assert reports.kpis(ctx, ADMIN)["servers"] == before["servers"] + 1
    figures_reads = [sql for sql in calls if "reserved_by_others" in sql and "vlm_features" in sql]
    assert len(figures_reads) == 2, "a write moves the generation: the figures are read again"
