"""Selectors shared by pages: pool, feature, server, VLM (preselected from ?pool= links)."""

from __future__ import annotations

import pandas as pd
import streamlit as st


def pool_label(row: pd.Series) -> str:
    return f"{row['vlm_name']} / {row['name']} (manager {row['manager']})"


def pick_pool(frame: pd.DataFrame, *, key: str, label: str = "Pool") -> int | None:
    """A pool from list_pools(); ?pool=<id> in the URL preselects it."""
    if frame.empty:
        return None
    labels = {int(r["id"]): pool_label(r) for _, r in frame.iterrows()}
    ids = list(labels)
    wanted = st.query_params.get("pool")
    index = ids.index(int(wanted)) if wanted and wanted.isdigit() and int(wanted) in ids else 0
    chosen = st.selectbox(label, ids, index=index, format_func=labels.get, key=key)
    if chosen is not None and wanted != str(chosen):
        st.query_params["pool"] = str(chosen)  # a shareable link to this pool
    return None if chosen is None else int(chosen)


def feature_label(row: pd.Series) -> str:
    return (
        f"{row['feature_name']} {row['feature_version']} — {row['available']} of "
        f"{row['quantity']} available"
    )


def pick_feature(frame: pd.DataFrame, *, key: str) -> tuple[str, str] | None:
    """A (name, version) from pool_features() of one pool."""
    if frame.empty:
        return None
    options = [(str(r["feature_name"]), str(r["feature_version"])) for _, r in frame.iterrows()]
    labels = {o: feature_label(r) for o, (_, r) in zip(options, frame.iterrows(), strict=True)}
    busiest = int(frame["allocations"].reset_index(drop=True).idxmax())
    return st.selectbox("Feature", options, index=busiest, format_func=labels.get, key=key)


def pick_row(frame: pd.DataFrame, *, key: str, label: str, name_column: str = "name") -> int | None:
    """An id from a frame with id and name columns."""
    if frame.empty:
        return None
    labels = dict(zip(frame["id"].astype(int), frame[name_column].astype(str), strict=True))
    chosen = st.selectbox(label, list(labels), format_func=labels.get, key=key)
    return None if chosen is None else int(chosen)
