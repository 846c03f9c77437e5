"""Inputs for pool quantities: one bounded number per VLM feature."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

FeatureKey = tuple[str, str]
COLUMNS_PER_ROW = 3
# The columns of a pool list, in display order (also the column choices on My Pools).
POOL_COLUMNS = [
    "vlm_name",
    "name",
    "manager",
    "description",
    "features",
    "quantity",
    "allocated",
    "available",
    "allocations",
    "failed",
    "over_committed",
    "created_at",
]


def _key(prefix: str, name: str, version: str) -> str:
    digest = hashlib.sha1("\0".join((name, version)).encode()).hexdigest()[:10]
    return f"{prefix}_{digest}"


def quantity_inputs(bounds: pd.DataFrame, *, key_prefix: str) -> dict[FeatureKey, int]:
    """A number input per feature, bounded by what is allocated (min) and available (max)."""
    chosen: dict[FeatureKey, int] = {}
    columns = st.columns(COLUMNS_PER_ROW)
    for index, row in enumerate(bounds.itertuples()):
        name, version = str(row.feature_name), str(row.feature_version)
        low, high = int(row.minimum), max(int(row.maximum), int(row.minimum))
        note = f"{high} at most (VLM total {int(row.total)})"
        if int(row.minimum):
            note += f"; {int(row.minimum)} allocated, so at least that"
        if int(row.deficit):
            note += f"; ⚠ over-committed by {int(row.deficit)}"
        value = columns[index % COLUMNS_PER_ROW].number_input(
            f"{name} {version}",
            min_value=low,
            max_value=high,
            value=min(max(int(row.quantity), low), high),
            step=1,
            help=note,
            key=_key(key_prefix, name, version),
        )
        chosen[(name, version)] = int(value)
    return chosen
