"""Generate (once, cached by size) a large estate: a DuckDB file plus emulator fixtures.

Layout, for any EstateSize: servers form pairs; every VLM spans both servers of a pair and
exposes `features_per_vlm` features on each (every server feature belongs to exactly one VLM).
Each VLM has `pools_per_vlm` pools of up to 5 features, split into one portion per server.
The first pool's first feature holds `big_pool_rows` allocations (the large grid); the other
allocations spread evenly over the other pools, each host holding every feature of its pool on
one server. Every allocation is applied: the fixtures hold one VLM reservation group per host
per server (plus two foreign groups per server), and hourly utilization snapshots cover
`history_days` for every server feature (summed up in utilization_hourly, which the trends read).
Bulk rows come from set-based SQL (bench/estate_sql.py); the reservation mirror is then filled by
a real inventory pull of every emulated server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from bench import estate_sql as sql
from bench.fixtures import build_fixtures, write_fixtures
from bench.fleet import ADMIN_PASSWORD, Fleet
from bench.sizes import EstateSize
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.secret_box import SecretBox
from vlm.services.users import hash_password
from vlm.store import Database, is_postgres_url, migrate, open_database
from vlm.store.hourly import rebuild_hourly

GENERATOR_VERSION = 5
CACHE_ROOT = Path(__file__).resolve().parent / ".cache"
BENCH_PASSWORD = "bench-password"
MAX_AGE = timedelta(days=1)
Log = Callable[[str], None]


@dataclass(frozen=True)
class Estate:
    """A generated estate on disk."""

    size: EstateSize
    directory: Path

    @property
    def db_path(self) -> Path:
        return self.directory / "estate.duckdb"

    @property
    def fixture_dir(self) -> Path:
        return self.directory / "fixtures"

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.directory / "meta.json").read_text(encoding="utf-8"))


def bench_settings(target: Path | str) -> Settings:
    """Demo-mode settings (demo keys), as the app gets with VLM_DEMO=1, on a DuckDB file or a
    PostgreSQL URL."""
    if is_postgres_url(str(target)):
        return Settings.from_env(db_url=str(target), demo=True)
    return Settings.from_env(db_path=str(target), db_url=None, demo=True)


def open_context(target: Path | str) -> ServiceContext:
    settings = bench_settings(target)
    return ServiceContext(
        open_database(settings.database), settings, SecretBox(settings.secret_key)
    )


def point_servers(ctx: ServiceContext, urls: dict[str, str]) -> None:
    """Aim every license server row at this run's emulator (one set-based UPDATE)."""
    frame = pd.DataFrame({"name": list(urls), "url": list(urls.values())}, dtype="object")

    def write(cur) -> None:
        cur.register("bench_urls", frame)
        try:
            cur.execute(
                "UPDATE license_servers SET base_url = u.url FROM bench_urls u "
                "WHERE license_servers.name = u.name"
            )
        finally:
            cur.unregister("bench_urls")

    ctx.db.write(write)


def run_script(cur: Any, script: str, params: dict[str, Any]) -> None:
    """Run each statement of a script with the named parameters it uses."""
    for statement in (s.strip() for s in script.split(";")):
        if statement:
            used = {name: params[name] for name in set(re.findall(r"\$(\w+)", statement))}
            cur.execute(statement, used)


def _generate_rows(db: Database, size: EstateSize, settings: Settings, log: Log) -> None:
    now = datetime.now().replace(minute=0, second=0, microsecond=0)
    params: dict[str, Any] = {
        **sql.layout_params(size),
        "pw_hash": hash_password(BENCH_PASSWORD),
        "pw_encrypted": SecretBox(settings.secret_key).encrypt(ADMIN_PASSWORD),
        "now": now,
        "start": now - timedelta(days=size.history_days),
    }
    scripts = (
        ("catalog", sql.CATALOG),
        ("allocations", sql.ALLOCATIONS),
        ("figures", sql.FIGURES),
        ("audit log", sql.AUDIT),
    )

    def write(cur: Any) -> None:
        for label, script in scripts:
            started = time.perf_counter()
            run_script(cur, script, params)
            log(f"  {label}: {time.perf_counter() - started:.1f} s")

    db.write(write)
    started = time.perf_counter()
    db.write(lambda cur: run_script(cur, sql.SNAPSHOTS, params))
    log(f"  {size.snapshot_rows:,} snapshots: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    db.write(rebuild_hourly)
    db.execute_script("CHECKPOINT")
    log(f"  hourly summary of the snapshots: {time.perf_counter() - started:.1f} s")


def _sync_once(directory: Path, log: Log) -> dict[str, Any]:
    """Pull every server once (fills the mirror) and check a reconcile pass changes nothing."""
    from vlm.sync.inventory import pull_inventory
    from vlm.sync.reconciler import reconcile_all

    db_path = directory / "estate.duckdb"
    with Fleet(directory / "fixtures") as fleet:
        ctx = open_context(db_path)
        try:
            point_servers(ctx, fleet.urls)
            started = time.perf_counter()
            ids = [r[0] for r in ctx.db.query("SELECT id FROM license_servers ORDER BY id")]
            for server_id in ids:
                result = pull_inventory(ctx, server_id)
                if not result.ok:
                    raise RuntimeError(f"inventory pull of server {server_id}: {result.error}")
            log(f"  first inventory pull: {time.perf_counter() - started:.1f} s")
            changed = sum(r.hosts_changed for r in reconcile_all(ctx))
            if changed:
                raise RuntimeError(f"generated estate is not in sync: {changed} hosts differ")
            ctx.db.execute_script("CHECKPOINT")
            return {
                "mirror_rows": ctx.db.scalar("SELECT COUNT(*) FROM reservation_mirror"),
                "allocations": ctx.db.scalar("SELECT COUNT(*) FROM allocations"),
                "snapshots": ctx.db.scalar("SELECT COUNT(*) FROM utilization_snapshots"),
            }
        finally:
            ctx.db.close()


def build_estate(size: EstateSize, directory: Path, log: Log = print) -> None:
    """Generate the estate of `size` into an empty directory."""
    started = time.perf_counter()
    directory.mkdir(parents=True)
    settings = bench_settings(directory / "estate.duckdb")
    db = Database(settings.db_path, memory_limit="6GB")
    try:
        migrate(db)
        _generate_rows(db, size, settings, log)
        write_fixtures(build_fixtures(db, settings.group_prefix), directory / "fixtures")
    finally:
        db.close()
    counts = _sync_once(directory, log)
    meta = {
        "size": size.name,
        "generator_version": GENERATOR_VERSION,
        "generated_at": datetime.now().isoformat(timespec="seconds"),
        "generation_seconds": round(time.perf_counter() - started, 1),
        **counts,
    }
    (directory / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    log(f"  estate '{size.name}' ready in {meta['generation_seconds']} s")


def _fresh(estate: Estate) -> bool:
    """A cached estate is reused for a day: its history ends when it was generated."""
    if not (estate.directory / "meta.json").exists():
        return False
    generated = datetime.fromisoformat(estate.meta["generated_at"])
    return datetime.now() - generated < MAX_AGE


def ensure_estate(size: EstateSize, cache_root: Path = CACHE_ROOT, log: Log = print) -> Estate:
    """The cached estate of this size, generating it first if missing or a day old."""
    estate = Estate(size, cache_root / f"{size.name}-v{GENERATOR_VERSION}")
    if _fresh(estate):
        return estate
    log(f"generating the '{size.name}' estate under {estate.directory}")
    building = estate.directory.with_name(estate.directory.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    build_estate(size, building, log)
    shutil.rmtree(estate.directory, ignore_errors=True)
    building.rename(estate.directory)
    return estate


def working_copy(estate: Estate, work_dir: Path) -> Path:
    """A private copy of the estate database that scenarios may change, written out to disk
    before it is used: otherwise the kernel writes the copy's gigabytes back while the first
    scenario is timed."""
    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / "estate.duckdb"
    for stale in (target, target.with_name(target.name + ".wal")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(estate.db_path, target)
    os.sync()
    return target
