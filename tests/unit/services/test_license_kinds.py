"""Counted concurrent licenses are defined once (issue #8 item 4): every figure agrees with it.

Two emulated license servers list counted, metered, uncounted and non-concurrent features; the
inventory pull stores them over real HTTP. Every service figure that totals licenses (KPIs,
server and VLM stacks, the server list, VLM list, server features, trends and the CSVs) must
count the counted concurrent features only, and show the other kinds apart under their own
names with the same numbers everywhere.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product

import pytest

from tests.conftest import ADMIN, ANALYST
from tests.sync.conftest import add_pool, add_synced_server, allocate, control, feature, feature_id
from vlm.context import ServiceContext
from vlm.flexnet.emulator.server import RunningEmulator, start_emulator
from vlm.services import exports, reports, servers, vlms
from vlm.store.figures import (
    COUNTED,
    LICENSE_KIND,
    LICENSE_KIND_LABELS,
    METERED,
    OTHER,
    SERVER_FEATURE_FIGURES,
    UNCOUNTED,
    license_kind,
)
from vlm.sync.inventory import pull_inventory


def _checkout(name: str, count: int, host: str) -> dict:
    return {
        "hostid": {"type": "ETHERNET", "value": host},
        "featureName": name,
        "featureVersion": "1.0",
        "count": count,
    }


def _east(viz: dict) -> dict:
    """Server east: cad in two slices and viz (counted), metered hours, uncounted viewer, a
    non-concurrent legacy feature, some checkouts and a foreign reservation of 2 cad."""
    return {
        "instanceId": "EASTINSTANCE",
        "features": [
            feature("cad", 20),
            feature("cad", 5),
            viz,
            feature("hours", 500, metered=True),
            feature("viewer", 0, uncounted=True),
            feature("legacy", 7, concurrent=False),
        ],
        "reservationGroups": [
            {
                "name": "ops-team",
                "reservations": [
                    {
                        "hostId": {"type": "ETHERNET", "value": "AAAAAAAAAAAA"},
                        "reservationEntries": [
                            {"featureName": "cad", "featureVersion": "1.0", "featureCount": 2}
                        ],
                    }
                ],
            }
        ],
        "checkouts": [
            _checkout("cad", 3, "CCCCCCCCCCC1"),
            _checkout("hours", 40, "CCCCCCCCCCC2"),
            _checkout("viewer", 2, "CCCCCCCCCCC3"),
            _checkout("legacy", 1, "CCCCCCCCCCC4"),
        ],
    }


EAST = _east(feature("viz", 10))
EAST_VIZ_METERED = _east(feature("viz", 10, metered=True))
WEST = {
    "instanceId": "WESTINSTANCE",
    "features": [
        feature("cad", 8),
        feature("sim", 6),
        feature("tokens", 1000, metered=True),
        feature("viewer", 0, uncounted=True),
    ],
    "checkouts": [_checkout("sim", 1, "DDDDDDDDDDD1"), _checkout("tokens", 100, "DDDDDDDDDDD2")],
}


@dataclass(frozen=True)
class Expected:
    """What the fixtures hold, by hand: counted (total, used) per server; the other kinds as
    (features, total, used) over both servers; the VLM's counted total."""

    counted: dict[str, tuple[int, int]]
    apart: dict[str, tuple[int, int, int]]
    counted_features: int
    vlm_total: int


BEFORE = Expected(
    counted={"east": (35, 3), "west": (14, 1)},
    apart={METERED: (2, 1500, 140), UNCOUNTED: (2, 0, 2), OTHER: (1, 7, 1)},
    counted_features=4,
    vlm_total=41,  # cad 25 + viz 10 on east, sim 6 on west
)
AFTER_VIZ_TURNED_METERED = Expected(
    counted={"east": (25, 3), "west": (14, 1)},
    apart={METERED: (3, 1510, 140), UNCOUNTED: (2, 0, 2), OTHER: (1, 7, 1)},
    counted_features=3,
    vlm_total=31,
)


@dataclass(frozen=True)
class Estate:
    ctx: ServiceContext
    east: RunningEmulator
    east_id: int
    vlm_id: int
    pool_quantity: int


@pytest.fixture
def estate(ctx: ServiceContext) -> Iterator[Estate]:
    """Both servers pulled; a VLM over cad and viz of east and sim of west; a pool of 10 cad
    and 2 sim with 3 cad allocated."""
    with start_emulator(EAST) as east, start_emulator(WEST) as west:
        east_id = add_synced_server(ctx, east.url, "east")
        west_id = add_synced_server(ctx, west.url, "west")
        cad, sim = feature_id(ctx, east_id, "cad"), feature_id(ctx, west_id, "sim")
        viz = feature_id(ctx, east_id, "viz")
        vlm_id = vlms.create_vlm(ctx, ADMIN, "main", [cad, viz, sim])
        pool_id = add_pool(ctx, {cad: 10, sim: 2})
        allocate(ctx, pool_id, cad, "0050569A0001", 3)
        yield Estate(ctx, east, east_id, vlm_id, pool_quantity=12)


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def _assert_every_figure_agrees(estate: Estate, expected: Expected) -> None:
    ctx = estate.ctx
    total = sum(t for t, _ in expected.counted.values())
    used = sum(u for _, u in expected.counted.values())

    features = servers.server_features(ctx, ADMIN)
    counted = features[features["license_kind"] == COUNTED]
    assert (features["can_pool"] == (features["license_kind"] == COUNTED)).all()
    per_server = counted.groupby("server_name")[["total", "used"]].sum()
    assert {n: (r.total, r.used) for n, r in per_server.iterrows()} == expected.counted

    for actor in (ADMIN, ANALYST):
        k = reports.kpis(ctx, actor)
        assert (k["total"], k["used"], k["server_features"]) == (
            total,
            used,
            expected.counted_features,
        )
        assert k["servers"] == 2 and k["pooled"] == estate.pool_quantity == k["pool_quantity"]
        for kind, figures in expected.apart.items():
            assert (k[f"{kind}_features"], k[f"{kind}_total"], k[f"{kind}_used"]) == figures

    listed = servers.list_servers(ctx, ADMIN).set_index("name")
    assert {n: (r.total, r.used) for n, r in listed.iterrows()} == expected.counted
    assert (listed["available"] == listed["total"] - listed["used"]).all()
    assert int(listed["features"].sum()) == expected.counted_features
    assert int(listed["metered_features"].sum()) == expected.apart[METERED][0]
    assert int(listed["uncounted_features"].sum()) == expected.apart[UNCOUNTED][0]
    assert int(listed["other_features"].sum()) == expected.apart[OTHER][0]

    stack = reports.server_stack(ctx, ANALYST).set_index("name")
    assert {n: (r.total, r.used) for n, r in stack.iterrows()} == expected.counted

    kinds = reports.license_kinds(ctx, ANALYST).set_index("license_kind")
    assert kinds["label"].to_dict() == LICENSE_KIND_LABELS
    assert tuple(kinds.loc[COUNTED, ["features", "total", "used"]]) == (
        expected.counted_features,
        total,
        used,
    )
    for kind, figures in expected.apart.items():
        assert tuple(kinds.loc[kind, ["features", "total", "used"]]) == figures

    vlm_row = vlms.list_vlms(ctx, ADMIN).set_index("id").loc[estate.vlm_id]
    assert vlm_row["total"] == expected.vlm_total
    assert reports.vlm_stack(ctx, ADMIN).set_index("name").loc["main", "total"] == (
        expected.vlm_total
    )

    rows = _csv(exports.to_csv_bytes(exports.server_features_export(ctx, ANALYST)))
    assert sum(int(r["total"]) for r in rows if r["license_kind"] == COUNTED) == total
    for kind, (count, kind_total, kind_used) in expected.apart.items():
        of_kind = [r for r in rows if r["license_kind"] == kind and r["present"] == "True"]
        assert (len(of_kind), sum(int(r["total"]) for r in of_kind)) == (count, kind_total)
        assert sum(int(r["used"]) for r in of_kind) == kind_used

    assert reports.server_trend(ctx, ANALYST, None, days=1).iloc[-1]["total"] == total
    history = _csv(exports.utilization_csv(ctx, ANALYST, days=1))
    latest = {(r["server_name"], r["feature_name"]): r for r in history}
    assert sum(int(r["total"]) for r in latest.values() if r["license_kind"] == COUNTED) == total


def test_the_sql_kind_and_its_python_twin_agree_on_every_flag_combination(ctx) -> None:
    flags = list(product([False, True], repeat=3))
    values = ", ".join(f"({c}, {u}, {m})" for c, u, m in flags)
    sql_kinds = ctx.db.query(
        f"SELECT {LICENSE_KIND} FROM (VALUES {values}) AS sf(concurrent, uncounted, metered)"
    )
    twin = [license_kind(concurrent=c, uncounted=u, metered=m) for c, u, m in flags]
    assert [k for (k,) in sql_kinds] == twin
    assert twin.count(COUNTED) == 1 and set(twin) == set(LICENSE_KIND_LABELS)


def test_every_figure_counts_the_counted_concurrent_licenses_only(estate) -> None:
    kinds = dict(
        estate.ctx.db.query(
            f"SELECT feature_name || '@' || server_name, license_kind "
            f"FROM ({SERVER_FEATURE_FIGURES}) AS f ORDER BY 1"
        )
    )
    assert kinds == {
        "cad@east": COUNTED,
        "cad@west": COUNTED,
        "hours@east": METERED,
        "legacy@east": OTHER,
        "sim@west": COUNTED,
        "tokens@west": METERED,
        "viewer@east": UNCOUNTED,
        "viewer@west": UNCOUNTED,
        "viz@east": COUNTED,
    }
    _assert_every_figure_agrees(estate, BEFORE)


def test_a_vlm_feature_that_turns_metered_leaves_every_total_and_is_listed_as_metered(
    estate,
) -> None:
    control(estate.east, "POST", "fixture", EAST_VIZ_METERED)
    assert pull_inventory(estate.ctx, estate.east_id).ok
    _assert_every_figure_agrees(estate, AFTER_VIZ_TURNED_METERED)
    listed = vlms.vlm_features(estate.ctx, ADMIN, estate.vlm_id).set_index("feature_name")
    assert listed["license_kind"].to_dict() == {"cad": COUNTED, "sim": COUNTED, "viz": METERED}
    assert vlms.list_vlms(estate.ctx, ADMIN).set_index("id").loc[estate.vlm_id, "features"] == 2


def test_a_connection_test_names_each_kind_of_the_features_it_found(estate) -> None:
    check = servers.check_saved_server(estate.ctx, ADMIN, estate.east_id)
    assert check.ok and check.features == 5
    assert check.message == (
        "connected: 5 features (2 counted concurrent, 1 metered, 1 uncounted, "
        "1 other (not concurrent))"
    )
