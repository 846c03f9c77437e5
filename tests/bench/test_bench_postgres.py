"""The benchmark on PostgreSQL: the tiny estate loaded into the benchmark's own server, scenarios
run on a copy of it, and one report with both backends side by side."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import threading
from pathlib import Path

import psycopg
import pytest

from bench.postgres import ESTATE_DATABASE, BenchPostgres
from bench.runner import BACKENDS, run_backends
from bench.sizes import TINY
from tests.conftest import BACKENDS as TEST_BACKENDS

pytestmark = pytest.mark.skipif(
    "postgres" not in TEST_BACKENDS, reason="the PostgreSQL half is off (VLM_TEST_BACKENDS)"
)

SCENARIOS = ("apply", "reconcile", "dashboard", "export")
EXPECTED = (
    "one allocation saved",
    "reconciler steady state",
    "trend of one pool",
    "CSV export of all",
)


@pytest.fixture
def cache_root() -> Path:
    """A cache folder the `postgres` user can reach (pytest's own tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="vlm-bench-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_both_backends_report_the_same_rows_side_by_side(tmp_path, cache_root) -> None:
    output = tmp_path / "latest.md"
    results = run_backends(
        TINY,
        BACKENDS,
        only=SCENARIOS,
        cache_root=cache_root,
        output=output,
        log=lambda _: None,
    )
    duckdb_rows, postgres_rows = results["duckdb"], results["postgres"]
    assert [r.scenario for r in postgres_rows] == [r.scenario for r in duckdb_rows]
    for expected in EXPECTED:
        assert any(expected in row.scenario for row in postgres_rows), expected
    for row in postgres_rows:
        assert row.samples and all(math.isfinite(v) and v > 0 for v in row.samples), row
    text = output.read_text(encoding="utf-8")
    assert "| scenario | target | DuckDB | met | PostgreSQL | met | PostgreSQL ÷ DuckDB |" in text
    assert "## DuckDB" in text and "## PostgreSQL" in text and "fsync=on" in text
    raw = json.loads(output.with_suffix(".json").read_text(encoding="utf-8"))
    assert sorted(raw["backends"]) == ["duckdb", "postgres"]
    assert len(raw["backends"]["postgres"]) == len(postgres_rows)


def test_the_loaded_estate_is_reused_and_each_run_gets_a_fresh_copy(cache_root) -> None:
    log: list[str] = []
    run_backends(
        TINY, ("postgres",), only=("reconcile",), cache_root=cache_root, output=None, log=log.append
    )
    assert any("loading the estate into PostgreSQL" in line for line in log)
    estate_dir = next(cache_root.glob("tiny-*"))
    with BenchPostgres(estate_dir / "postgres", log.append) as server:
        from vlm.store import open_database

        work = open_database(server.working_copy())
        try:
            work.write(lambda cur: cur.execute("DELETE FROM allocations"))
            assert work.scalar("SELECT COUNT(*) FROM allocations") == 0
        finally:
            work.close()
        again = open_database(server.working_copy())
        estate = open_database(server.url(ESTATE_DATABASE))
        try:
            count = estate.scalar("SELECT COUNT(*) FROM allocations")
            assert count > 0
            assert again.scalar("SELECT COUNT(*) FROM allocations") == count
        finally:
            again.close()
            estate.close()
    log.clear()
    run_backends(
        TINY, ("postgres",), only=("reconcile",), cache_root=cache_root, output=None, log=log.append
    )
    assert not any("loading the estate" in line for line in log)


def test_a_second_run_waits_for_the_first_instead_of_stopping_its_server(cache_root) -> None:
    first = BenchPostgres(cache_root / "estate" / "postgres", log=lambda _: None)
    first.start()
    waiting = threading.Event()
    second = BenchPostgres(
        cache_root / "estate" / "postgres",
        log=lambda line: waiting.set() if "waiting for another" in line else None,
    )
    started = threading.Thread(target=second.start)
    try:
        started.start()
        assert waiting.wait(timeout=60)
        with psycopg.connect(first.url("postgres")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert started.is_alive()
    finally:
        first.stop()
    started.join(timeout=120)
    assert not started.is_alive()
    try:
        with psycopg.connect(second.url("postgres")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        second.stop()
