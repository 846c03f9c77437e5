"""Forms say what is wrong next to the field, in plain words (issue #8 item 2).

Each test drives the real app (AppTest) over the seeded demo database and checks both what the
screen shows and what the database holds.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import PAGES_DIR, demo_user, open_page, open_section, service_context
from vlm.domain import SYSTEM_ACTOR, Role
from vlm.services import pools, servers, users, vlms

ERROR_CLASS_NAMES = ("TransientError", "AuthenticationError", "FlexNetError", "Errno")


def walk(node, ancestors: tuple = ()) -> Iterator[tuple[object, tuple]]:
    """Every node under node, with the blocks it sits in."""
    yield node, ancestors
    for child in getattr(node, "children", {}).values():
        yield from walk(child, (*ancestors, node))


def column_holding(at: AppTest, label: str, form: str = "new_pool_q_"):
    """The column of a form (by its inputs' key prefix) that holds the input with this label."""
    for node, _ in walk(at.main):
        if getattr(node, "type", None) == "column" and any(
            n.label == label and n.key.startswith(form) for n in node.number_input
        ):
            return node
    raise AssertionError(f"no column holds the input {label!r}")


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def on_screen(at: AppTest) -> str:
    """All alert, markdown, caption and code text of the page."""
    texts = [e.value for kind in ("error", "warning", "success", "info") for e in getattr(at, kind)]
    texts += [m.value for m in at.markdown] + [c.value for c in at.caption]
    return "\n".join(texts)


def pool_names() -> set[str]:
    return set(pools.list_pools(service_context(), SYSTEM_ACTOR)["name"])


def engineering_bounds():
    """The bounds a new pool of the demo VLM gets, per feature."""
    ctx = service_context()
    frame = vlms.list_vlms(ctx, SYSTEM_ACTOR)
    vlm_id = int(frame[frame["name"] == "Engineering"]["id"].iloc[0])
    return vlm_id, pools.pool_quantity_bounds(ctx, SYSTEM_ACTOR, vlm_id)


def new_pool_input(at: AppTest, label: str):
    return next(n for n in at.number_input if n.key.startswith("new_pool_q_") and n.label == label)


def submit(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click()
    at.run()
    assert not at.exception, at.exception
    return at


# -- create pool: over what the VLM has ------------------------------------------------------


def test_create_pool_above_availability_says_which_feature_is_over_by_how_much(app):
    at = open_section(open_page(app("admin"), "pools"), "new_pool_section")
    _, bounds = engineering_bounds()
    feature = bounds.iloc[0]
    label = f"{feature['feature_name']} {feature['feature_version']}"
    available = int(feature["maximum"])
    at.text_input[0].input("QA team")
    new_pool_input(at, label).set_value(available + 3)
    submit(at, "Create pool")

    expected = f"{label}: {available + 3} requested, {available} available — 3 over"
    assert expected in [e.value for e in column_holding(at, label).error]
    assert any(e.startswith("Pool not created") and label in e for e in errors(at))
    assert new_pool_input(at, label).value == available + 3  # what was typed stays
    assert "QA team" not in pool_names()


def test_create_pool_within_availability_creates_it(app):
    at = open_section(open_page(app("admin"), "pools"), "new_pool_section")
    _, bounds = engineering_bounds()
    feature = bounds.iloc[0]
    label = f"{feature['feature_name']} {feature['feature_version']}"
    at.text_input[0].input("QA team")
    new_pool_input(at, label).set_value(int(feature["maximum"]))
    submit(at, "Create pool")
    assert not errors(at), errors(at)
    assert "QA team" in pool_names()
    assert any("Pool 'QA team' created" in s.value for s in at.success)


def test_create_pool_with_no_quantity_says_so(app):
    at = open_section(open_page(app("admin"), "pools"), "new_pool_section")
    at.text_input[0].input("QA team")
    submit(at, "Create pool")
    assert any("give at least one feature a quantity above 0" in e for e in errors(at))
    assert "QA team" not in pool_names()


def test_typed_quantities_are_kept_and_the_moved_feature_named_when_availability_drops(app):
    at = open_section(open_page(app("admin"), "pools"), "new_pool_section")
    vlm_id, bounds = engineering_bounds()
    feature = bounds.sort_values("maximum").iloc[-1]  # the feature with the most room
    key = (str(feature["feature_name"]), str(feature["feature_version"]))
    label = f"{key[0]} {key[1]}"
    shown = int(feature["maximum"])
    at.text_input[0].input("QA team")
    new_pool_input(at, label).set_value(shown)

    # another admin pools part of it while the form is open
    taken = 5
    manager = users.managers(service_context(), SYSTEM_ACTOR)[0]
    pools.create_pool(service_context(), SYSTEM_ACTOR, vlm_id, "Elsewhere", manager, {key: taken})
    submit(at, "Create pool")

    assert new_pool_input(at, label).value == shown  # not reset to 0
    now = shown - taken
    (message,) = [e.value for e in column_holding(at, label).error]
    assert message.startswith(f"{label}: {shown} requested, {now} available — {taken} over")
    assert f"Availability changed while you were editing: {now} available now (was {shown})" in (
        message
    )
    assert "give at least one feature" not in on_screen(at)
    assert "QA team" not in pool_names()


def test_edit_pool_below_allocated_is_refused_under_the_field_and_nothing_changes(app):
    at = open_page(app("admin"), "pools")
    frame = pools.list_pools(service_context(), SYSTEM_ACTOR)
    cad = frame[frame["name"] == "CAD team"].iloc[0]
    at.selectbox(key="edit_pool").set_value(int(cad["id"]))
    at.run()
    bounds = pools.pool_quantity_bounds(
        service_context(), SYSTEM_ACTOR, int(cad["vlm_id"]), int(cad["id"])
    )
    used = bounds[bounds["minimum"] > 0].iloc[0]
    label = f"{used['feature_name']} {used['feature_version']}"
    box = next(
        n
        for n in at.number_input
        if n.key.startswith(f"edit_pool_q_{int(cad['id'])}") and n.label == label
    )
    box.set_value(int(used["minimum"]) - 1)
    submit(at, "Save changes")
    expected = (
        f"{label}: {int(used['minimum']) - 1} requested, but {int(used['minimum'])} are "
        f"allocated — at least {int(used['minimum'])}"
    )
    assert expected in [e.value for e in column_holding(at, label, "edit_pool_q_").error]
    after = pools.pool_quantity_bounds(
        service_context(), SYSTEM_ACTOR, int(cad["vlm_id"]), int(cad["id"])
    )
    assert after["quantity"].tolist() == bounds["quantity"].tolist()


def column_with_text_input(at: AppTest, label: str):
    for node, _ in walk(at.main):
        if getattr(node, "type", None) == "column" and any(
            t.label == label for t in node.text_input
        ):
            return node
    raise AssertionError(f"no column holds the input {label!r}")


def test_a_refused_user_name_is_explained_under_the_field_and_kept(app):
    at = open_page(app("admin"), "users")
    box = next(t for t in at.text_input if t.label == "User name")
    box.input("Bad Name!")
    submit(at, "Add user")
    under = [e.value for e in column_with_text_input(at, "User name").error]
    assert len(under) == 1 and "user name" in under[0].lower(), under
    assert next(t for t in at.text_input if t.label == "User name").value == "Bad Name!"
    assert "bad name!" not in set(users.list_users(service_context(), SYSTEM_ACTOR)["username"])

    box = next(t for t in at.text_input if t.label == "User name")
    box.input("erin")
    submit(at, "Add user")
    assert "erin" in set(users.list_users(service_context(), SYSTEM_ACTOR)["username"])
    assert next(t for t in at.text_input if t.label == "User name").value == ""  # a fresh form


# -- banners from an earlier submit ------------------------------------------------------------


def open_cad_pool(at: AppTest) -> tuple[int, str, int]:
    """Select the CAD pool in the edit form; returns its id, a feature label and its room."""
    frame = pools.list_pools(service_context(), SYSTEM_ACTOR)
    cad = frame[frame["name"] == "CAD team"].iloc[0]
    at.selectbox(key="edit_pool").set_value(int(cad["id"]))
    at.run()
    bounds = pools.pool_quantity_bounds(
        service_context(), SYSTEM_ACTOR, int(cad["vlm_id"]), int(cad["id"])
    )
    feature = bounds.iloc[0]
    return (
        int(cad["id"]),
        f"{feature['feature_name']} {feature['feature_version']}",
        int(feature["maximum"]),
    )


def test_a_saved_banner_does_not_stay_over_a_rejected_edit(app):
    at = open_page(app("admin"), "pools")
    pool_id, label, most = open_cad_pool(at)
    description = next(t for t in at.text_input if t.label == "Description" and t.value != "")
    description.input("Design engineers, east wing")
    submit(at, "Save changes")
    assert [s.value for s in at.success] == ["Pool 'CAD team' saved."]

    box = next(
        n
        for n in at.number_input
        if n.key.startswith(f"edit_pool_q_{pool_id}") and n.label == label
    )
    box.set_value(most + 1)
    submit(at, "Save changes")
    assert not at.success, [s.value for s in at.success]
    assert f"{label}: {most + 1} requested, {most} available — 1 over" in errors(at)
    bounds_after = open_cad_pool(at)[2]
    assert bounds_after == most  # nothing was saved


def test_a_banner_queued_by_an_earlier_submit_is_dropped_by_the_next_submit(app):
    """A rerun that would show an earlier "saved" banner is replaced by the user's next
    submit: that submit's rejection must not appear under the old success."""
    at = open_page(app("admin"), "pools")
    pool_id, label, most = open_cad_pool(at)
    at.session_state["_vlm_flash"] = [("success", "Pool 'CAD team' saved.")]
    box = next(
        n
        for n in at.number_input
        if n.key.startswith(f"edit_pool_q_{pool_id}") and n.label == label
    )
    box.set_value(most + 1)
    submit(at, "Save changes")
    assert not at.success, [s.value for s in at.success]
    assert any(e.startswith(f"{label}: {most + 1} requested") for e in errors(at))


# -- license-server errors in plain words ------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_connection(at: AppTest, name: str, url: str, password: str = "pw") -> AppTest:
    form = [t for t in at.text_input if t.label in ("Name", "Base URL", "User", "Password")]
    by_label = {t.label: t for t in form[:4]}
    by_label["Name"].input(name)
    by_label["Base URL"].input(url)
    by_label["User"].input("admin")
    by_label["Password"].input(password)
    return submit(at, "Test connection")


def expanders_with(at: AppTest, label: str) -> list:
    return [e for e in at.expander if e.label == label]


def test_an_unreachable_server_is_explained_without_exception_names(app):
    at = open_section(open_page(app("admin"), "servers"), "add_server_section")
    port = closed_port()
    check_connection(at, "lls-down", f"http://127.0.0.1:{port}")
    shown = errors(at)
    assert any(
        e.startswith(f"Could not reach the license server at http://127.0.0.1:{port}: ")
        and "connection refused" in e
        for e in shown
    ), shown
    assert not any(name in e for e in shown for name in ERROR_CLASS_NAMES), shown
    (detail,) = expanders_with(at, "Technical detail (admins)")
    assert "TransientError" in detail.code[0].value


def test_a_wrong_password_is_explained_in_plain_words(app):
    at = open_section(open_page(app("admin"), "servers"), "add_server_section")
    east = servers.list_servers(service_context(), SYSTEM_ACTOR)
    url = str(east[east["name"] == "lls-east"]["base_url"].iloc[0])
    check_connection(at, "lls-east-copy", url, password="not-the-password")
    shown = errors(at)
    assert any(e.startswith("The license server refused the user name or password") for e in shown)
    assert not any(name in e for e in shown for name in ERROR_CLASS_NAMES), shown


# -- a page the role may not open --------------------------------------------------------------


def open_by_url(at: AppTest, url_path: str) -> AppTest:
    """What opening /<url_path> in the browser does: run the page registered at that URL."""
    page_hash = next(
        h for h, info in at._registered_pages.items() if info.get("url_pathname") == url_path
    )
    at._page_hash = page_hash
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize(
    ("role", "url_path", "title"),
    [
        (Role.MANAGER, "users", "Users"),
        (Role.MANAGER, "servers", "Physical LMs"),
        (Role.ANALYST, "allocations", "Allocations"),
    ],
)
def test_a_page_the_role_may_not_see_lands_on_the_dashboard_saying_so(app, role, url_path, title):
    at = open_by_url(app(demo_user(role).username), url_path)
    assert [w.value for w in at.warning] == [f"You don't have access to {title}."]
    assert [t.value for t in at.title] == ["Dashboard"]  # none of the refused page ran


def test_the_notice_stays_on_the_landing_page_until_another_page_is_opened(app):
    at = open_by_url(app("mia"), "users")
    at.switch_page(str(PAGES_DIR / "dashboard_page.py")).run()  # a rerun of the landing page
    assert [w.value for w in at.warning] == ["You don't have access to Users."]
    open_page(at, "export")
    assert not [w for w in at.warning if "access" in w.value]
    open_page(at, "dashboard")
    assert not [w for w in at.warning if "access" in w.value]


def test_an_admin_opens_every_page_without_a_notice(app):
    at = open_by_url(app("admin"), "users")
    assert [t.value for t in at.title] == ["Users"]
    assert not at.warning


def test_sync_now_explains_a_server_it_cannot_reach(app):
    port = closed_port()
    servers.add_server(
        service_context(),
        SYSTEM_ACTOR,
        servers.ServerInput(
            name="lls-down",
            base_url=f"http://127.0.0.1:{port}",
            username="admin",
            password="pw",
            timeout_seconds=2,
        ),
    )
    at = open_page(app("admin"), "servers")
    at.button(key="sync_now").click()
    at.run()
    assert not at.exception, at.exception
    lines = [m.value for m in at.status[0].markdown]
    down = [line for line in lines if line.startswith("✗ lls-down")]
    assert down == [
        f"✗ lls-down: Could not reach lls-down at http://127.0.0.1:{port}: connection refused."
    ], lines
    (detail,) = expanders_with(at, "Technical detail (admins)")
    assert "lls-down: " in detail.code[0].value and "Errno 111" in detail.code[0].value
