"""The allocation grid applies seeded edits: add, edit, delete, and a refused row that is kept;
failed rows show the server's reason and can be retried."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page, service_context, wait_for
from vlm.domain import Actor, Role
from vlm.flexnet import FlexNetClient, HostId, Reservation, ReservationEntry, ReservationGroup
from vlm.services import allocations, pools
from vlm.ui.grid_drafts import Drafts, build_source
from vlm.ui.runtime import get_runtime

MIA = Actor("mia", Role.MANAGER)


def grid(at: AppTest):
    (editor,) = at.data_editor
    return editor


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
    assert len(source) == 3
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
    assert list(review["action"]) == ["edit", "remove", "add", "add"]
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
    assert any(r.startswith("✗") and "12 hex digits" in r for r in report["result"])
    assert sum(r.startswith("✓") for r in report["result"]) == 3

    # the reconciler pushes the new row; the report follows its state
    new_id = int(by_host.loc["0050569AAB01", "id"])
    assert wait_for(
        lambda: allocations.allocation_states(ctx, MIA, [new_id])["state"].tolist() == ["applied"]
    )
    at.run()
    states = dict(zip(at.table[0].value["host"], at.table[0].value["reservation"], strict=True))
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
    pool_box = at.selectbox(key="alloc_pool")
    assert pool_box.options and all("manager max" in o for o in pool_box.options)


def test_a_pool_link_preselects_the_pool(app):
    at = app("admin")
    frame = pools.list_pools(service_context(), Actor("admin", Role.ADMIN))
    simulation = int(frame[frame["name"] == "Simulation team"]["id"].iloc[0])
    at.query_params["pool"] = str(simulation)
    open_page(at, "allocations")
    assert at.selectbox(key="alloc_pool").value == simulation


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
    assert list(report["result"]) == ["✓ queued for retry"]

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
