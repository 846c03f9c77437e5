"""Metered, uncounted and other features, shown apart from the counted concurrent totals."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import streamlit as st

from vlm.services.reports import COUNTED, LICENSE_KIND_LABELS, METERED, OTHER, UNCOUNTED
from vlm.ui.widgets import table_with_download

COUNTED_TITLE = f"{LICENSE_KIND_LABELS[COUNTED]} features"
APART = (METERED, UNCOUNTED, OTHER)
KIND_TITLES = {kind: f"{LICENSE_KIND_LABELS[kind]} features" for kind in APART}
KIND_NOTES = {
    METERED: "Units consumed by use. FNE cannot reserve them, so VLM does not pool them and the "
    "license totals leave them out.",
    UNCOUNTED: "No license count: any number of clients may use them. Not in the license totals.",
    OTHER: "Not concurrent, so FNE cannot reserve them. Not in the license totals.",
}
KIND_COLUMNS = {
    METERED: ["feature_name", "feature_version", "total", "used", "expiry"],
    UNCOUNTED: ["feature_name", "feature_version", "used", "expiry"],
    OTHER: ["feature_name", "feature_version", "total", "used", "expiry"],
}
KIND_COLUMN_CONFIG = {
    METERED: {
        "total": st.column_config.NumberColumn("Units", help="metered units the server holds"),
        "used": st.column_config.NumberColumn("Units used"),
    },
    UNCOUNTED: {"used": st.column_config.NumberColumn("In use")},
    OTHER: {},
}


def counted_only(features: pd.DataFrame) -> pd.DataFrame:
    """The server features the license totals count (concurrent, counted)."""
    return features[features["license_kind"] == COUNTED]


def kind_sections(features: pd.DataFrame, *, key: str) -> None:
    """A titled table (with its CSV) for each kind apart from counted that the features hold."""
    for kind in APART:
        rows = features[(features["license_kind"] == kind) & features["present"]]
        if rows.empty:
            continue
        st.markdown(f"**{KIND_TITLES[kind]}** ({len(rows)})")
        st.caption(KIND_NOTES[kind])
        table_with_download(
            rows,
            KIND_TITLES[kind].lower(),
            key=f"{key}_{kind}",
            column_order=KIND_COLUMNS[kind],
            column_config=KIND_COLUMN_CONFIG[kind],
        )


def _apart_in_words(figures: Mapping[str, int]) -> list[str]:
    """'Metered features: 3 (3,500 units, 1,203 used)' and the like, for each kind present."""
    parts = []
    for kind in APART:
        count = figures.get(f"{kind}_features", 0)
        if not count:
            continue
        used = figures.get(f"{kind}_used", 0)
        amounts = (
            f"{used:,} in use"
            if kind == UNCOUNTED
            else f"{figures.get(f'{kind}_total', 0):,} units, {used:,} used"
        )
        parts.append(f"**{KIND_TITLES[kind]}:** {count} ({amounts})")
    return parts


def totals_note(figures: Mapping[str, int]) -> None:
    """Under the dashboard's tiles: what the license figures count and what they leave out."""
    parts = _apart_in_words(figures)
    text = (
        "Licenses, in use, pooled and poolable are counted concurrent licenses only "
        "(the kind VLM can pool)."
    )
    if parts:
        text += " Shown apart, not in those figures: " + " · ".join(parts) + "."
    st.caption(text)
