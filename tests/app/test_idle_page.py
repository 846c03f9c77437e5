"""The Idle licenses page on the demo: John Smith's seat, reserved 45 days ago and never used, is
listed with its cost; Mia releases it after confirming; an analyst reads without a release
button; the admin saves the policy (a bad one is refused under its field) and a seat price."""

from __future__ import annotations

from tests.app.conftest import open_page, open_section, service_context
from vlm.demo import DEMO_SEAT_PRICE, IDLE_DEMO_HOST
from vlm.domain import SYSTEM_ACTOR
from vlm.services import harvesting


def idle_hosts(at) -> list[str]:
    tables = [d.value for d in at.dataframe if "host_id" in d.value.columns]
    return sorted(tables[0]["host_id"]) if tables else []


def test_a_manager_sees_the_idle_seat_with_its_cost_and_releases_it(app) -> None:
    at = open_page(app("mia"), "idle")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert idle_hosts(at) == [IDLE_DEMO_HOST]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Idle seats"] == "1" and metrics["Their cost"] == f"{DEMO_SEAT_PRICE:,.2f}"
    assert at.button(key="release_idle").disabled

    at.session_state["table_idle_allocations"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    at.button(key="release_idle").click()
    at.run()
    assert any("Release 1 idle allocation(s)" in w.value for w in at.warning), "asks first"
    at.button(key="release_idle_confirm_confirm").click()
    at.run()

    assert not at.error, [e.value for e in at.error]
    assert any("1 idle allocation(s) released" in s.value for s in at.success)
    state = service_context().db.scalar(
        "SELECT state FROM allocations WHERE host_id = ?", [IDLE_DEMO_HOST]
    )
    assert state in ("removing", None)


def test_an_analyst_reads_the_report_and_is_offered_no_release(app) -> None:
    at = open_page(app("ana"), "idle")
    assert idle_hosts(at) == [IDLE_DEMO_HOST]
    assert not [b for b in at.button if b.key == "release_idle"]
    assert not [e for e in at.expander if e.label in ("Release policy", "Seat prices")]


def test_the_admin_saves_the_policy_and_a_bad_one_is_refused_under_its_field(app) -> None:
    at = open_section(open_page(app("admin"), "idle"), "idle_policy_section")
    warn, release = _policy_inputs(at)
    warn.set_value(40)
    release.set_value(20)
    next(b for b in at.button if b.label == "Save policy").click()
    at.run()
    assert any("must be more than warn after (40)" in e.value for e in at.error)
    assert harvesting.harvest_policy(service_context(), SYSTEM_ACTOR)["warn_after_days"] == 30

    warn, release = _policy_inputs(at)
    release.set_value(90)
    next(b for b in at.button if b.label == "Save policy").click()
    at.run()
    policy = harvesting.harvest_policy(service_context(), SYSTEM_ACTOR)
    assert (policy["warn_after_days"], policy["release_after_days"]) == (40, 90)


def _policy_inputs(at):
    found = {n.label: n for n in at.number_input}
    return found["Warn after (days)"], found["Release after (days)"]


def test_the_admin_sets_a_seat_price(app) -> None:
    at = open_section(open_page(app("admin"), "idle"), "idle_prices_section")
    name, version = next(s for s in at.selectbox if s.label == "Feature").value
    next(n for n in at.number_input if n.label == "Price of one seat").set_value(125.5)
    next(b for b in at.button if b.label == "Save price").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    prices = harvesting.list_prices(service_context(), SYSTEM_ACTOR)
    priced = prices.set_index(["feature_name", "feature_version"])["seat_price"]
    assert priced[(name, version)] == 125.5


def test_a_long_list_is_cut_for_the_browser_and_downloadable_whole(app, monkeypatch) -> None:
    from vlm.ui import idle_report

    monkeypatch.setattr(idle_report, "SHOWN_MAX", 0)
    at = open_page(app("admin"), "idle")
    assert not at.exception
    assert any("The 0 idle longest of 1 are listed" in c.value for c in at.caption)
    assert idle_hosts(at) == []
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download all idle allocations (CSV)" in labels
