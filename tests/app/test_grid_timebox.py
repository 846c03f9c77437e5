"""Time-boxed allocations in the allocation grid (AppTest on the seeded demo): start, end and
phase columns; a new row with an end day; an end changed in the grid; the Extend box (select,
pick the last day, confirm) with a refusal beyond the pool's maximum; and the CSV download
carrying the days."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page, service_context
from tests.app.test_grid_server_column import MIA, apply_added, grid, shown_pool_and_feature, tag_of
from vlm.domain import Actor, Role
from vlm.services import allocations, pools
from vlm.ui.grid.view import DISPLAY_COLUMNS, READ_ONLY, column_config

TODAY = date.today()
ADMIN = Actor("admin", Role.ADMIN)


def _stored(at: AppTest):
    pool_id, feature = shown_pool_and_feature(at)
    return allocations.list_allocations(service_context(), MIA, pool_id, feature).set_index(
        "host_id"
    )


def test_start_end_and_phase_columns_sit_after_the_inputs():
    config = column_config()
    assert DISPLAY_COLUMNS[4:7] == ["starts_on", "ends_on", "phase"]
    assert config["ends_on"]["type_config"]["format"] == "YYYY-MM-DD"
    assert "phase" in READ_ONLY and "ends_on" not in READ_ONLY


def test_the_demo_grid_shows_scheduled_active_and_expired_rows(app):
    at = open_page(app("mia"), "allocations")
    shown = grid(at).value.set_index("host_id")
    assert shown.loc["intern-kim", "phase"] == "scheduled"
    assert shown.loc["intern-kim", "status"] == "waiting for start"
    assert shown.loc["intern-kim", "starts_on"] == TODAY + timedelta(days=7)
    assert shown.loc["trainee-ola", "phase"] == "expired"
    assert shown.loc["0050569A0010", "ends_on"] == TODAY + timedelta(days=3)
    assert shown.loc["0050569A0010", "phase"] == "active"


def test_a_new_row_takes_its_days_and_an_end_edited_in_the_grid_is_saved(app):
    at = open_page(app("mia"), "allocations")
    end = (TODAY + timedelta(days=14)).isoformat()
    apply_added(at, [{"host_type": "USER", "host_id": "grid-dated", "count": 1, "ends_on": end}])
    assert _stored(at).loc["grid-dated", "ends_on"] == TODAY + timedelta(days=14)

    position = list(grid(at).value["host_id"]).index("grid-dated")
    later = (TODAY + timedelta(days=21)).isoformat()
    at.session_state[grid(at).key] = {"edited_rows": {position: {"ends_on": later}}}
    at.run()
    tag = tag_of(at)
    at.button(key=f"alloc_review_{tag}").click().run()
    at.button(key=f"alloc_apply_{tag}").click().run()
    assert not at.exception, at.exception
    assert _stored(at).loc["grid-dated", "ends_on"] == TODAY + timedelta(days=21)


def test_extend_confirms_then_extends_and_reports_a_refused_row(app):
    at = open_page(app("mia"), "allocations")
    pool_id, _ = shown_pool_and_feature(at)
    stored = _stored(at)
    lee, kim = int(stored.loc["0050569A0010", "id"]), int(stored.loc["intern-kim", "id"])
    # at most 35 days: through day 40 Kim (from day 7) holds 34 days, Lee (allocated today) 41
    pools.set_pool_durations(service_context(), ADMIN, pool_id, max_days=35)
    at.run()
    tag = tag_of(at)
    at.multiselect(key=f"alloc_extend_rows_{tag}_0").set_value([lee, kim]).run()
    at.date_input(key=f"alloc_extend_day_{tag}").set_value(TODAY + timedelta(days=40)).run()
    at.button(key=f"alloc_extend_{tag}").click().run()
    assert _stored(at).loc["0050569A0010", "ends_on"] == TODAY + timedelta(days=3)

    at.button(key=f"alloc_extend_{tag}_confirm").click().run()
    assert not at.exception, at.exception
    stored = _stored(at)
    assert stored.loc["intern-kim", "ends_on"] == TODAY + timedelta(days=40)
    assert stored.loc["0050569A0010", "ends_on"] == TODAY + timedelta(days=3)
    assert any("Extended 1 row(s); 1 refused" in str(t.value) for t in at.markdown)
    report = at.session_state[f"_alloc_grid_{tag}"].results
    refused = [r for r in report if not r["ok"]]
    assert [r["host"] for r in refused] == ["ETHERNET 0050569A0010"]
    assert "at most 35 day(s)" in refused[0]["result"]


def test_an_admin_sets_a_pools_time_limits_and_a_bad_pair_is_refused_under_its_field(app):
    at = open_page(app("admin"), "pools")
    pool_id = int(at.selectbox(key="edit_pool").value)

    def submit(default_days: int, max_days: int) -> None:
        [default_box] = [n for n in at.number_input if n.label == "Default duration (days)"]
        [max_box] = [n for n in at.number_input if n.label == "Maximum duration (days)"]
        default_box.set_value(default_days)
        max_box.set_value(max_days)
        [save] = [b for b in at.button if b.label == "Save time limits"]
        save.click().run()
        assert not at.exception, at.exception

    submit(40, 30)
    assert any("longer than the maximum" in e.value for e in at.error)
    stored = pools.list_pools(service_context(), ADMIN).set_index("id")
    assert pd.isna(stored.loc[pool_id, "max_duration_days"])

    submit(14, 90)
    stored = pools.list_pools(service_context(), ADMIN).set_index("id")
    assert (
        stored.loc[pool_id, "default_duration_days"],
        stored.loc[pool_id, "max_duration_days"],
    ) == (
        14,
        90,
    )
