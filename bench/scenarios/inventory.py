"""Inventory sync of every server vs a bare HTTP fetch + JSON parse of the same responses.

Four passes are timed: answers unchanged since the last pass (the steady state), usage moved
on every server (each features answer changed, as client checkouts do), a cold pass after a
restart (nothing in memory; each stored mirror's digest kept in the database), and a cold pass
after the reconciler rewrote every server's mirror (every groups answer parsed and compared).

Each timed pass is paired with a bare fetch taken right before it (after the pass's set-up), and
its ratio is the median of its passes over the median of its own paired fetches: a baseline
sampled once, after all the passes, drifted with the machine's load away from the passes it was
compared with. Where the set-up changed the servers' answers (usage moved), one untimed bare
fetch goes first, so that the emulator renders the changed answer before either timed fetch and
neither the baseline nor the pass is charged for it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import httpx

from bench.context import BenchContext
from bench.measure import Row, ratio, sample, timed
from bench.report import format_value
from vlm.flexnet import FlexNetClient
from vlm.store.servers import load_servers, set_mirror_digest
from vlm.sync.clients import ClientCache
from vlm.sync.inventory import forget_stored_inventory, pull_inventory

UNCHANGED_RATIO_LIMIT = 1.0
RATIO_LIMIT = 1.2
PATHS = ("/features?activeOnly=true", "/reservationgroups")
CHECKOUT_HOST = {"type": "ETHERNET", "value": "BE7C0000CAFE"}


def _bare_fetch(clients: list[tuple[httpx.Client, str]]) -> None:
    for http, root in clients:
        for path in PATHS:
            response = http.get(root + path)
            response.raise_for_status()
            response.json()


def _bare_clients(bench: BenchContext, api: list[FlexNetClient]) -> list[tuple[httpx.Client, str]]:
    """Plain keep-alive httpx clients with the bearer token the VLM clients already hold."""
    clients = []
    for client in api:
        token = client._current_token()
        http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60)
        clients.append((http, client.api_root))
    return clients


def _usage_mover(bench: BenchContext) -> Callable[[], None]:
    """Before each pass: one unit of a feature checked out on every server, or back in."""
    rows = bench.ctx.db.query(
        "SELECT base_url, feature_name, feature_version FROM ("
        "SELECT s.base_url, sf.feature_name, sf.feature_version, row_number() OVER ("
        "PARTITION BY s.base_url ORDER BY sf.feature_name, sf.feature_version) AS n "
        "FROM license_servers s JOIN server_features sf ON sf.server_id = s.id "
        "WHERE sf.total - sf.used > 2 AND NOT sf.uncounted) AS movable WHERE n = 1"
    )
    held = [False]

    def move() -> None:
        action = "checkin" if held[0] else "checkout"
        for base_url, name, version in rows:
            body = {"hostid": CHECKOUT_HOST, "featureName": name, "featureVersion": version}
            httpx.post(f"{base_url}/_emulator/{action}", json=body, timeout=30).raise_for_status()
        held[0] = not held[0]

    return move


class _Puller:
    """Inventory pulls of every server of the estate, through one client cache."""

    def __init__(self, bench: BenchContext) -> None:
        self.ctx = bench.ctx
        self.cache = ClientCache(bench.ctx)
        self.clients = [(int(s["id"]), self.cache.get(s)) for s in load_servers(bench.ctx.db)]

    def sync(self) -> None:
        for server_id, client in self.clients:
            result = pull_inventory(self.ctx, server_id, client)
            if not result.ok:
                raise RuntimeError(f"inventory pull failed: {result.error}")

    def restart(self) -> None:
        """As after a restart of VLM: nothing of the last pulls in memory."""
        for server_id, _ in self.clients:
            forget_stored_inventory(self.ctx, server_id)

    def forget(self) -> None:
        """As after the reconciler rewrote every mirror: no digest kept, nothing in memory."""
        self.restart()

        def drop_digests(cur) -> None:
            for server_id, _ in self.clients:
                set_mirror_digest(cur, server_id, None, None)

        self.ctx.db.write(drop_digests)


Samples = tuple[float, ...]


def paired_samples(
    sync: Callable[[], object],
    bare_fetch: Callable[[], object],
    repeats: int,
    *,
    before: Callable[[], object] | None = None,
    prime: bool = False,
    warmup: int = 1,
) -> tuple[Samples, Samples]:
    """`repeats` timed passes, each right after a timed bare fetch of the same answers (after
    the untimed set-up `before`, and an untimed bare fetch first when `prime`); `warmup` pairs
    are run untimed first. Returns (passes, their paired bare fetches)."""
    passes: list[float] = []
    baselines: list[float] = []
    for index in range(warmup + repeats):
        if before is not None:
            before()
        if prime:
            bare_fetch()
        baseline = timed(bare_fetch)
        elapsed = timed(sync)
        if index >= warmup:
            passes.append(elapsed)
            baselines.append(baseline)
    return tuple(passes), tuple(baselines)


def cold_sync_samples(bench: BenchContext) -> tuple[float, ...]:
    """Cold inventory syncs of every server (nothing remembered: every mirror rewritten by the
    reconciler), timed (for the scale report)."""
    puller = _Puller(bench)
    try:
        return sample(puller.sync, bench.repeats, before=puller.forget)
    finally:
        puller.cache.close_all()


def run(bench: BenchContext) -> list[Row]:
    puller = _Puller(bench)
    sync, restart, forget, clients = puller.sync, puller.restart, puller.forget, puller.clients
    bare = _bare_clients(bench, [c for _, c in clients])

    def fetch() -> None:
        _bare_fetch(bare)

    repeats = bench.repeats
    try:
        steady = paired_samples(sync, fetch, repeats)
        moved = paired_samples(sync, fetch, repeats, before=_usage_mover(bench), prime=True)
        after_restart = paired_samples(sync, fetch, repeats, before=restart)
        cold = paired_samples(sync, fetch, repeats, before=forget)
    finally:
        for http, _ in bare:
            http.close()
        puller.cache.close_all()
    count = len(clients)

    def compared(title: str, pairs: tuple[Samples, Samples], limit: float = RATIO_LIMIT) -> Row:
        samples, baseline = pairs
        paired = statistics.median(baseline)
        return Row(
            title,
            samples,
            target=f"≤ {limit:g}× bare fetch",
            ratio=ratio(samples, baseline),
            ratio_limit=limit,
            ratio_label="bare HTTP + JSON, median / median of the bare fetches paired with it",
            note=f"its paired bare fetches: median {format_value(paired, 's')}",
            extra={"paired_baseline_median": paired},
        )

    every_baseline = steady[1] + moved[1] + after_restart[1] + cold[1]

    return [
        compared(
            f"inventory sync, {count} servers (features + reservation groups), answers unchanged",
            steady,
            UNCHANGED_RATIO_LIMIT,
        ),
        compared(f"inventory sync, {count} servers, usage moved on every server", moved),
        compared(
            f"inventory sync, {count} servers, cold after a restart (the stored mirrors' digests "
            "kept)",
            after_restart,
        ),
        compared(
            f"inventory sync, {count} servers, cold after every mirror was rewritten (nothing "
            "remembered: all parsed and compared)",
            cold,
        ),
        Row(
            f"  baseline: bare HTTP fetch + JSON parse, {count} servers (every fetch paired "
            "with a pass above, each taken right before its pass)",
            every_baseline,
        ),
    ]
