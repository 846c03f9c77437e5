"""Physical LMs (admin): license servers with status; add, edit, test, remove, sync, features."""

import streamlit as st

from vlm.domain import Role
from vlm.services import servers
from vlm.ui.confirm import Question, confirmed_action
from vlm.ui.memo import per_generation
from vlm.ui.pickers import pick_row
from vlm.ui.server_form import server_form, show_check, sync_now
from vlm.ui.server_tables import drift_table, feature_table, server_table
from vlm.ui.session import page_context
from vlm.ui.widgets import attempt, flash, lazy_expander, show_flashes

page = page_context(Role.ADMIN)
ctx, actor = page.ctx, page.actor
st.title("Physical License Managers")
show_flashes()

if st.button("Sync now", icon=":material/sync:", key="sync_now", type="primary"):
    sync_now(page.runtime)
st.caption(page.runtime.sync_status)

server_frame = per_generation(
    page, "physical lms: servers", lambda: servers.list_servers(ctx, actor)
)
server_table(server_frame)

new_server = lazy_expander(
    "Add a license server",
    key="add_server_section",
    icon=":material/add_circle:",
    expanded=server_frame.empty,
)
if new_server is not None:
    with new_server:
        action, data, _ = server_form("add_server")
        if action == "test":
            outcome = attempt(servers.check_connection, ctx, actor, data)
            if outcome.ok:
                show_check(outcome.value)
        elif action == "save" and attempt(servers.add_server, ctx, actor, data).ok:
            flash(f"Server '{data.name.strip()}' added; its features appear after the next sync.")
            st.rerun()

if server_frame.empty:
    st.stop()

st.subheader("Server details")
server_id = pick_row(server_frame, key="server_selected", label="License server")
server = servers.get_server(ctx, actor, server_id)
# only the open tab runs: choosing another reruns the page
features_tab, edit_tab, drift_tab = st.tabs(
    ["Features", "Connection", "Drift"], key="server_tab", on_change="rerun"
)
if features_tab.open:
    with features_tab:
        feature_table(
            per_generation(
                page,
                "physical lms: server features",
                lambda: servers.server_features(ctx, actor, server_id),
                server_id,
            )
        )
if edit_tab.open:
    with edit_tab:
        action, data, keep = server_form(f"edit_server_{server_id}", server)
        if action == "test":
            outcome = (
                attempt(servers.check_saved_server, ctx, actor, server_id)
                if keep
                else attempt(servers.check_connection, ctx, actor, data)
            )
            if outcome.ok:
                show_check(outcome.value)
        elif (
            action == "save"
            and attempt(servers.edit_server, ctx, actor, server_id, data, keep_password=keep).ok
        ):
            flash(f"Server '{data.name.strip()}' saved.")
            st.rerun()
        confirmed_action(
            "Remove server…",
            key="remove_server",
            question=Question(
                f"remove_server_{server_id}",
                f"Remove '{server['name']}' and its feature history from VLM? Nothing changes on "
                "the server itself. This is refused while a VLM exposes any of its features.",
                f"Remove {server['name']}",
            ),
            act=lambda: servers.remove_server(ctx, actor, server_id),
            done=f"Server '{server['name']}' removed.",
        )
if drift_tab.open:
    with drift_tab:
        drift_table(page, server)
