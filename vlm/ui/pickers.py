"""Selectors shared by pages: pool, feature, server, VLM."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

T = TypeVar("T")


def pool_labels(pools: pd.DataFrame) -> dict[int, str]:
    """Each pool's id and the label a picker shows for it: VLM / pool (manager)."""
    return {
        int(pool_id): f"{vlm_name} / {name} (manager {manager})"
        for pool_id, vlm_name, name, manager in zip(
            pools["id"], pools["vlm_name"], pools["name"], pools["manager"], strict=True
        )
    }


def labelled_selectbox(
    label: str, options: Sequence[T], labels: Mapping[T, str], chosen: T, *, key: str
) -> T:
    """A selectbox showing `chosen`, drawn under a new key whenever its labels or `chosen`
    change.

    Streamlit knows a selectbox's value by its label: after a label changed ("5 of 6
    available" became "4 of 6"), the browser sends the old label back on the next rerun, no
    option matches it and Streamlit silently resets the box to its first choice. A new key makes
    a fresh widget that starts on `chosen` with the current labels instead.
    """
    index = list(options).index(chosen)
    shown = [labels[o] for o in options]
    digest = hashlib.sha1(repr((shown, index)).encode()).hexdigest()[:10]
    return st.selectbox(
        label, options, index=index, format_func=labels.__getitem__, key=f"{key}_{digest}"
    )


def feature_label(row: Mapping[str, Any]) -> str:
    return (
        f"{row['feature_name']} {row['feature_version']} — {row['available']} of "
        f"{row['quantity']} available"
    )


def pick_row(frame: pd.DataFrame, *, key: str, label: str, name_column: str = "name") -> int | None:
    """An id from a frame with id and name columns."""
    if frame.empty:
        return None
    labels = dict(zip(frame["id"].astype(int), frame[name_column].astype(str), strict=True))
    chosen = st.selectbox(label, list(labels), format_func=labels.get, key=key)
    return None if chosen is None else int(chosen)
