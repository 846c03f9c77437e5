"""What every scenario receives: the estate, a working copy of its database (a DuckDB file or a
PostgreSQL database), the emulators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.estate import Estate
from bench.sizes import EstateSize
from vlm.context import ServiceContext
from vlm.domain import Actor, Role

ADMIN = Actor("admin", Role.ADMIN)
BIG_POOL = "Pool 0000"


@dataclass
class BenchContext:
    """Shared by the scenarios of one run."""

    size: EstateSize
    estate: Estate
    database: str
    ctx: ServiceContext
    urls: dict[str, str]
    log: Callable[[str], None]

    @property
    def backend(self) -> str:
        """The engine under test: "duckdb" or "postgres"."""
        return str(self.ctx.db.dialect)

    @property
    def repeats(self) -> int:
        return self.size.repeats

    def server_ids(self) -> list[int]:
        return [int(r[0]) for r in self.ctx.db.query("SELECT id FROM license_servers ORDER BY id")]

    def big_pool(self) -> tuple[int, Actor]:
        """The pool holding the large grid, and its manager."""
        pool_id, manager = self.ctx.db.query(
            "SELECT id, manager FROM pools WHERE name = ?", [BIG_POOL]
        )[0]
        return int(pool_id), Actor(str(manager), Role.MANAGER)

    def pool_features(self, pool_id: int) -> list[tuple[str, str]]:
        """The pool's features by name (the first one holds the large grid)."""
        rows = self.ctx.db.query(
            "SELECT DISTINCT sf.feature_name, sf.feature_version FROM pool_portions pp "
            "JOIN server_features sf ON sf.id = pp.server_feature_id WHERE pp.pool_id = ? "
            "ORDER BY 1, 2",
            [pool_id],
        )
        return [(str(n), str(v)) for n, v in rows]

    def emulator_cpu(self) -> float:
        """CPU seconds (user + system) the emulators' process has used: one process serves
        every server of the estate (bench.fleet)."""
        url = next(iter(self.urls.values()))
        answer = httpx.get(f"{url}/_emulator/cpu", timeout=30)
        answer.raise_for_status()
        return float(answer.json()["process_cpu_s"])
