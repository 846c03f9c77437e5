"""Estate sizes: the full benchmark estate, a quicker one, and the tiny one the smoke test uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EstateSize:
    """How large a generated estate is and how often each scenario repeats."""

    name: str
    servers: int
    features_per_server: int
    vlms: int
    pools: int
    allocations: int
    history_days: int
    big_pool_rows: int
    apply_batch: int
    repeats: int

    def __post_init__(self) -> None:
        if self.servers > 1 and self.servers % 2:
            raise ValueError("servers must be 1 or an even number (VLMs span server pairs)")
        if self.vlms % self.pairs or self.vlms < self.pairs:
            raise ValueError("vlms must be a multiple of the number of server pairs")
        if self.pools % self.vlms or self.pools < 2:
            raise ValueError("pools must be a multiple of vlms and at least 2")
        if self.features_per_vlm < 1:
            raise ValueError("too few features per server for that many VLMs")
        if self.allocations <= self.big_pool_rows:
            raise ValueError("allocations must exceed big_pool_rows")

    @property
    def pairs(self) -> int:
        """VLMs span two servers each; the servers form this many pairs."""
        return max(1, self.servers // 2)

    @property
    def servers_per_vlm(self) -> int:
        return 2 if self.servers >= 2 else 1

    @property
    def vlms_per_pair(self) -> int:
        return self.vlms // self.pairs

    @property
    def features_per_vlm(self) -> int:
        return self.features_per_server // self.vlms_per_pair

    @property
    def pools_per_vlm(self) -> int:
        return self.pools // self.vlms

    @property
    def features_per_pool(self) -> int:
        return min(5, self.features_per_vlm)

    @property
    def server_features(self) -> int:
        return self.servers * self.features_per_server

    @property
    def snapshot_rows(self) -> int:
        return self.server_features * self.history_days * 24


FULL = EstateSize(
    name="full",
    servers=20,
    features_per_server=500,
    vlms=200,
    pools=2000,
    allocations=200_000,
    history_days=90,
    big_pool_rows=10_000,
    apply_batch=1_000,
    repeats=5,
)
SMALL = EstateSize(
    name="small",
    servers=4,
    features_per_server=100,
    vlms=20,
    pools=200,
    allocations=20_000,
    history_days=14,
    big_pool_rows=2_000,
    apply_batch=200,
    repeats=3,
)
TINY = EstateSize(
    name="tiny",
    servers=2,
    features_per_server=20,
    vlms=2,
    pools=4,
    allocations=300,
    history_days=2,
    big_pool_rows=100,
    apply_batch=20,
    repeats=2,
)
SIZES = {size.name: size for size in (FULL, SMALL, TINY)}


def scaled(base: EstateSize, factor: float) -> EstateSize:
    """The base estate grown or shrunk by factor: servers (an even number), server features,
    VLMs, pools, allocations and the large grid all scale; history length stays. Where servers
    cannot scale exactly (0.25× of 20 is 5, and servers pair up), features per server make up
    for it, so that the server features still scale by factor."""
    if factor == 1:
        return base
    servers = max(2, 2 * round(base.servers * factor / 2))
    pairs = servers // 2
    vlms = pairs * max(1, round(base.vlms * factor / pairs))
    per_vlm = max(1, round(base.pools * factor / vlms))
    allocations = max(2, round(base.allocations * factor))
    return EstateSize(
        name=f"{base.name}-x{factor:g}",
        servers=servers,
        features_per_server=max(1, round(base.server_features * factor / servers)),
        vlms=vlms,
        pools=vlms * max(per_vlm, 2 if vlms == 1 else 1),
        allocations=allocations,
        history_days=base.history_days,
        big_pool_rows=min(max(1, round(base.big_pool_rows * factor)), allocations - 1),
        apply_batch=base.apply_batch,
        repeats=base.repeats,
    )
