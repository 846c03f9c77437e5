"""The VLMs page's edit form (issue #8 item 5): an admin renames a VLM, changes its description,
adds and removes features; a refusal shows next to its field and keeps the typed values."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page, service_context
from vlm.domain import SYSTEM_ACTOR
from vlm.services import audit, vlms

FORM = "edit_vlm_form"


def engineering() -> dict:
    frame = vlms.list_vlms(service_context(), SYSTEM_ACTOR)
    return frame[frame["name"] == "Engineering"].iloc[0].to_dict()


def choices(vlm_id: int):
    return vlms.feature_choices(service_context(), SYSTEM_ACTOR, vlm_id)


def on_server(row) -> str:
    """A feature as the service names it."""
    return f"{row['feature_name']} {row['feature_version']} on {row['server_name']}"


def open_edit_form(at: AppTest) -> AppTest:
    at.button(key="edit_vlm").click()
    at.run()
    assert not at.exception, at.exception
    return at


def form_block(at: AppTest):
    """The edit form's bordered container (found by its key)."""

    def find(node):
        for child in getattr(node, "children", {}).values():
            if getattr(child, "key", None) == FORM and hasattr(child, "children"):
                return child
            found = find(child)
            if found is not None:
                return found
        return None

    block = find(at.main)
    assert block is not None, "the edit form is not open"
    return block


def form_elements(at: AppTest) -> list:
    """The form's elements in the order shown (direct children only)."""
    return list(form_block(at).children.values())


def error_after(at: AppTest, key: str) -> str | None:
    """The text of the error shown right below the widget with this key, if any."""
    elements = form_elements(at)
    index = next(i for i, e in enumerate(elements) if getattr(e, "key", None) == key)
    following = elements[index + 1]
    return following.value if type(following).__name__ == "Error" else None


def save(at: AppTest) -> AppTest:
    at.button(key="edit_vlm_save").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_edit_opens_prefilled_with_the_stored_values_and_offers_other_servers(app):
    vlm = engineering()
    vlm_id = int(vlm["id"])
    at = open_edit_form(open_page(app("admin"), "vlms"))
    assert at.text_input(key=f"edit_vlm_name_{vlm_id}").value == "Engineering"
    assert at.text_area(key=f"edit_vlm_description_{vlm_id}").value == vlm["description"]
    picker = at.multiselect(key=f"edit_vlm_features_{vlm_id}")
    exposed = vlms.vlm_server_features(service_context(), SYSTEM_ACTOR, vlm_id)
    assert sorted(picker.value) == exposed
    servers = [option.rsplit(" @ ", 1)[1] for option in picker.options]
    # the VLM's own servers first, then the free features of the other server
    assert servers[: len(exposed)] == sorted(servers[: len(exposed)])
    assert set(servers[: len(exposed)]) == {"lls-east", "lls-west"}
    assert set(servers[len(exposed) :]) == {"cls-cloud"}


def test_rename_describe_add_and_remove_shows_what_changed_and_updates_the_list(app):
    vlm_id = int(engineering()["id"])
    frame = choices(vlm_id)
    unused = frame[frame["exposed"] & (frame["pools"] == "")].iloc[0]
    added = frame[~frame["exposed"]].iloc[0]
    at = open_edit_form(open_page(app("admin"), "vlms"))
    at.text_input(key=f"edit_vlm_name_{vlm_id}").input("Engineering EU")
    at.text_area(key=f"edit_vlm_description_{vlm_id}").input("Both data centres and the cloud")
    picker = at.multiselect(key=f"edit_vlm_features_{vlm_id}")
    picker.unselect(int(unused["server_feature_id"])).select(int(added["server_feature_id"]))
    save(at)

    assert [s.value for s in at.success] == [
        f"VLM 'Engineering EU' saved: renamed from 'Engineering'; description changed; "
        f"added {on_server(added)}; removed {on_server(unused)}."
    ]
    assert not at.error
    listed = at.dataframe[0].value
    assert "Engineering EU" in set(listed["name"]) and "Engineering" not in set(listed["name"])
    assert "cls-cloud" in listed.loc[listed["name"] == "Engineering EU", "servers"].iloc[0]
    assert at.selectbox(key="vlm_selected").value == vlm_id
    assert not [b for b in at.button if b.key == "edit_vlm_save"], "the form is still open"
    after = choices(vlm_id).set_index("server_feature_id")["exposed"]
    assert after[int(added["server_feature_id"])]
    assert not after.get(int(unused["server_feature_id"]), False)
    [row] = [
        r
        for r in audit.audit_log(service_context(), SYSTEM_ACTOR).itertuples()
        if r.action == "vlm.update"
    ]
    assert (
        row.actor == "admin" and '"Engineering EU"' in row.after and '"Engineering"' in row.before
    )


def test_a_refused_removal_names_the_pools_next_to_the_picker_and_keeps_the_typed_values(app):
    vlm_id = int(engineering()["id"])
    frame = choices(vlm_id)
    used = frame[frame["exposed"] & (frame["pools"] != "")]
    keep = [
        int(i) for i in frame.loc[frame["exposed"] & (frame["pools"] == ""), "server_feature_id"]
    ]
    at = open_edit_form(open_page(app("admin"), "vlms"))
    at.text_input(key=f"edit_vlm_name_{vlm_id}").input("Typed name")
    at.multiselect(key=f"edit_vlm_features_{vlm_id}").set_value(keep)
    at.run()
    save(at)

    message = error_after(at, f"edit_vlm_features_{vlm_id}")
    assert message is not None, [e.value for e in at.error]
    assert message.startswith("Cannot remove features that pools still draw on")
    for pool in ("CAD team", "Simulation team"):
        assert pool in message
    for _, row in used.iterrows():
        assert on_server(row) in message
    assert error_after(at, f"edit_vlm_name_{vlm_id}") is None
    assert at.text_input(key=f"edit_vlm_name_{vlm_id}").value == "Typed name"
    assert sorted(at.multiselect(key=f"edit_vlm_features_{vlm_id}").value) == sorted(keep)
    assert not at.success
    assert engineering()["name"] == "Engineering"
    assert choices(vlm_id)["exposed"].sum() == frame["exposed"].sum()

    # the next submit clears the earlier refusal
    at.multiselect(key=f"edit_vlm_features_{vlm_id}").set_value(
        keep + [int(i) for i in used["server_feature_id"]]
    )
    at.run()
    save(at)
    assert not at.error
    assert [s.value for s in at.success] == ["VLM 'Typed name' saved: renamed from 'Engineering'."]


def test_a_taken_name_shows_next_to_the_name_field(app):
    ctx = service_context()
    cloud = choices(int(engineering()["id"]))
    free = [int(i) for i in cloud.loc[~cloud["exposed"], "server_feature_id"]][:1]
    vlms.create_vlm(ctx, SYSTEM_ACTOR, "Cloud", free)
    vlm_id = int(engineering()["id"])
    at = open_page(app("admin"), "vlms")
    at.selectbox(key="vlm_selected").set_value(vlm_id)
    at.run()
    open_edit_form(at)
    at.text_input(key=f"edit_vlm_name_{vlm_id}").input("Cloud")
    save(at)
    assert error_after(at, f"edit_vlm_name_{vlm_id}") == "A VLM named 'Cloud' exists already."
    assert error_after(at, f"edit_vlm_features_{vlm_id}") is None
    assert at.text_input(key=f"edit_vlm_name_{vlm_id}").value == "Cloud"
    assert sorted(vlms.list_vlms(ctx, SYSTEM_ACTOR)["name"]) == ["Cloud", "Engineering"]
    # the feature Cloud took is no option for Engineering any more
    options = at.multiselect(key=f"edit_vlm_features_{vlm_id}").options
    taken = cloud.set_index("server_feature_id").loc[free[0]]
    assert f"{taken['feature_name']} {taken['feature_version']} @ cls-cloud" not in options


def test_saving_unchanged_values_says_so_and_cancel_closes_without_saving(app):
    vlm_id = int(engineering()["id"])
    at = open_edit_form(open_page(app("admin"), "vlms"))
    save(at)
    assert [i.value for i in at.info if "Nothing to save" in i.value]
    assert not at.success and not at.error
    at.text_input(key=f"edit_vlm_name_{vlm_id}").input("Not kept")
    at.button(key="edit_vlm_cancel").click()
    at.run()
    assert not [b for b in at.button if b.key == "edit_vlm_save"]
    assert engineering()["name"] == "Engineering"
    assert not [
        r
        for r in audit.audit_log(service_context(), SYSTEM_ACTOR).itertuples()
        if r.action == "vlm.update"
    ]
    # opened again, the form shows the stored values, not the cancelled ones
    open_edit_form(at)
    assert at.text_input(key=f"edit_vlm_name_{vlm_id}").value == "Engineering"
