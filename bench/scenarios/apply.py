"""New allocations applied from one grid: Apply until every one is applied on the server.

Timed twice against the same sequential baseline: on loopback as the emulator answers (where
both sides share the machine's two cores, so the bound is CPU, not the wire), and with every
request of the two servers answered WIRE_LATENCY_MS later, as a license server on the network
does (where requests in flight at the same time overlap their waits).

On loopback the emulated servers' own CPU time for the baseline's requests is reported too: the
emulators of the estate run in one process (bench.fleet), so no client, however concurrent, can
have every group created sooner than that process takes to create them.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from bench.context import BenchContext
from bench.measure import Row, ratio, timed
from vlm.context import ServiceContext
from vlm.domain import Actor
from vlm.flexnet import HostId, Reservation, ReservationEntry, ReservationGroup
from vlm.services.allocations import AllocationChange, apply_allocation_changes
from vlm.store import open_database
from vlm.store.servers import load_servers
from vlm.sync.clients import ClientCache
from vlm.sync.scheduler import SyncScheduler

LIMIT_S = 2.0
SEQUENTIAL_RATIO_LIMIT = 0.35
HOST_BASE = 0x00BB00000000
POLL_S = 0.02
TIMEOUT_S = 300.0
WIRE_LATENCY_MS = 5  # a guess at a license server on the LAN: round trip plus its own write


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(POLL_S)


def _count(bench: BenchContext, ids: list[int], state: str | None) -> int:
    """How many of ids (in state), found by their id range (one Apply's ids are consecutive):
    a poll every POLL_S then reads the few row groups that hold them rather than scanning
    every allocation, and does not take a core from the work it waits for."""
    if not ids:
        return 0
    low, high = min(ids), max(ids)
    sql = "SELECT COUNT(*) FROM allocations WHERE id BETWEEN ? AND ?"
    params: list = [low, high]
    if high - low + 1 != len(ids):
        sql += " AND id = ANY(?)"
        params.append(ids)
    if state is not None:
        sql += " AND state = ?"
        params.append(state)
    return int(bench.ctx.db.scalar(sql, params))


class _Round:
    """One Apply of n new hosts, timed until applied, then removed again (untimed)."""

    def __init__(self, bench: BenchContext, pool_id: int, manager: Actor, feature: tuple[str, str]):
        self.bench, self.pool_id, self.manager, self.feature = bench, pool_id, manager, feature
        self.number = 0
        self.own_cpu: list[float] = []

    def hosts(self, number: int) -> list[str]:
        n = self.bench.size.apply_batch
        return [f"{HOST_BASE + number * n + i:012X}" for i in range(n)]

    def run(self) -> float:
        """The grid's Apply of apply_batch new hosts, on the benchmark's own context."""
        self.number += 1
        return self.save(self.bench.ctx, self.hosts(self.number))

    def save_one(self, ctx: ServiceContext) -> float:
        """One new allocation saved through ctx (on PostgreSQL: a replica that does not lead)."""
        self.number += 1
        return self.save(ctx, self.hosts(self.number)[:1])

    def save(self, ctx: ServiceContext, hosts: list[str]) -> float:
        """Save the hosts through ctx and time it until the server holds every one."""
        name, version = self.feature
        changes = [
            AllocationChange("add", i, None, name, version, "ETHERNET", host, 1, "bench apply")
            for i, host in enumerate(hosts)
        ]
        ids: list[int] = []

        def apply() -> None:
            results = apply_allocation_changes(ctx, self.manager, self.pool_id, changes)
            refused = [r.message for r in results if not r.ok]
            if refused:
                raise RuntimeError(f"{len(refused)} rows refused, e.g. {refused[0]}")
            ids.extend(int(r.allocation_id) for r in results if r.allocation_id is not None)
            _wait(lambda: _count(self.bench, ids, "applied") == len(ids), "allocations applied")

        started = _process_cpu()
        elapsed = timed(apply)
        self.own_cpu.append(_process_cpu() - started)
        deletes = [AllocationChange("delete", i, a) for i, a in enumerate(ids)]
        apply_allocation_changes(self.bench.ctx, self.manager, self.pool_id, deletes)
        _wait(lambda: _count(self.bench, ids, None) == 0, "allocations removed")
        return elapsed


@contextmanager
def _replica(bench: BenchContext) -> Iterator[ServiceContext]:
    """Where a single save is made: on PostgreSQL a second context on the same database, as
    another replica's (its save reaches the leader by NOTIFY); DuckDB has one process."""
    if bench.backend != "postgres":
        yield bench.ctx
        return
    db = open_database(bench.database)
    try:
        yield ServiceContext(db, bench.ctx.settings, bench.ctx.secrets)
    finally:
        db.close()


def _process_cpu() -> float:
    """CPU seconds (user + system) this process has used, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sequential_baseline(bench: BenchContext, round_: _Round, servers: list[str]) -> float:
    """One POST per allocation, one after the other, split over the same servers."""
    cache = ClientCache(bench.ctx)
    by_name = {str(s["name"]): s for s in load_servers(bench.ctx.db)}
    clients = [cache.get(by_name[name]) for name in servers]
    name, version = round_.feature
    hosts = round_.hosts(0)
    created: list[tuple[int, int]] = []

    def send() -> None:
        for index, host in enumerate(hosts):
            client = clients[index % len(clients)]
            entry = ReservationEntry(name, version, 1)
            reservation = Reservation(HostId("ETHERNET", host), (entry,))
            group = ReservationGroup(None, f"bench-seq-{host}", (reservation,))
            made = client.create_reservation_group(group)
            created.append((index % len(clients), int(made.id or 0)))

    try:
        return timed(send)
    finally:
        for client_index, group_id in created:
            clients[client_index].delete_group(group_id)
        cache.close_all()


def _servers_of(bench: BenchContext, pool_id: int, feature: tuple[str, str]) -> list[str]:
    rows = bench.ctx.db.query(
        "SELECT s.name FROM pool_portions pp "
        "JOIN server_features sf ON sf.id = pp.server_feature_id "
        "JOIN license_servers s ON s.id = sf.server_id "
        "WHERE pp.pool_id = ? AND sf.feature_name = ? AND sf.feature_version = ? ORDER BY s.name",
        [pool_id, *feature],
    )
    return [str(r[0]) for r in rows]


@contextmanager
def _wire_latency(bench: BenchContext, servers: list[str], latency_ms: int) -> Iterator[None]:
    """Every API request of these servers answered latency_ms later, until the block ends."""
    urls = [str(s["base_url"]) for s in load_servers(bench.ctx.db) if str(s["name"]) in servers]
    for url in urls:
        body = {"latency_ms": latency_ms}
        httpx.post(f"{url}/_emulator/faults", json=body, timeout=30).raise_for_status()
    try:
        yield
    finally:
        for url in urls:
            httpx.delete(f"{url}/_emulator/faults", timeout=30).raise_for_status()


def _apply_rows(
    title: str, samples: tuple[float, ...], baseline: tuple[float, ...], n: int
) -> list[Row]:
    return [
        Row(
            title,
            samples,
            target=f"≤ {SEQUENTIAL_RATIO_LIMIT:g}× the sequential baseline",
            ratio=ratio(samples, baseline),
            ratio_limit=SEQUENTIAL_RATIO_LIMIT,
            ratio_label="1 request/allocation, sequential",
        ),
        Row(f"  baseline: {n:,} sequential requests, one per allocation", baseline),
    ]


def run(bench: BenchContext) -> list[Row]:
    pool_id, manager = bench.big_pool()
    feature = bench.pool_features(pool_id)[1]
    round_ = _Round(bench, pool_id, manager, feature)
    servers = _servers_of(bench, pool_id, feature)
    scheduler = SyncScheduler(bench.ctx, interval_seconds=24 * 3600)
    scheduler.start()
    try:
        _wait(lambda: bool(scheduler.last_full_pass), "the scheduler's first full pass")
        round_.run()
        round_.own_cpu.clear()
        samples = tuple(round_.run() for _ in range(bench.repeats))
        own_cpu = tuple(round_.own_cpu)
        with _replica(bench) as replica:
            round_.save_one(replica)
            single = tuple(round_.save_one(replica) for _ in range(bench.repeats))
        with _wire_latency(bench, servers, WIRE_LATENCY_MS):
            round_.run()
            on_wire = tuple(round_.run() for _ in range(bench.repeats))
    finally:
        scheduler.stop()

    def baseline() -> tuple[float, ...]:
        return tuple(_sequential_baseline(bench, round_, servers) for _ in range(bench.repeats))

    server_cpu: list[float] = []

    def measured_baseline() -> float:
        before = bench.emulator_cpu()
        elapsed = _sequential_baseline(bench, round_, servers)
        server_cpu.append(bench.emulator_cpu() - before)
        return elapsed

    on_loopback = tuple(measured_baseline() for _ in range(bench.repeats))
    with _wire_latency(bench, servers, WIRE_LATENCY_MS):
        wire_baseline = baseline()
    n = bench.size.apply_batch
    title = f"apply {n:,} new allocations from one grid (Apply → all applied on server)"
    return [
        *_apply_rows(title, samples, on_loopback, n),
        Row(
            f"  the emulated servers' own CPU time for the baseline's {n:,} requests (the "
            "fastest any client can get them all answered on loopback)",
            tuple(server_cpu),
            ratio=ratio(tuple(server_cpu), on_loopback),
            ratio_label="the sequential baseline",
        ),
        Row("  VLM's own CPU time for the Apply (every thread)", own_cpu),
        *_apply_rows(
            f"{title}, every request answered {WIRE_LATENCY_MS} ms later (a server on the LAN)",
            on_wire,
            wire_baseline,
            n,
        ),
        Row(
            "one allocation saved (PostgreSQL: on a replica that does not lead) → applied on "
            "its server",
            single,
            target=f"< {LIMIT_S:g} s",
            limit=LIMIT_S,
        ),
    ]
