"""The audit log's before/after JSON read side by side, changed keys highlighted."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from vlm.ui.local_time import format_user_time
from vlm.ui.widgets import text_or_blank

CHANGED_STYLE = "background-color: #fff3cd; font-weight: 600"
WHOLE_VALUE = "(value)"
DETAIL_COLUMNS = ["key", "before", "after", "changed"]


def parse(value: object) -> Any:
    """A stored before/after cell as data (JSON text), None when empty, the text when not JSON."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _as_mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else {WHOLE_VALUE: value}


def _keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every key of before, then the keys only after has."""
    return list(old) + [k for k in new if k not in old]


def _changed(old: dict[str, Any], new: dict[str, Any], key: str) -> bool:
    return key not in old or key not in new or old[key] != new[key]


def detail_frame(before: object, after: object) -> pd.DataFrame:
    """One line per key of before or after: both values and whether it changed."""
    old, new = _as_mapping(parse(before)), _as_mapping(parse(after))
    rows = [
        {
            "key": key,
            "before": _shown(old.get(key)),
            "after": _shown(new.get(key)),
            "changed": _changed(old, new, key),
        }
        for key in _keys(old, new)
    ]
    return pd.DataFrame(rows, columns=DETAIL_COLUMNS)


def changed_keys(before: object, after: object) -> str:
    """'name, quantity' — the keys an audit entry changed, for the log's summary column (no
    frame per entry: the log shows thousands)."""
    old, new = _as_mapping(parse(before)), _as_mapping(parse(after))
    return ", ".join(key for key in _keys(old, new) if _changed(old, new, key))


def with_changes(log: pd.DataFrame) -> pd.DataFrame:
    """The log with a 'changed' column naming the keys each entry changed."""
    shown = log.copy()
    shown["changed"] = [
        changed_keys(b, a) for b, a in zip(log["before"], log["after"], strict=True)
    ]
    return shown


def _highlight(frame: pd.DataFrame):  # noqa: ANN202 - pandas Styler
    return frame.style.apply(
        lambda row: [CHANGED_STYLE if row["changed"] else "" for _ in row], axis=1
    )


def render_detail(entry: pd.Series) -> None:
    """The chosen entry: who did what when, then before and after side by side."""
    with st.container(border=True, key="audit_detail"):
        st.markdown(
            f"**Entry {int(entry['id'])}** · `{entry['action']}` on "
            f"{text_or_blank(entry['target_type'])} {text_or_blank(entry['target_id'])} by "
            f"**{text_or_blank(entry['actor'])}** · "
            f"{format_user_time(entry['happened_at'])}"
        )
        frame = detail_frame(entry["before"], entry["after"])
        if frame.empty:
            st.caption("This entry records no before or after values.")
            return
        changed = int(frame["changed"].sum())
        st.caption(f"{changed} of {len(frame)} key(s) changed (highlighted).")
        st.dataframe(
            _highlight(frame),
            hide_index=True,
            width="stretch",
            placeholder="",
            key="audit_detail_table",
            column_config={
                "key": st.column_config.TextColumn("Key", width="small", pinned=True),
                "before": st.column_config.TextColumn("Before", width="large"),
                "after": st.column_config.TextColumn("After", width="large"),
                "changed": st.column_config.CheckboxColumn("Changed", width="small"),
            },
        )
        left, right = st.columns(2)
        with left:
            st.markdown("**Before**")
            _json_or_blank(parse(entry["before"]))
        with right:
            st.markdown("**After**")
            _json_or_blank(parse(entry["after"]))


def _json_or_blank(value: Any) -> None:
    if value is None:
        st.caption("(nothing)")
    elif isinstance(value, (dict, list)):
        st.json(value, expanded=True)
    else:
        st.code(str(value), language=None, wrap_lines=True)
