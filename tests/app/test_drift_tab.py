"""Issue #8 item 8: the Drift tab of the Physical LMs page is a history. A reservation deleted on
the license server is shown as drift once a read saw it missing, and after the silent repair
the history holds a "found" (missing) and a "repaired" event; filters and CSV export follow.

The reservation is deleted over the emulator's FNE REST API, so each test here runs its own demo
emulators and database template: the session-wide ones stay as other tests expect them, and
the group VLM re-creates (under a new id) does not read as a restart to the next test."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import (
    open_page,
    open_section,
    prepare_demo_template,
    service_context,
    wait_for,
)
from tests.app.test_admin_pages import record_downloads
from vlm.demo import EMULATOR_ADMIN_PASSWORD, start_demo_emulators
from vlm.domain import SYSTEM_ACTOR, reservation_group_name
from vlm.flexnet import FlexNetClient
from vlm.services import allocations, servers
from vlm.sync import pull_inventory
from vlm.ui.runtime import get_runtime

HOST = ("USER", "jsmith")  # a demo allocation of Mia's CAD pool


@pytest.fixture
def demo_emulators() -> Iterator[dict]:
    running = start_demo_emulators(None)
    yield running
    for emulator in running.values():
        emulator.stop()


@pytest.fixture
def demo_template(tmp_path_factory, demo_emulators) -> Path:
    path = tmp_path_factory.mktemp("drift-demo") / "template.duckdb"
    return prepare_demo_template(path, demo_emulators)


def the_hosts_allocation() -> dict:
    """The demo allocation of HOST: its id, count, feature and the server it landed on."""
    frame = allocations.visible_allocations(service_context(), SYSTEM_ACTOR)
    mask = (frame["host_type"] == HOST[0]) & (frame["host_id"] == HOST[1])
    [row] = frame[mask].to_dict("records")
    return row


def api(emulator) -> FlexNetClient:
    return FlexNetClient(emulator.url, username="admin", password=EMULATOR_ADMIN_PASSWORD)


def delete_the_reservation_on_the_server(emulator, group_name: str) -> None:
    """What someone does outside VLM: DELETE …/reservationgroups/{gid}/reservations/{rid}."""
    with api(emulator) as client:
        [group] = client.reservation_groups(name=group_name)
        [reservation] = client.reservations(group.id)
        client.delete_reservation(group.id, reservation.id)
        assert client.reservations(group.id) == []


def held_on_the_server(emulator, group_name: str) -> dict[tuple[str, str], int]:
    """(feature, version) -> count the server holds for HOST in VLM's group."""
    with api(emulator) as client:
        groups = client.reservation_groups(name=group_name)
        held: dict[tuple[str, str], int] = {}
        for group in groups:
            for reservation in client.reservations(group.id):
                assert (reservation.host_id.type, reservation.host_id.value) == HOST
                for entry in reservation.entries:
                    held[(entry.feature_name, entry.feature_version)] = entry.count
        return held


def open_server(at: AppTest, server_id: int) -> AppTest:
    at.selectbox(key="server_selected").set_value(server_id)
    at.run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest, column: str) -> pd.DataFrame:
    """The one table on the page that has this column."""
    [frame] = [d.value for d in at.dataframe if column in d.value.columns]
    return frame


def history(at: AppTest) -> pd.DataFrame:
    return table(at, "happened_at")


def has_table(at: AppTest, column: str) -> bool:
    return any(column in d.value.columns for d in at.dataframe)


def of_host(at: AppTest, column: str) -> pd.DataFrame:
    """The rows about HOST of the page's table with this column (none when there is no table:
    the demo's east server has drift of its own, the Simulation team's dropped count)."""
    if not has_table(at, column):
        return pd.DataFrame(columns=["host_id"])
    frame = table(at, column)
    return frame[frame["host_id"] == HOST[1]].reset_index(drop=True)


def no_drift_claimed(at: AppTest) -> bool:
    return any("No drift" in s.value for s in at.success)


@pytest.fixture
def admin_on_the_servers_page(app) -> AppTest:
    """The admin on Physical LMs, once the app's start-up sync pass is over (so that only the
    test's own reads and syncs touch the servers from here on)."""
    at = app("admin")
    scheduler = get_runtime().scheduler
    assert scheduler is not None
    assert wait_for(lambda: scheduler.last_full_pass, timeout=30)
    return open_section(open_page(at, "servers"), "server_tab", "Drift")


def test_a_deleted_reservation_is_found_by_the_read_then_repaired_and_both_are_history(
    admin_on_the_servers_page, demo_emulators
):
    at = admin_on_the_servers_page
    row = the_hosts_allocation()
    frame = servers.list_servers(service_context(), SYSTEM_ACTOR)
    server_id = int(frame.loc[frame["name"] == row["server_name"], "id"].item())
    emulator = demo_emulators[row["server_name"]]
    group = reservation_group_name(service_context().settings.group_prefix, *HOST)
    feature = (row["feature_name"], row["feature_version"])
    assert held_on_the_server(emulator, group) == {feature: row["count"]}
    open_server(at, server_id)
    assert of_host(at, "happened_at").empty  # no drift recorded for this host yet
    report_before = of_host(at, "expected")
    assert report_before.empty

    delete_the_reservation_on_the_server(emulator, group)
    at.run()
    # VLM has not read the server since: it claims no more than its last read showed
    assert of_host(at, "expected").empty

    assert pull_inventory(service_context(), server_id).ok  # a read, not yet the repair
    at.run()

    assert not no_drift_claimed(at)
    [found] = of_host(at, "expected").to_dict("records")
    assert (found["group"], found["kind"], found["expected"]) == ("found", "missing", row["count"])
    assert any("difference(s) at the last read" in w.value for w in at.warning)
    before_sync = of_host(at, "happened_at")
    assert before_sync[["group", "kind", "host_id", "count"]].values.tolist() == [
        ["found", "missing", HOST[1], row["count"]]
    ]
    assert "missing on the license server" in before_sync["detail"].iloc[0]

    at.button(key="sync_now").click()
    at.run()

    assert held_on_the_server(emulator, group) == {feature: row["count"]}
    assert allocations.allocation_states(service_context(), SYSTEM_ACTOR, [row["id"]])[
        "state"
    ].tolist() == ["applied"]
    assert of_host(at, "expected").empty
    after_sync = of_host(at, "happened_at")  # newest first
    assert after_sync[["group", "kind", "host_id", "count"]].values.tolist() == [
        ["repaired", "repaired", HOST[1], row["count"]],
        ["found", "missing", HOST[1], row["count"]],
    ]


def test_the_history_filters_by_group_and_time_span_and_exports_what_it_shows(
    admin_on_the_servers_page, demo_emulators, monkeypatch
):
    downloads = record_downloads(monkeypatch)
    at = admin_on_the_servers_page
    row = the_hosts_allocation()
    frame = servers.list_servers(service_context(), SYSTEM_ACTOR)
    server_id = int(frame.loc[frame["name"] == row["server_name"], "id"].item())
    group = reservation_group_name(service_context().settings.group_prefix, *HOST)
    delete_the_reservation_on_the_server(demo_emulators[row["server_name"]], group)
    at.button(key="sync_now").click()
    at.run()
    open_server(at, server_id)
    assert of_host(at, "happened_at")["group"].tolist() == ["repaired", "found"]
    service_context().db.write(
        lambda cur: cur.execute(
            "UPDATE drift_events SET happened_at = happened_at - INTERVAL 40 DAY "
            "WHERE kind = 'missing' AND server_id = ?",
            [server_id],
        )
    )

    at.run()  # the default span is the last 30 days
    assert of_host(at, "happened_at")["group"].tolist() == ["repaired"]
    at.selectbox(key=f"drift_span_{server_id}").set_value("All time")
    at.run()
    assert of_host(at, "happened_at")["group"].tolist() == ["repaired", "found"]
    at.multiselect(key=f"drift_groups_{server_id}").set_value(["found", "conflict"])
    at.run()
    shown = history(at)
    assert set(shown["group"]) <= {"found", "conflict"}
    assert of_host(at, "happened_at")[["group", "kind"]].values.tolist() == [["found", "missing"]]
    exported = pd.read_csv(io.BytesIO(downloads["drift history"]()))
    assert exported["Event"].tolist() == shown["kind"].tolist()
    assert exported["What happened"].tolist() == shown["group"].tolist()
    assert HOST[1] in exported["Host id"].tolist()

    at.multiselect(key=f"drift_groups_{server_id}").set_value(["resolved"])
    at.run()
    assert not has_table(at, "happened_at")
    assert any("No drift event of the chosen kinds" in i.value for i in at.info)
