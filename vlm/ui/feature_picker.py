"""Feature picker for a new VLM: choose server features and see what each one brings."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vlm.ui.widgets import table_with_download

BRINGS_COLUMNS = [
    "server_name",
    "feature_name",
    "feature_version",
    "total",
    "used",
    "reserved_by_others",
    "poolable",
    "expiry",
]


def feature_label(row: pd.Series) -> str:
    return (
        f"{row['feature_name']} {row['feature_version']} @ {row['server_name']} — "
        f"{int(row['poolable'])} poolable of {int(row['total'])}"
    )


def free_features(features: pd.DataFrame, server_names: list[str]) -> pd.DataFrame:
    """Features of the chosen servers that can be pooled and no VLM exposes yet."""
    chosen = features[features["server_name"].isin(server_names) & features["present"]]
    return chosen[chosen["can_pool"] & chosen["vlm_id"].isna()]


def pick_features(features: pd.DataFrame, server_names: list[str], *, key: str) -> list[int]:
    """A multiselect of free features (all preselected) and a table of what they bring."""
    free = free_features(features, server_names)
    if free.empty:
        st.info("These servers have no free poolable feature (each is exposed by one VLM at most).")
        return []
    labels = {int(r["server_feature_id"]): feature_label(r) for r in free.to_dict("records")}
    chosen = st.multiselect(
        "Features to expose",
        list(labels),
        default=list(labels),
        format_func=labels.get,
        key=f"{key}_{'_'.join(sorted(server_names))}",
    )
    picked = free[free["server_feature_id"].isin(chosen)]
    st.caption(
        f"{len(picked)} feature(s) bring {int(picked['total'].sum())} licenses, "
        f"{int(picked['poolable'].sum())} of them poolable."
    )
    table_with_download(picked[BRINGS_COLUMNS], "selected features", key=f"{key}_table")
    skipped = features[
        features["server_name"].isin(server_names) & features["present"] & ~features["can_pool"]
    ]
    if not skipped.empty:
        names = ", ".join(sorted(set(skipped["feature_name"] + " " + skipped["feature_version"])))
        st.caption(f"Not poolable (uncounted or metered), so not offered: {names}.")
    return [int(i) for i in chosen]
