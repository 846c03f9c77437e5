"""Bulk import shows its result where the user is looking (issue #8 item 3): rows accepted,
rows refused with the reason for each, and the refused rows as a CSV to fix and upload again."""

from __future__ import annotations

import io

import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page, service_context, wait_for
from vlm.domain import Actor, Role
from vlm.services import allocations, pools
from vlm.services.bulk import parse_bulk_allocations
from vlm.services.exports import to_csv_bytes
from vlm.ui.grid import bulk, report
from vlm.ui.runtime import get_runtime

MIA = Actor("mia", Role.MANAGER)
GOOD = "0050569AAC01"
UPLOAD = (
    "host_id,host_type,count,description\n"
    f"{GOOD},ETHERNET,1,bulk one\n"
    "bad-id,ETHERNET,1,bulk two\n"
    "0050569AAC02,ETHERNET,100000,far too many\n"
)
NEXT = "host_id\n0050569AAC09"


def walk(node, ancestors: tuple = ()):
    yield node, ancestors
    for child in getattr(node, "children", {}).values():
        yield from walk(child, (*ancestors, node))


def in_an_expander(at: AppTest, kind: str, predicate) -> list[bool]:
    """For every element of a kind matching predicate: whether it sits inside an expander."""
    return [
        any(getattr(a, "type", None) == "expander" for a in ancestors)
        for node, ancestors in walk(at.main)
        if getattr(node, "type", None) == kind and predicate(node)
    ]


def record_refused_download(monkeypatch) -> dict[str, object]:
    """The refused-rows download's data, by name, as the page hands it to the button."""
    real = bulk.download_csv
    seen: dict[str, object] = {}

    def recording(frame, name, **kwargs):
        seen[name] = lambda: to_csv_bytes(frame.copy())
        return real(frame, name, **kwargs)

    monkeypatch.setattr(bulk, "download_csv", recording)
    return seen


def grid_tag(at: AppTest) -> str:
    return at.data_editor[0].key.removeprefix("alloc_grid_").rsplit("_", 1)[0]


def preview_rows(at: AppTest, text: str) -> AppTest:
    tag = grid_tag(at)
    at.text_area(key=f"bulk_text_{tag}").input(text)
    at.button(key=f"bulk_preview_{tag}").click()
    at.run()
    assert not at.exception, at.exception
    return at


def bulk_import_rows(at: AppTest, text: str) -> AppTest:
    tag = grid_tag(at)
    preview_rows(at, text)
    at.button(key=f"bulk_apply_{tag}").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_result_is_in_the_open_with_each_refusal_and_its_reason(app):
    at = bulk_import_rows(open_page(app("mia"), "allocations"), UPLOAD)

    accepted = [s.value for s in at.success if "accepted" in s.value]
    assert accepted == ["1 row(s) accepted and allocated."]
    assert in_an_expander(at, "success", lambda n: "accepted" in n.value) == [False]
    assert in_an_expander(at, "error", lambda n: "refused" in n.value) == [False]

    (refused,) = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert in_an_expander(at, "dataframe", lambda n: "reason" in n.value.columns) == [False]
    assert refused["line"].tolist() == [3, 4]
    assert refused["host_id"].tolist() == ["bad-id", "0050569AAC02"]
    assert "12 hex digits" in refused["reason"].iloc[0]
    assert refused["reason"].iloc[1]  # the service's refusal (no room) says why

    pool_id = int(pools.list_pools(service_context(), MIA)["id"].iloc[0])
    hosts = set()
    for _, feature in pools.pool_features(service_context(), MIA, pool_id).iterrows():
        key = (feature["feature_name"], feature["feature_version"])
        hosts |= set(allocations.list_allocations(service_context(), MIA, pool_id, key)["host_id"])
    assert GOOD in hosts and "0050569AAC02" not in hosts


def test_the_refused_rows_download_in_the_upload_columns_plus_reason_and_read_back(
    app, monkeypatch
):
    downloads = record_refused_download(monkeypatch)
    bulk_import_rows(open_page(app("mia"), "allocations"), UPLOAD)

    data = downloads["refused rows"]()
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["host_id", "host_type", "count", "description", "reason"]
    assert frame["host_id"].tolist() == ["bad-id", "0050569AAC02"]
    assert frame["description"].tolist() == ["bulk two", "far too many"]

    again = parse_bulk_allocations(data.decode("utf-8"))
    assert not again.refused
    assert [r.cells["host_id"] for r in again.rows] == ["bad-id", "0050569AAC02"]
    assert [r.cells["count"] for r in again.rows] == ["1", "100000"]


def test_a_new_preview_replaces_the_last_result(app):
    at = preview_rows(bulk_import_rows(open_page(app("mia"), "allocations"), UPLOAD), NEXT)
    assert not [s for s in at.success if "accepted" in s.value]
    assert not [d for d in at.dataframe if "reason" in d.value.columns]
    assert any("1 row(s) ready" in m.value for m in at.markdown)


def test_a_preview_clicked_as_the_grid_refreshes_is_not_lost(app, monkeypatch):
    """The grid re-reads itself (st.rerun) when its pending rows reach the server while the page
    runs; a Preview clicked in that same run still previews and still drops the last result."""
    at = open_page(app("mia"), "allocations")
    runtime = get_runtime()
    assert wait_for(lambda: runtime.scheduler.last_full_pass)
    pushed: list[set[int]] = []
    monkeypatch.setattr(
        service_context(), "on_allocations_changed", lambda ids: pushed.append(set(ids))
    )
    bulk_import_rows(at, UPLOAD)
    rows = at.data_editor[0].value
    (good_id,) = rows.loc[rows["host_id"] == GOOD, "id"].tolist()
    assert rows.loc[rows["host_id"] == GOOD, "status"].tolist() == ["pending"]

    real_states = report._states
    armed = [True]

    def applied_while_the_page_runs(page, scope, source):
        """The sync applies the bulk rows after the grid read them, before their states are."""
        if armed.pop() if armed else False:
            runtime.scheduler.push(set().union(*pushed))
            assert wait_for(
                lambda: (
                    allocations.allocation_states(service_context(), MIA, [int(good_id)])[
                        "state"
                    ].tolist()
                    == ["applied"]
                )
            )
        return real_states(page, scope, source)

    monkeypatch.setattr(report, "_states", applied_while_the_page_runs)
    preview_rows(at, NEXT)
    assert not armed  # the race happened in the Preview's run
    assert not [s for s in at.success if "accepted" in s.value]
    assert any("1 row(s) ready" in m.value for m in at.markdown)
    rows = at.data_editor[0].value
    assert rows.loc[rows["host_id"] == GOOD, "status"].tolist() == ["applied"]


def test_dismiss_hides_the_result_and_keeps_the_rows(app):
    at = bulk_import_rows(open_page(app("mia"), "allocations"), UPLOAD)
    at.button(key=f"bulk_dismiss_{grid_tag(at)}").click()
    at.run()
    assert not at.exception
    assert not [s for s in at.success if "accepted" in s.value]
    assert not [d for d in at.dataframe if "reason" in d.value.columns]
    assert GOOD in at.data_editor[0].value["host_id"].tolist()
