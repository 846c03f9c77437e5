"""Virtual LMs (admin): create from server features, list available vs total, edit, delete."""

import streamlit as st

from vlm.domain import Role
from vlm.services import servers, vlms
from vlm.ui.confirm import Question, confirmed_action
from vlm.ui.feature_picker import pick_features
from vlm.ui.memo import per_generation
from vlm.ui.pickers import pick_row
from vlm.ui.session import page_context
from vlm.ui.vlm_forms import (
    edit_form_open_for,
    edit_vlm_form,
    open_edit_form,
    point_selector_at_saved,
)
from vlm.ui.widgets import attempt, flash, lazy_expander, show_flashes, table_with_download

page = page_context(Role.ADMIN)
ctx, actor = page.ctx, page.actor
st.title("Virtual License Managers")
show_flashes()

vlm_frame = per_generation(page, "virtual lms: vlms", lambda: vlms.list_vlms(ctx, actor))
table_with_download(
    vlm_frame,
    "virtual license managers",
    key="vlms",
    column_order=[
        "name",
        "vlm_type",
        "servers",
        "pools",
        "features",
        "total",
        "pooled",
        "allocated",
        "available",
        "deficit",
        "created_at",
        "created_by",
        "description",
    ],
    column_config={
        "name": st.column_config.TextColumn("VLM"),
        "servers": st.column_config.TextColumn("Servers", width="medium"),
        "description": st.column_config.TextColumn("Description", width="medium"),
    },
)

new_vlm = lazy_expander(
    "Create a VLM",
    key="new_vlm_section",
    icon=":material/add_circle:",
    expanded=vlm_frame.empty,
)
if new_vlm is not None:
    with new_vlm:
        server_frame = per_generation(
            page, "virtual lms: servers", lambda: servers.list_servers(ctx, actor)
        )
        features = per_generation(
            page, "virtual lms: all features", lambda: servers.server_features(ctx, actor)
        )
        name_col, type_col = st.columns(2)
        name = name_col.text_input("Name", key="new_vlm_name")
        vlm_type = type_col.selectbox("Type", vlms.VLM_TYPES, key="new_vlm_type")
        description = st.text_input("Description", key="new_vlm_description")
        chosen_servers = st.multiselect(
            "License servers", server_frame["name"].tolist(), key="new_vlm_servers"
        )
        feature_ids = pick_features(features, chosen_servers, key="new_vlm_features")
        if st.button("Create VLM", type="primary", key="new_vlm_create", disabled=not feature_ids):
            outcome = attempt(
                vlms.create_vlm,
                ctx,
                actor,
                name,
                feature_ids,
                vlm_type=vlm_type,
                description=description,
            )
            if outcome.ok:
                created = vlms.vlm_features(ctx, actor, outcome.value)
                named = ", ".join(created["feature_name"] + " " + created["feature_version"])
                flash(f"VLM '{name.strip()}' created with {len(created)} feature(s): {named}.")
                for key in ("new_vlm_name", "new_vlm_description", "new_vlm_servers"):
                    st.session_state.pop(key, None)
                st.rerun()

if vlm_frame.empty:
    st.stop()

st.subheader("Features of a VLM")
point_selector_at_saved("vlm_selected")
vlm_id = pick_row(vlm_frame, key="vlm_selected", label="VLM")
table_with_download(
    per_generation(
        page, "virtual lms: vlm features", lambda: vlms.vlm_features(ctx, actor, vlm_id), vlm_id
    ),
    "vlm features",
    key="vlm_features",
    column_order=[
        "feature_name",
        "feature_version",
        "servers",
        "total",
        "used",
        "reserved_by_others",
        "pooled",
        "allocated",
        "available",
        "deficit",
        "expiry",
    ],
)
chosen = vlm_frame[vlm_frame["id"] == vlm_id].iloc[0]
edit_col, delete_col, _ = st.columns([1, 1, 3])
if edit_col.button("Edit VLM…", key="edit_vlm", icon=":material/edit:"):
    open_edit_form(chosen, vlms.vlm_server_features(ctx, actor, vlm_id))
if edit_form_open_for(vlm_id):
    edit_vlm_form(ctx, actor, chosen)
confirmed_action(  # its button sits next to Edit; its question comes after the edit form
    "Delete VLM…",
    key="delete_vlm",
    container=delete_col,
    question=Question(
        f"delete_vlm_{vlm_id}",
        f"Delete VLM '{chosen['name']}'? Its features become free for another VLM. "
        "This is refused while pools depend on it.",
        f"Delete VLM {chosen['name']}",
    ),
    act=lambda: vlms.delete_vlm(ctx, actor, vlm_id),
    done=f"VLM '{chosen['name']}' deleted.",
)
