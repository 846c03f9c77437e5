"""Quantity requests in the app: a manager asks for more on My Pools (a request without a reason
is refused under its field) and withdraws it after a confirmation; an admin sees the demo's open
request with the VLM's availability on the Requests page, approves it partly after a confirmation
(the pool grows) and finds it in the history; a decline without a reason is refused; the sidebar
counts open requests for admins; a user sets their own notification destinations on Profile."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page, service_context
from vlm.domain import SYSTEM_ACTOR, Actor, Role
from vlm.services import notifications, requests

MIA = Actor("mia", Role.MANAGER)


def open_requests() -> list[int]:
    frame = requests.list_requests(service_context(), SYSTEM_ACTOR, open_only=True)
    return [int(i) for i in frame["id"]]


def ask_in_form(at: AppTest, quantity: int, reason: str) -> AppTest:
    next(n for n in at.number_input if n.label == "How many more").set_value(quantity)
    next(t for t in at.text_area if t.label == "Reason").input(reason)
    next(b for b in at.button if b.label == "Send request").click()
    return at.run()


def test_a_manager_asks_for_more_and_withdraws(app) -> None:
    at = open_page(app("mia"), "my_pools")
    before = open_requests()
    assert len(at.dataframe[-1].value) == len(before), "the demo's request is listed"

    ask_in_form(at, 3, "   ")
    assert any(e.value == "reason is empty" for e in at.error), [e.value for e in at.error]
    assert open_requests() == before

    ask_in_form(at, 3, "three interns")
    assert not at.error, [e.value for e in at.error]
    [new] = [i for i in open_requests() if i not in before]
    assert "Request for 3 more" in " ".join(s.value for s in at.success)

    at.selectbox(key="withdraw_choice").set_value(new)
    at.run()
    at.button(key="withdraw_request").click()
    at.run()
    assert "Withdraw request" in " ".join(w.value for w in at.warning)
    at.button(key=f"withdraw_request_{new}_confirm").click()
    at.run()

    assert not at.error, [e.value for e in at.error]
    assert open_requests() == before
    states = requests.list_requests(service_context(), MIA).set_index("id")["state"]
    assert states[new] == "withdrawn"


def test_an_admin_approves_the_demo_request_partly_and_the_pool_grows(app) -> None:
    [demo] = open_requests()
    ctx = service_context()
    row = requests.list_requests(ctx, SYSTEM_ACTOR).set_index("id").loc[demo]
    at = open_page(app("admin"), "requests")
    assert [link.proto.label for link in at.get("page_link") if "request" in link.proto.label] == [
        "1 open request(s)"
    ]
    shown = at.dataframe[0].value
    assert list(shown["vlm_available"]) == [row["vlm_available"]]

    at.radio(key=f"decision_{demo}").set_value("partial")
    at.run()
    at.number_input(key=f"granted_{demo}").set_value(1)
    at.text_area(key=f"decision_reason_{demo}").input("one now, one in March")
    at.run()
    at.button(key=f"decide_{demo}").click()
    at.run()
    question = " ".join(w.value for w in at.warning)
    assert f"from {row['pool_quantity']} to {row['pool_quantity'] + 1}" in question
    at.button(key=f"decide_{demo}_partial_confirm").click()
    at.run()

    assert not at.error, [e.value for e in at.error]
    decided = requests.list_requests(ctx, SYSTEM_ACTOR).set_index("id").loc[demo]
    assert (decided["state"], decided["granted"]) == ("partly approved", 1)
    assert decided["pool_quantity"] == row["pool_quantity"] + 1
    assert at.dataframe[-1].value["decision_reason"].tolist() == ["one now, one in March"]
    assert not [link for link in at.get("page_link") if "open request" in link.proto.label]


def test_a_decline_without_a_reason_is_refused_and_nothing_changes(app) -> None:
    [demo] = open_requests()
    at = open_page(app("admin"), "requests")
    at.radio(key=f"decision_{demo}").set_value("decline")
    at.run()
    at.button(key=f"decide_{demo}").click()
    at.run()
    at.button(key=f"decide_{demo}_decline_confirm").click()
    at.run()

    assert any(e.value == "reason is empty" for e in at.error), [e.value for e in at.error]
    assert open_requests() == [demo]


def test_a_user_sets_their_own_destinations_shown_masked(app) -> None:
    at = open_page(app("mia"), "profile")
    box = next(t for t in at.text_area if t.label == "Send my messages to")
    box.input("not a destination")
    next(b for b in at.button if b.label == "Save destinations").click()
    at.run()
    assert any(e.value.startswith("destination 1 is not a URL") for e in at.error)
    assert notifications.own_destinations(service_context(), MIA) == []

    next(t for t in at.text_area if t.label == "Send my messages to").input(
        "json://mia:s3cret@127.0.0.1:9/me"
    )
    next(b for b in at.button if b.label == "Save destinations").click()
    at.run()

    assert not at.error, [e.value for e in at.error]
    [label] = notifications.own_destinations(service_context(), MIA)
    assert "s3cret" not in label
    assert label in " ".join(c.value for c in at.code)

    at.button(key="own_destinations_test").click()
    at.run()
    assert any(e.value.startswith("Not delivered: ") for e in at.error), "port 9 refuses"
