"""The edit form of a VLM: name, description and features, refusals shown next to their field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from vlm.context import ServiceContext
from vlm.domain import Actor, VlmError
from vlm.services import vlms
from vlm.ui.widgets import flash, table_with_download

OPEN_KEY = "_edit_vlm_open"
# set after a save: the VLM list's selectbox is pointed at this id before it is drawn again
SAVED_VLM_KEY = "_edit_vlm_select_next"
FEATURE_COLUMNS = [
    "change",
    "server_name",
    "feature_name",
    "feature_version",
    "total",
    "poolable",
    "pools",
]


@dataclass(frozen=True)
class FormKeys:
    """Session-state keys of one VLM's edit form."""

    name: str
    description: str
    features: str

    @classmethod
    def of(cls, vlm_id: int) -> FormKeys:
        return cls(
            f"edit_vlm_name_{vlm_id}",
            f"edit_vlm_description_{vlm_id}",
            f"edit_vlm_features_{vlm_id}",
        )


def open_edit_form(vlm: pd.Series, exposed: list[int]) -> None:
    """Open the form for this VLM, pre-filled with what is stored now."""
    vlm_id = int(vlm["id"])
    keys = FormKeys.of(vlm_id)
    st.session_state[OPEN_KEY] = vlm_id
    st.session_state[keys.name] = str(vlm["name"])
    description = vlm["description"]
    st.session_state[keys.description] = "" if pd.isna(description) else str(description)
    st.session_state[keys.features] = list(exposed)


def close_edit_form(vlm_id: int) -> None:
    st.session_state.pop(OPEN_KEY, None)
    for key in vars(FormKeys.of(vlm_id)).values():
        st.session_state.pop(key, None)


def edit_form_open_for(vlm_id: int) -> bool:
    """True when the edit form is open for this VLM; a form left open for another is closed
    (its typed values went when it was last drawn)."""
    open_for = st.session_state.get(OPEN_KEY)
    if open_for is not None and open_for != vlm_id:
        close_edit_form(open_for)
    return open_for == vlm_id


def point_selector_at_saved(selector_key: str) -> None:
    """After a save (and its rerun), select the saved VLM again before its selectbox is drawn:
    a renamed VLM has a new label, which the browser would not find among the options."""
    vlm_id = st.session_state.pop(SAVED_VLM_KEY, None)
    if vlm_id is not None:
        st.session_state[selector_key] = vlm_id


def feature_label(row: Mapping[str, Any]) -> str:
    """Stable text for a feature option (figures change with every sync, names do not)."""
    return f"{row['feature_name']} {row['feature_version']} @ {row['server_name']}"


def ordered_choices(choices: pd.DataFrame, vlm_servers: set[int]) -> pd.DataFrame:
    """The VLM's own servers first, then the other servers; by server, feature, version."""
    ranked = choices.assign(_other=~choices["server_id"].isin(vlm_servers))
    return ranked.sort_values(
        ["_other", "server_name", "feature_name", "feature_version"], kind="stable"
    ).drop(columns="_other")


def _change(picked: bool, exposed: bool) -> str:
    if not exposed:
        return "add"
    return "keep" if picked else "remove"


def with_changes(choices: pd.DataFrame, chosen: list[int]) -> pd.DataFrame:
    """The chosen and the currently exposed features, each marked keep, add or remove."""
    picked = choices["server_feature_id"].isin(chosen)
    shown = choices[picked | choices["exposed"]].copy()
    shown["change"] = [
        _change(bool(p), bool(e))
        for p, e in zip(picked[shown.index], shown["exposed"], strict=True)
    ]
    return shown


def change_summary(changes: vlms.VlmChanges) -> str:
    """One sentence naming what a save changed."""
    parts = []
    if changes.renamed:
        parts.append(f"renamed from '{changes.old_name}'")
    if changes.description_changed:
        parts.append("description changed")
    if changes.added:
        parts.append("added " + ", ".join(changes.added))
    if changes.removed:
        parts.append("removed " + ", ".join(changes.removed))
    return f"VLM '{changes.new_name}' saved: " + "; ".join(parts) + "."


def sentence(message: str) -> str:
    """A service message as a sentence: capital first letter, final full stop."""
    text = message[:1].upper() + message[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _feature_picker(choices: pd.DataFrame, key: str) -> list[int]:
    labels = {int(r["server_feature_id"]): feature_label(r) for r in choices.to_dict("records")}
    if key in st.session_state:  # a feature another VLM took meanwhile is no option any more
        st.session_state[key] = [i for i in st.session_state[key] if i in labels]
    chosen = st.multiselect(
        "Features",
        list(labels),
        format_func=labels.get,
        key=key,
        help="The features of this VLM's servers come first, then free features of the other "
        "servers. A feature that another VLM exposes is not offered.",
    )
    return [int(i) for i in chosen]


def edit_vlm_form(ctx: ServiceContext, actor: Actor, vlm: pd.Series) -> None:
    """The open edit form of a VLM: save shows what changed, a refusal shows by its field."""
    vlm_id = int(vlm["id"])
    keys = FormKeys.of(vlm_id)
    choices = vlms.feature_choices(ctx, actor, vlm_id)
    own_servers = set(choices.loc[choices["exposed"], "server_id"].astype(int))
    choices = ordered_choices(choices, own_servers)
    with st.container(border=True, key="edit_vlm_form"):
        st.markdown(f"**Edit VLM '{vlm['name']}'**")
        name = st.text_input("Name", key=keys.name)
        name_slot = st.empty()
        description = st.text_area("Description", key=keys.description, height=68)
        description_slot = st.empty()
        chosen = _feature_picker(choices, keys.features)
        features_slot = st.empty()
        table_with_download(
            with_changes(choices, chosen),
            "vlm features after the edit",
            key="edit_vlm_features_table",
            column_order=FEATURE_COLUMNS,
            column_config={"pools": "Pools drawing on it"},
        )
        other_slot = st.empty()
        save_col, cancel_col = st.columns(2)
        if save_col.button("Save changes", type="primary", key="edit_vlm_save"):
            slots = {"name": name_slot, "description": description_slot, "features": features_slot}
            _save(ctx, actor, vlm_id, name, description, chosen, slots, other_slot)
        if cancel_col.button("Cancel", key="edit_vlm_cancel"):
            close_edit_form(vlm_id)
            st.rerun()


def _save(
    ctx: ServiceContext,
    actor: Actor,
    vlm_id: int,
    name: str,
    description: str,
    chosen: list[int],
    slots: dict[str, DeltaGenerator],
    other_slot: DeltaGenerator,
) -> None:
    """Submit the form; on a refusal keep every typed value and show why next to its field."""
    try:
        changes = vlms.update_vlm(
            ctx, actor, vlm_id, name=name, description=description, server_feature_ids=chosen
        )
    except VlmError as exc:
        slot = slots.get(exc.field or "", other_slot)
        slot.error(sentence(exc.message), icon=":material/error:")
        return
    if not changes.changed:
        other_slot.info("Nothing to save: these are the stored values.", icon=":material/info:")
        return
    close_edit_form(vlm_id)
    st.session_state[SAVED_VLM_KEY] = vlm_id
    flash(change_summary(changes))
    st.rerun()
