"""Inventory sync of every server vs a bare HTTP fetch + JSON parse of the same responses."""

from __future__ import annotations

import httpx

from bench.context import BenchContext
from bench.measure import Row, ratio, sample
from vlm.flexnet import FlexNetClient
from vlm.sync.clients import ClientCache
from vlm.sync.inventory import pull_inventory
from vlm.sync.store_queries import load_servers

RATIO_LIMIT = 1.5
PATHS = ("/features?activeOnly=true", "/reservationgroups")


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


def run(bench: BenchContext) -> list[Row]:
    ctx = bench.ctx
    cache = ClientCache(ctx)
    servers = load_servers(ctx.db)
    clients = [(int(s["id"]), cache.get(s)) for s in servers]

    def sync() -> None:
        for server_id, client in clients:
            result = pull_inventory(ctx, server_id, client)
            if not result.ok:
                raise RuntimeError(f"inventory pull failed: {result.error}")

    bare = _bare_clients(bench, [c for _, c in clients])
    try:
        synced = sample(sync, bench.repeats)
        baseline = sample(lambda: _bare_fetch(bare), bench.repeats)
    finally:
        for http, _ in bare:
            http.close()
        cache.close_all()
    count = len(servers)
    return [
        Row(
            f"inventory sync, {count} servers (features + reservation groups)",
            synced,
            target=f"≤ {RATIO_LIMIT}× bare fetch",
            ratio=ratio(synced, baseline),
            ratio_limit=RATIO_LIMIT,
            ratio_label="bare HTTP + JSON",
        ),
        Row(f"  baseline: bare HTTP fetch + JSON parse, {count} servers", baseline),
    ]
