"""Admin pages drive the services: VLMs, pools, users, servers, audit."""

from __future__ import annotations

import io

import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page, open_section, service_context
from vlm.domain import SYSTEM_ACTOR
from vlm.services import audit, pools, servers, users, vlms
from vlm.ui import widgets


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_create_a_vlm_from_a_server_and_refuse_deleting_one_with_pools(app):
    at = open_section(open_page(app("admin"), "vlms"), "new_vlm_section")
    at.text_input(key="new_vlm_name").input("Cloud")
    at.multiselect(key="new_vlm_servers").select("cls-cloud")
    at.run()
    picker = next(m for m in at.multiselect if m.key.startswith("new_vlm_features"))
    assert picker.value and all("cls-cloud" in o for o in picker.options)
    chosen = len(picker.value)
    at.button(key="new_vlm_create").click()
    at.run()
    assert not errors(at)
    created = vlms.list_vlms(service_context(), SYSTEM_ACTOR)
    cloud = created[created["name"] == "Cloud"].iloc[0]
    assert cloud["servers"] == "cls-cloud" and cloud["features"] == chosen

    at.selectbox(key="vlm_selected").set_value(
        int(created[created["name"] == "Engineering"]["id"].iloc[0])
    )
    at.run()
    at.button(key="delete_vlm").click()
    at.run()
    confirm = next(b for b in at.button if b.key and b.key.endswith("_confirm"))
    confirm.click()
    at.run()
    assert any("still has 2 pool(s)" in e for e in errors(at))


def test_create_edit_and_delete_a_pool_with_its_allocations(app):
    at = open_section(open_page(app("admin"), "pools"), "new_pool_section")
    form_inputs = [n for n in at.number_input if n.key.startswith("new_pool_q_")]
    assert form_inputs and all(n.min == 0 and n.max is None for n in form_inputs)  # see test_forms
    at.text_input[0].input("QA team")
    form_inputs[0].set_value(2)
    submit = next(b for b in at.button if b.label == "Create pool")
    submit.click()
    at.run()
    assert not errors(at), errors(at)
    ctx = service_context()
    frame = pools.list_pools(ctx, SYSTEM_ACTOR)
    qa = frame[frame["name"] == "QA team"].iloc[0]
    assert qa["quantity"] == 2 and qa["manager"] in users.managers(ctx, SYSTEM_ACTOR)

    # delete the seeded CAD pool: the confirmation states what goes
    cad = frame[frame["name"] == "CAD team"].iloc[0]
    at.selectbox(key="edit_pool").set_value(int(cad["id"]))
    at.run()
    at.button(key="delete_pool").click()
    at.run()
    warning = " ".join(w.value for w in at.warning)
    assert f"removes its {cad['allocations']} allocation(s)" in warning
    at.button(key=f"delete_pool_{int(cad['id'])}_confirm").click()
    at.run()
    assert not errors(at)
    assert "CAD team" not in set(pools.list_pools(ctx, SYSTEM_ACTOR)["name"])


def test_pool_quantity_cannot_go_below_allocated(app):
    at = open_page(app("admin"), "pools")
    frame = pools.list_pools(service_context(), SYSTEM_ACTOR)
    cad = frame[frame["name"] == "CAD team"].iloc[0]
    at.selectbox(key="edit_pool").set_value(int(cad["id"]))
    at.run()
    notes = [c.value for c in at.caption if "allocated, so at least" in c.value]
    assert sum(int(n.split("; ")[1].split()[0]) for n in notes) == cad["allocated"]


def test_add_user_shows_the_one_time_password_once(app):
    at = open_page(app("admin"), "users")
    form = [t for t in at.text_input if t.label in ("User name", "Display name")]
    form[0].input("erin")
    form[1].input("Erin Example")
    next(b for b in at.button if b.label == "Add user").click()
    at.run()
    assert not errors(at)
    (code,) = at.code
    otp = code.value
    ctx = service_context()
    profile = users.get_user(ctx, "erin")
    assert profile["role"] == "manager" and profile["must_change_password"]
    assert users.check_password(
        otp, ctx.db.scalar("SELECT password_hash FROM users WHERE username = 'erin'")
    )
    at.run()
    assert at.code[0].value == otp  # until the admin confirms it was copied
    at.button(key="one_time_done").click()
    at.run()
    assert not at.code


def test_change_role_disable_and_reset(app):
    at = open_page(app("admin"), "users")
    at.selectbox(key="users_selected").set_value("ana")
    at.run()
    at.selectbox(key="users_role_ana").set_value("manager")
    at.run()
    at.button(key="users_change_role").click()
    at.run()
    ctx = service_context()
    assert users.get_user(ctx, "ana")["role"] == "manager"
    at.button(key="users_disable").click()
    at.run()
    at.button(key="disable_user_ana_confirm").click()
    at.run()
    assert users.get_user(ctx, "ana")["disabled"] is True
    at.button(key="users_reset").click()
    at.run()
    at.button(key="reset_password_ana_confirm").click()
    at.run()
    assert at.code and users.get_user(ctx, "ana")["must_change_password"]
    # the last admin cannot be disabled: the reason is shown
    at.selectbox(key="users_selected").set_value("admin")
    at.run()
    at.button(key="users_disable").click()
    at.run()
    at.button(key="disable_user_admin_confirm").click()
    at.run()
    assert any("cannot disable yourself" in e for e in errors(at))


def test_servers_page_syncs_tests_and_refuses_removal_with_reason(app):
    at = open_page(app("admin"), "servers")
    at.button(key="sync_now").click()
    at.run()
    status = at.status[0]
    # the demo's lab server is switched off: its failure is reported, the others synced
    assert status.label == "Sync finished: 3 ok, 1 with errors" and status.state == "error"
    assert at.progress[0].value == 100
    frame = servers.list_servers(service_context(), SYSTEM_ACTOR)
    east = int(frame[frame["name"] == "lls-east"]["id"].iloc[0])
    at.selectbox(key="server_selected").set_value(east)
    at.run()
    features = next(d.value for d in at.dataframe if "poolable" in d.value.columns)
    assert {"total", "used", "reserved", "pooled", "poolable", "expiry"} <= set(features.columns)
    open_section(at, "server_tab", "Connection")
    [b for b in at.button if b.label == "Test connection"][-1].click()
    at.run()
    assert any("connected" in s.value for s in at.success)
    at.button(key="remove_server").click()
    at.run()
    at.button(key=f"remove_server_{east}_confirm").click()
    at.run()
    assert any("used by virtual license manager(s): Engineering" in e for e in errors(at))
    assert "lls-east" in set(servers.list_servers(service_context(), SYSTEM_ACTOR)["name"])


def test_audit_log_filters_by_action_and_downloads_what_it_shows(app, monkeypatch):
    downloads = record_downloads(monkeypatch)
    at = open_page(app("admin"), "audit")
    ctx = service_context()
    actions = audit.audit_actions(ctx, SYSTEM_ACTOR)
    assert "pool.create" in actions
    at.selectbox(key="audit_action").set_value("pool.create")
    at.run()
    log = at.dataframe[0].value
    assert len(log) == 2 and set(log["action"]) == {"pool.create"}
    csv_rows = pd.read_csv(io.BytesIO(downloads["audit log"]()))
    assert len(csv_rows) == 2 and set(csv_rows["Action"]) == {"pool.create"}
    assert csv_rows["Id"].tolist() == log["id"].tolist()


def record_downloads(monkeypatch) -> dict[str, object]:
    """Every download's data callable as the page hands it to the button (what the browser
    gets), by table name (the file name without '.csv'), kept to call later."""
    real = widgets.st.download_button
    seen: dict[str, object] = {}

    def recording(label, data, file_name=None, *args, **kwargs):
        seen[str(file_name).removesuffix(".csv").replace("-", " ")] = data
        return real(label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(widgets.st, "download_button", recording)
    return seen
