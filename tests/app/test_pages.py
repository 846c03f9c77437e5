"""What each role sees on the shared pages: dashboard, my pools, export."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from tests.app.conftest import open_page
from vlm.demo import DEMO_ALLOCATIONS, DEMO_TIMEBOXED
from vlm.domain import Role

DOWNLOADS = {
    "admin": {"pools", "allocations", "server-features", "utilization-history"},
    "mia": {"pools", "allocations"},
    "ana": {"pools", "allocations", "server-features", "utilization-history"},
}


def charts(at) -> int:
    return len(at.get("plotly_chart"))


@pytest.mark.parametrize("username", ["admin", "ana"])
def test_estate_dashboard(app, username):
    at = app(username)
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["License servers", "Licenses (total)", "In use"]
    assert charts(at) == 4  # servers, VLMs, pools stacks + trend
    # the demo's east fea_solver count dropped under what the Simulation team holds
    over = next(d.value for d in at.dataframe if "deficit" in d.value.columns)
    assert over[["server_name", "feature_name"]].values.tolist() == [["lls-east", "fea_solver"]]


def test_manager_dashboard_is_scoped_to_own_pools(app):
    at = app("mia")
    assert [m.label for m in at.metric][0] == "My pools"
    assert at.metric[0].value == "1"
    assert charts(at) == 2  # own pools + trend
    features = at.dataframe[0].value
    assert set(features["pool_name"]) == {"CAD team"}


def test_manager_trend_shows_the_pools_own_figures_not_the_servers(app):
    """Issue #7 item 15: no server-wide total / used on a manager's dashboard."""
    import json

    from tests.app.conftest import service_context
    from vlm.domain import Actor
    from vlm.services import pools

    at = app("mia")
    (pool,) = pools.list_pools(service_context(), Actor("mia", Role.MANAGER)).itertuples()
    trend = json.loads(list(at.get("plotly_chart"))[-1].proto.spec)["data"]
    assert [t["name"] for t in trend] == ["Pool quantity", "Allocated"]
    data = next(d.value for d in at.dataframe if "taken_at" in d.value.columns)
    assert list(data.columns) == ["taken_at", "quantity", "allocated"]
    assert data[["quantity", "allocated"]].iloc[-1].tolist() == [pool.quantity, pool.allocated]
    assert any("not recorded by the inventory" in c.value for c in at.caption)


def test_my_pools_search_and_columns(app):
    at = open_page(app("admin"), "my_pools")
    assert at.title[0].value == "All Pools"
    assert len(at.dataframe[0].value) == 2
    at.text_input(key="my_pools_search").input("simulation")
    at.run()
    assert list(at.dataframe[0].value["name"]) == ["Simulation team"]
    at.multiselect(key="my_pools_columns").set_value(["name", "quantity"])
    at.run()
    assert list(at.dataframe[0].value.columns) == ["name", "quantity"]


def test_manager_sees_only_own_pools(app):
    at = open_page(app("max"), "my_pools")
    assert at.title[0].value == "My Pools"
    assert set(at.dataframe[0].value["manager"]) == {"max"}


@pytest.mark.parametrize("username", sorted(DOWNLOADS))
def test_export_is_scoped_by_role(app, username):
    at = open_page(app(username), "export")
    keys = {
        b.key.removeprefix("export_") for b in at.download_button if b.key.startswith("export_")
    }
    assert keys == DOWNLOADS[username]


def test_every_table_has_a_download(app):
    for name in ("my_pools", "allocations"):
        at = open_page(app("admin"), name)
        assert len(at.download_button) >= len(at.dataframe) + len(at.table)


def test_export_csv_neutralises_formulas(app, monkeypatch):
    from vlm.services.exports import to_csv_bytes

    frame = pd.DataFrame({"description": ["=HYPERLINK(1)", "fine"]})
    text = to_csv_bytes(frame).decode()
    assert pd.read_csv(io.StringIO(text))["description"].tolist() == ["'=HYPERLINK(1)", "fine"]


@pytest.mark.parametrize("role", list(Role))
def test_dashboard_refreshes_itself(app, role):
    from tests.app.conftest import demo_user

    at = app(demo_user(role).username)
    assert any("refreshes every" in c.value for c in at.caption)


def test_over_committed_features_are_highlighted(app, demo_emulators):
    from tests.app.conftest import service_context
    from vlm.domain import SYSTEM_ACTOR
    from vlm.services import servers
    from vlm.ui.runtime import get_runtime

    at = app("admin")
    features = servers.server_features(service_context(), SYSTEM_ACTOR)
    pooled = features[features["pooled"] > 0]
    row = pooled.iloc[0]
    emulator = demo_emulators[row["server_name"]].state
    emulator.set_feature_count(row["feature_name"], row["feature_version"], 0)
    try:
        get_runtime().scheduler.sync_now()
        at.run()
        shown = " ".join(e.value for e in at.error)
        assert "over-committed server feature" in shown
        assert "have less licenses than their pools hold" in shown
        over = next(d.value for d in at.dataframe if "deficit" in d.value.columns)
        assert over["deficit"].iloc[0] == row["pooled"]
        assert any(name.startswith("⚠") for name in _chart_names(at))
    finally:
        emulator.set_feature_count(row["feature_name"], row["feature_version"], int(row["total"]))
        get_runtime().scheduler.sync_now()


def _chart_names(at) -> list[str]:
    import json

    names: list[str] = []
    for chart in at.get("plotly_chart"):
        figure = json.loads(chart.proto.spec)
        for trace in figure["data"]:
            names.extend(str(x) for x in trace.get("x", []))
    return names


def test_export_preview_on_demand(app):
    at = open_page(app("ana"), "export")
    assert not at.dataframe
    at.toggle(key="preview_allocations").set_value(True)
    at.run()
    preview = at.dataframe[0].value
    assert {"host_id", "state", "pool_name", "starts_on", "ends_on", "phase"} <= set(
        preview.columns
    )
    assert len(preview) == len(DEMO_ALLOCATIONS) + len(DEMO_TIMEBOXED) + 2  # and the Sim nodes


def test_the_dashboard_reuses_its_figures_until_a_write_and_then_shows_it(app, monkeypatch):
    from tests.app.conftest import service_context, wait_for
    from vlm.domain import Actor
    from vlm.services import allocations, pools, reports
    from vlm.ui.runtime import get_runtime

    mia = Actor("mia", Role.MANAGER)
    at = app("mia")
    scheduler = get_runtime().scheduler
    assert wait_for(lambda: scheduler.last_alert_pass)  # the first pass and its alerts are done
    at.run()
    calls: list[str] = []
    real_kpis = reports.kpis
    monkeypatch.setattr(reports, "kpis", lambda *a, **k: calls.append("kpis") or real_kpis(*a, **k))

    def allocated() -> int:
        return int(next(m.value for m in at.metric if m.label == "Allocated"))

    before = allocated()
    at.run()
    assert calls == [] and allocated() == before  # nothing written: nothing read again

    ctx = service_context()
    pool_id = int(pools.list_pools(ctx, mia)["id"].iloc[0])
    feature = pools.pool_features(ctx, mia, pool_id).iloc[0]
    allocations.allocate(
        ctx, mia, pool_id, (feature["feature_name"], feature["feature_version"]), "USER", "zoe", 1
    )
    at.run()
    assert calls == ["kpis"]
    assert allocated() == before + 1


def test_the_export_counts_follow_a_write(app):
    from tests.app.conftest import service_context, wait_for
    from vlm.domain import Actor
    from vlm.services import allocations, pools
    from vlm.ui.runtime import get_runtime

    mia = Actor("mia", Role.MANAGER)
    at = open_page(app("mia"), "export")
    assert wait_for(lambda: get_runtime().scheduler.last_full_pass)

    def allocation_rows() -> int:
        at.run()
        texts = [m.value for m in at.markdown if m.value.endswith("row(s)")]
        return int(texts[1].split()[0].replace(",", ""))  # Pools, then Allocations

    before = allocation_rows()
    assert allocation_rows() == before
    ctx = service_context()
    pool_id = int(pools.list_pools(ctx, mia)["id"].iloc[0])
    feature = pools.pool_features(ctx, mia, pool_id).iloc[0]
    allocations.allocate(
        ctx, mia, pool_id, (feature["feature_name"], feature["feature_version"]), "USER", "zoe", 1
    )
    assert allocation_rows() == before + 1


def test_one_session_walks_every_page_twice_without_an_error(app):
    """Pages share the session's memo (vlm.ui.memo): going from one to the next and back must
    never hand a page another page's answer."""
    from vlm.ui.navigation import pages_for

    at = app("admin")
    for _ in range(2):
        for page in pages_for(Role.ADMIN):
            at.switch_page(page.path)
            at.run()
            assert not at.exception, (page.url_path, [e.value for e in at.exception])
