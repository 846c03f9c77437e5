"""The allocation grid applies seeded edits: add, edit, delete, and a refused row that is kept;
failed rows show the server's reason and can be retried."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import InitialValue, Selectbox

from tests.app.conftest import open_page, service_context, wait_for
from vlm.demo import DEMO_ALLOCATIONS, DEMO_TIMEBOXED
from vlm.domain import DESCRIPTION_MAX_LENGTH, Actor, Role
from vlm.flexnet import FlexNetClient, HostId, Reservation, ReservationEntry, ReservationGroup
from vlm.services import allocations, pools
from vlm.ui.grid.drafts import Drafts, build_source
from vlm.ui.grid.view import UNSAVED_MARKER
from vlm.ui.runtime import get_runtime

MIA = Actor("mia", Role.MANAGER)


def grid(at: AppTest):
    (editor,) = at.data_editor
    return editor


def selectbox(at: AppTest, label: str):
    (box,) = [b for b in at.selectbox if b.label == label]
    return box


def mias_pool_and_feature() -> tuple[int, tuple[str, str]]:
    ctx = service_context()
    pool_id = int(pools.list_pools(ctx, MIA)["id"].iloc[0])
    features = pools.pool_features(ctx, MIA, pool_id)
    busiest = features.sort_values("allocations", ascending=False).iloc[0]
    return pool_id, (busiest["feature_name"], busiest["feature_version"])


def review_and_apply(at: AppTest, tag: str) -> AppTest:
    at.button(key=f"alloc_review_{tag}").click()
    at.run()
    assert at.button(key=f"alloc_apply_{tag}")
    at.button(key=f"alloc_apply_{tag}").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_grid_edits_are_previewed_applied_and_refused_rows_kept(app):
    at = open_page(app("mia"), "allocations")
    pool_id, feature = mias_pool_and_feature()
    editor = grid(at)
    source: pd.DataFrame = editor.value
    assert editor.editing_mode == "dynamic"
    assert list(source.index) == list(range(len(source)))
    assert len(source) == len(DEMO_ALLOCATIONS) + len(DEMO_TIMEBOXED)
    key = editor.key
    tag = key.removeprefix("alloc_grid_").rsplit("_", 1)[0]
    first_id, deleted_id = int(source["id"].iloc[0]), int(source["id"].iloc[2])

    at.session_state[key] = {
        "edited_rows": {0: {"description": "edited in the grid"}},
        "added_rows": [
            {"host_type": "ETHERNET", "host_id": "00:50:56:9a:ab:01", "count": 1,
             "description": "new lab PC"},
            {"host_type": "ETHERNET", "host_id": "not-a-mac", "count": 1,
             "description": "typo"},
        ],
        "deleted_rows": [2],
    }  # fmt: skip
    at.run()
    at.button(key=f"alloc_review_{tag}").click()
    at.run()
    review = at.table[0].value
    assert list(review["Action"]) == ["edit", "remove", "add", "add"]
    assert "Review" in " ".join(m.value for m in at.markdown)

    at.button(key=f"alloc_apply_{tag}").click()
    at.run()
    assert not at.exception

    # the services show the result
    ctx = service_context()
    rows = allocations.list_allocations(ctx, MIA, pool_id, feature)
    by_host = rows.set_index("host_id")
    assert by_host.loc["0050569AAB01", "description"] == "new lab PC"
    assert rows.loc[rows["id"] == first_id, "description"].item() == "edited in the grid"
    assert deleted_id not in set(rows["id"])
    assert "not-a-mac" not in set(rows["host_id"])

    # the refused row is reported next to the row and kept as typed in a fresh editor
    fresh = grid(at)
    assert fresh.key != key
    kept = fresh.value[fresh.value["id"].isna()]
    assert list(kept["host_id"]) == ["not-a-mac"]
    assert "12 hex digits" in kept["problem"].iloc[0]
    assert kept["description"].iloc[0] == "typo"
    report = at.table[0].value
    assert any(r.startswith("✗") and "12 hex digits" in r for r in report["Result"])
    assert sum(r.startswith("✓") for r in report["Result"]) == 3

    # the reconciler pushes the new row; the report follows its state
    new_id = int(by_host.loc["0050569AAB01", "id"])
    assert wait_for(
        lambda: allocations.allocation_states(ctx, MIA, [new_id])["state"].tolist() == ["applied"]
    )
    at.run()
    states = dict(zip(at.table[0].value["Host"], at.table[0].value["Reservation"], strict=True))
    assert states["ETHERNET 0050569AAB01"] == "applied ✓"

    # correcting the kept row and applying again allocates it
    draft_row = int(kept.index[0])
    at.session_state[fresh.key] = {"edited_rows": {draft_row: {"host_id": "0050569AAB02"}}}
    at.run()
    review_and_apply(at, tag)
    rows = allocations.list_allocations(ctx, MIA, pool_id, feature)
    assert "0050569AAB02" in set(rows["host_id"])
    assert grid(at).value["id"].notna().all()


def test_discard_drops_pending_edits(app):
    at = open_page(app("mia"), "allocations")
    key = grid(at).key
    tag = key.removeprefix("alloc_grid_").rsplit("_", 1)[0]
    at.session_state[key] = {"added_rows": [{"host_id": "0050569AAB03"}]}
    at.run()
    at.button(key=f"alloc_discard_{tag}").click()
    at.run()
    assert grid(at).key != key
    pool_id, feature = mias_pool_and_feature()
    rows = allocations.list_allocations(service_context(), MIA, pool_id, feature)
    assert "0050569AAB03" not in set(rows["host_id"])


def test_bulk_add_reports_every_row(app):
    at = open_page(app("mia"), "allocations")
    tag = grid(at).key.removeprefix("alloc_grid_").rsplit("_", 1)[0]
    at.text_area(key=f"bulk_text_{tag}").input(
        "host_id,host_type,description\n0050569AAC01,ETHERNET,bulk one\nbad-id,ETHERNET,bulk two"
    )
    at.button(key=f"bulk_preview_{tag}").click()
    at.run()
    assert not at.exception
    preview = next(d.value for d in at.dataframe if "line" in d.value.columns)
    assert list(preview["line"]) == [2, 3]
    assert list(preview["status"]) == ["ready", "refused"]
    assert "12 hex digits" in preview["problem"].iloc[1]
    pool_id, feature = mias_pool_and_feature()
    rows = allocations.list_allocations(service_context(), MIA, pool_id, feature)
    assert "0050569AAC01" not in set(rows["host_id"])  # nothing written before the confirmation
    at.button(key=f"bulk_apply_{tag}").click()
    at.run()
    assert not at.exception
    report = next(d.value for d in at.dataframe if "message" in d.value.columns)
    assert list(report["result"]) == ["added", "refused"]
    assert "12 hex digits" in report["message"].iloc[1]
    rows = allocations.list_allocations(service_context(), MIA, pool_id, feature)
    assert "0050569AAC01" in set(rows["host_id"])
    assert "bad-id" not in set(rows["host_id"])


def test_managers_only_pick_their_own_pools(app):
    at = open_page(app("max"), "allocations")
    pool_box = selectbox(at, "Pool")
    assert pool_box.options and all("manager max" in o for o in pool_box.options)


def test_a_pool_link_preselects_the_pool(app):
    at = app("admin")
    frame = pools.list_pools(service_context(), Actor("admin", Role.ADMIN))
    simulation = int(frame[frame["name"] == "Simulation team"]["id"].iloc[0])
    at.query_params["pool"] = str(simulation)
    open_page(at, "allocations")
    assert selectbox(at, "Pool").value == simulation


def _servers_of(pool_id: int, feature: tuple[str, str]) -> dict[int, str]:
    """Server id → name of the servers a pool's feature draws on."""
    rows = service_context().db.query(
        "SELECT DISTINCT s.id, s.name FROM pool_portions pp "
        "JOIN server_features sf ON sf.id = pp.server_feature_id "
        "JOIN license_servers s ON s.id = sf.server_id "
        "WHERE pp.pool_id = ? AND sf.feature_name = ? AND sf.feature_version = ?",
        [pool_id, *feature],
    )
    return dict(rows)


def _foreign_groups(emulators: list, feature: tuple[str, str], host: str) -> list:
    """Another team reserves `host` on each server: VLM's reservation for it is refused."""
    created = []
    for emulator in emulators:
        with FlexNetClient(emulator.url, username="admin", password="admin") as api:
            entry = ReservationEntry(feature[0], feature[1], 1)
            group = ReservationGroup(
                None, "other-team-retry", (Reservation(HostId("USER", host), (entry,)),)
            )
            created.append((emulator, api.create_reservation_group(group).id))
    return created


def _drop_groups(created: list) -> None:
    for emulator, group_id in created:
        with FlexNetClient(emulator.url, username="admin", password="admin") as api:
            api.delete_group(group_id)


def _state(allocation_id: int) -> tuple[str, str | None]:
    frame = allocations.allocation_states(service_context(), MIA, [allocation_id])
    return frame["state"].iloc[0], frame["last_error"].iloc[0]


def test_a_failed_row_shows_the_servers_reason_and_retry_sends_it_again(
    app, demo_emulators, monkeypatch
):
    at = open_page(app("mia"), "allocations")
    runtime = get_runtime()
    assert wait_for(lambda: runtime.scheduler.last_full_pass)
    ctx = service_context()
    pool_id, feature = mias_pool_and_feature()
    servers = _servers_of(pool_id, feature)
    blockers = _foreign_groups([demo_emulators[n] for n in servers.values()], feature, "probe")
    try:
        probe = allocations.allocate(ctx, MIA, pool_id, feature, "USER", "probe", 1)
        assert wait_for(lambda: _state(probe)[0] == "failed")
    finally:
        _drop_groups(blockers)
    reason = _state(probe)[1]
    assert reason

    # the failed row says so in the grid, with the server's reason on the row
    at.run()
    source = grid(at).value
    row = source[source["host_id"] == "probe"].iloc[0]
    assert row["status"] == "failed"
    assert reason in row["problem"]

    # select it, press Retry, confirm: the service puts it back to pending and wakes the sync
    pushed: list[set[int]] = []
    monkeypatch.setattr(ctx, "on_allocations_changed", lambda ids: pushed.append(set(ids)))
    tag = grid(at).key.removeprefix("alloc_grid_").rsplit("_", 1)[0]
    at.multiselect(key=f"alloc_retry_rows_{tag}_0").select(probe)
    at.run()
    at.button(key=f"alloc_retry_{tag}").click()
    at.run()
    assert _state(probe)[0] == "failed"  # nothing happens before the confirmation
    at.button(key=f"alloc_retry_{tag}_confirm").click()
    at.run()
    assert not at.exception
    assert _state(probe) == ("pending", None)
    assert pushed and pushed[0] <= set(servers)
    report = at.table[0].value
    assert list(report["Result"]) == ["✓ queued for retry"]

    # the cause is gone: the reconciler applies it
    runtime.scheduler.push(pushed[0])
    assert wait_for(lambda: _state(probe)[0] == "applied")
    allocations.remove_allocation(ctx, MIA, pool_id, probe)
    runtime.scheduler.push(pushed[0])
    assert wait_for(lambda: allocations.allocation_states(ctx, MIA, [probe]).empty)


def test_grid_rows_say_their_state_and_the_servers_reason():
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "host_type": ["USER"] * 4,
            "host_id": ["a", "b", "c", "d"],
            "count": [1, 1, 1, 1],
            "description": [""] * 4,
            "state": ["applied", "failed", "pending", "disabled"],
            "last_error": [None, "not enough licenses", "timed out", "entry disabled"],
            "created_at": pd.to_datetime(["2026-01-01"] * 4),
        }
    )
    source = build_source(frame, Drafts(edits={2: {"problem": "count must be whole"}}))
    assert list(source["status"]) == ["applied", "failed", "pending", "disabled by server"]
    assert list(source["problem"]) == [
        "",
        "count must be whole; not enough licenses",
        "retrying: timed out",
        "entry disabled",
    ]
    assert list(source["state"]) == ["applied", "failed", "pending", "disabled"]


# --- issue #8 item 1: the grid never acts on the wrong feature --------------------------------


@pytest.fixture
def browser_selectboxes(monkeypatch):
    """Send selectbox values the way a browser does.

    AppTest re-labels a selectbox's value with the labels of the last run; a browser sends back
    the label it holds: the one it was given when the widget appeared, or the one the user
    picked. When a label changes under a widget (say "5 of 6 available" → "4 of 6"), only the
    browser's way shows what Streamlit then does with the value."""
    held: dict[str, str] = {}
    relabelled = Selectbox._widget_state.fget

    def as_a_browser(box: Selectbox) -> WidgetState:
        state = relabelled(box)
        picked = not isinstance(box._value, InitialValue)
        if picked or box.id not in held or box.proto.set_value:
            held[box.id] = state.string_value
        state.string_value = held[box.id]
        return state

    monkeypatch.setattr(Selectbox, "_widget_state", property(as_a_browser))
    return held


def tag_of(at: AppTest) -> str:
    return grid(at).key.removeprefix("alloc_grid_").rsplit("_", 1)[0]


def shown_feature(at: AppTest) -> tuple[str, str]:
    return selectbox(at, "Feature").value


def feature_figures(pool_id: int, feature: tuple[str, str]) -> pd.Series:
    frame = pools.pool_features(service_context(), MIA, pool_id)
    mask = (frame["feature_name"] == feature[0]) & (frame["feature_version"] == feature[1])
    return frame[mask].iloc[0]


def metric(at: AppTest, label: str) -> int:
    (tile,) = [m for m in at.metric if m.label == label]
    return int(tile.value)


def open_quiet_feature(app) -> tuple[AppTest, int, tuple[str, str]]:
    """Mia's Allocations page on her pool's feature that is not the default (not the busiest)."""
    at = open_page(app("mia"), "allocations")
    pool_id, busiest = mias_pool_and_feature()
    assert shown_feature(at) == busiest
    quiet = other_feature(pool_id, busiest)
    selectbox(at, "Feature").set_value(quiet)
    at.run()
    assert shown_feature(at) == quiet
    return at, pool_id, quiet


def other_feature(pool_id: int, feature: tuple[str, str]) -> tuple[str, str]:
    frame = pools.pool_features(service_context(), MIA, pool_id)
    keys = [(r.feature_name, r.feature_version) for r in frame.itertuples()]
    return next(k for k in keys if k != feature)


def add_row(at: AppTest, host_id: str) -> None:
    at.session_state[grid(at).key] = {"added_rows": [{"host_type": "USER", "host_id": host_id}]}
    at.run()


def test_after_an_apply_the_chosen_feature_stays_and_its_label_follows(app, browser_selectboxes):
    at, pool_id, feature = open_quiet_feature(app)
    add_row(at, "first-after-pick")
    review_and_apply(at, tag_of(at))
    at.run()  # a rerun of any kind (the live refresh, another widget) after the Apply

    figures = feature_figures(pool_id, feature)
    assert shown_feature(at) == feature
    label = selectbox(at, "Feature").options[selectbox(at, "Feature").index]
    assert f"— {figures['available']} of {figures['quantity']} available" in label
    assert metric(at, "Available") == int(figures["available"])

    # the row typed next lands in the chosen feature
    add_row(at, "second-after-pick")
    assert shown_feature(at) == feature
    review_and_apply(at, tag_of(at))
    rows = allocations.list_allocations(service_context(), MIA, pool_id, feature)
    assert {"first-after-pick", "second-after-pick"} <= set(rows["host_id"])
    assert shown_feature(at) == feature


def test_unsaved_edits_survive_a_rerun_while_the_feature_changes_underneath(
    app, browser_selectboxes
):
    at, pool_id, feature = open_quiet_feature(app)
    add_row(at, "typed-not-applied")
    key = grid(at).key
    # someone else allocates in the same feature: its figures and label change
    allocations.allocate(service_context(), MIA, pool_id, feature, "USER", "elsewhere", 1)
    at.run()
    assert shown_feature(at) == feature
    assert grid(at).key == key
    assert "Pending: 1 to add, 0 to edit, 0 to remove." in " ".join(c.value for c in at.caption)
    review_and_apply(at, tag_of(at))
    rows = allocations.list_allocations(service_context(), MIA, pool_id, feature)
    assert {"typed-not-applied", "elsewhere"} <= set(rows["host_id"])


def test_the_choice_is_kept_in_the_url_and_a_link_opens_it(app):
    at, pool_id, feature = open_quiet_feature(app)
    assert at.query_params["pool"] == str(pool_id)
    assert at.query_params["feature"] == f"{feature[0]} {feature[1]}"

    linked = app("mia")
    linked.query_params.update(pool=str(pool_id), feature=f"{feature[0]} {feature[1]}")
    open_page(linked, "allocations")
    assert selectbox(linked, "Pool").value == pool_id
    assert shown_feature(linked) == feature
    assert not linked.warning


def test_the_choice_is_remembered_when_leaving_the_page(app):
    at, pool_id, feature = open_quiet_feature(app)
    open_page(at, "dashboard")
    at.query_params.clear()
    open_page(at, "allocations")
    assert shown_feature(at) == feature


def test_a_link_to_an_unknown_feature_falls_back_with_a_message(app):
    pool_id, busiest = mias_pool_and_feature()
    at = app("mia")
    at.query_params.update(pool=str(pool_id), feature="no_such 9.9")
    open_page(at, "allocations")
    assert shown_feature(at) == busiest
    assert any("has no feature 'no_such 9.9'" in w.value for w in at.warning)
    assert at.query_params["feature"] == f"{busiest[0]} {busiest[1]}"


def test_a_link_to_another_managers_pool_shows_a_message_and_only_own_pools(app):
    mias_pool, _ = mias_pool_and_feature()
    at = app("max")
    at.query_params["pool"] = str(mias_pool)
    open_page(at, "allocations")
    assert any(
        f"pool '{mias_pool}', which is not a pool you can open" in w.value for w in at.warning
    )
    own = pools.list_pools(service_context(), Actor("max", Role.MANAGER))
    assert selectbox(at, "Pool").value in set(own["id"])
    assert selectbox(at, "Pool").value != mias_pool
    assert all("CAD team" not in o for o in selectbox(at, "Pool").options)
    assert at.query_params["pool"] == str(selectbox(at, "Pool").value)


def test_switching_feature_with_unsaved_edits_asks_first(app, browser_selectboxes):
    at = open_page(app("mia"), "allocations")
    pool_id, busiest = mias_pool_and_feature()
    add_row(at, "kept-while-asking")
    key = grid(at).key
    other = other_feature(pool_id, busiest)
    selectbox(at, "Feature").set_value(other)
    at.run()

    # nothing switched: the same grid, its edits, and a question
    assert grid(at).key == key
    assert "The grid has edits you have not applied" in " ".join(w.value for w in at.warning)
    at.button(key="alloc_switch_keep").click()
    at.run()
    assert shown_feature(at) == busiest
    assert grid(at).key == key
    assert not [w for w in at.warning if "not applied" in w.value]
    assert "Pending: 1 to add" in " ".join(c.value for c in at.caption)

    selectbox(at, "Feature").set_value(other)
    at.run()
    at.button(key="alloc_switch_discard").click()
    at.run()
    assert shown_feature(at) == other
    assert "Pending: 0 to add" in " ".join(c.value for c in at.caption)
    for feature in pools.pool_features(service_context(), MIA, pool_id).itertuples():
        key_ = (feature.feature_name, feature.feature_version)
        rows = allocations.list_allocations(service_context(), MIA, pool_id, key_)
        assert "kept-while-asking" not in set(rows["host_id"])


def test_switching_without_edits_does_not_ask(app):
    at = open_page(app("mia"), "allocations")
    pool_id, busiest = mias_pool_and_feature()
    other = other_feature(pool_id, busiest)
    selectbox(at, "Feature").set_value(other)
    at.run()
    assert shown_feature(at) == other
    assert not _has_button(at, "alloc_switch_discard")


def _has_button(at: AppTest, key: str) -> bool:
    return any(b.key == key for b in at.button)


def leave_guards(at: AppTest) -> list:
    return [h for h in at.sidebar.get("html") if UNSAVED_MARKER in h.proto.body]


def test_leaving_is_guarded_only_while_edits_are_unsaved(app):
    at = open_page(app("mia"), "allocations")
    assert leave_guards(at) == []
    add_row(at, "guarded")
    (guard,) = leave_guards(at)
    assert guard.proto.unsafe_allow_javascript
    assert "beforeunload" in guard.proto.body
    at.button(key=f"alloc_discard_{tag_of(at)}").click()
    at.run()
    assert leave_guards(at) == []


def test_a_description_up_to_the_services_limit_is_accepted(app):
    at = open_page(app("mia"), "allocations")
    columns = json.loads(grid(at).proto.columns)
    assert columns["description"]["type_config"]["max_chars"] == DESCRIPTION_MAX_LENGTH
    long = "d" * DESCRIPTION_MAX_LENGTH
    first_id = int(grid(at).value["id"].iloc[0])
    at.session_state[grid(at).key] = {"edited_rows": {0: {"description": long}}}
    at.run()
    review_and_apply(at, tag_of(at))
    pool_id, feature = mias_pool_and_feature()
    rows = allocations.list_allocations(service_context(), MIA, pool_id, feature)
    assert rows.loc[rows["id"] == first_id, "description"].item() == long
