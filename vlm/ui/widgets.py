"""Small reusable widgets: tables with a CSV download, service calls, flashes, confirmations."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pandas as pd
import streamlit as st

from vlm.domain import VlmError
from vlm.services.exports import to_csv_bytes

T = TypeVar("T")
_FLASH_KEY = "_vlm_flash"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "table"


def download_csv(
    frame: pd.DataFrame, name: str, *, label: str | None = None, key: str | None = None
) -> None:
    """A download button with the frame as formula-safe CSV, encoded only when clicked
    (every table has one: encoding them all on each run cost a 10,000-row grid ~50 ms)."""
    shown = frame.copy()
    st.download_button(
        label or f"Download {name} (CSV)",
        data=lambda: to_csv_bytes(shown),
        file_name=f"{slug(name)}.csv",
        mime="text/csv",
        key=key or f"download_{slug(name)}",
        icon=":material/download:",
        on_click="ignore",
    )


LABELS = {
    "id": "Id",
    "vlm_name": "VLM",
    "vlm_id": "VLM id",
    "vlm_type": "Type",
    "pool_name": "Pool",
    "server_name": "Server",
    "feature_name": "Feature",
    "feature_version": "Version",
    "reserved_by_others": "Reserved outside VLM",
    "last_error": "Last error",
    "base_url": "Base URL",
    "created_at": "Created",
    "created_by": "Created by",
    "updated_at": "Updated",
    "applied_at": "Applied",
    "over_committed": "Over-committed",
    "must_change_password": "Must change password",
    "host_type": "Host type",
    "host_id": "Host id",
    "target_type": "Target type",
    "target_id": "Target id",
}


def label(column: str) -> str:
    """A readable header for a column name."""
    return LABELS.get(column, column.replace("_", " ").capitalize())


def labelled(
    columns: Sequence[str], column_config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """column_config with a readable label for every column not configured explicitly."""
    config: dict[str, Any] = {c: label(c) for c in columns}
    config.update(column_config or {})
    return config


def table_with_download(
    frame: pd.DataFrame,
    name: str,
    *,
    column_config: Mapping[str, Any] | None = None,
    column_order: Sequence[str] | None = None,
    height: int | str = "auto",
    key: str | None = None,
    styler: Callable[[pd.DataFrame], Any] | None = None,
) -> None:
    """Every table shown can also be downloaded as CSV (exactly the rows and columns shown)."""
    shown = frame[list(column_order)] if column_order else frame
    st.dataframe(
        styler(shown) if styler else shown,
        hide_index=True,
        column_config=labelled([str(c) for c in shown.columns], column_config),
        height=height,
        key=f"table_{key}" if key else None,
    )
    download_csv(shown, name, key=f"download_{key}" if key else None)


@dataclass(frozen=True)
class Outcome(Generic[T]):
    ok: bool
    value: T | None = None
    error: VlmError | None = None


def attempt(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Outcome[T]:
    """Call a service; show its refusal (validation, permission, conflict) instead of crashing."""
    try:
        return Outcome(True, fn(*args, **kwargs))
    except VlmError as exc:
        st.error(exc.message, icon=":material/error:")
        return Outcome(False, error=exc)


def flash(message: str, kind: str = "success") -> None:
    """A message to show on the next run (after st.rerun)."""
    st.session_state.setdefault(_FLASH_KEY, []).append((kind, message))


def show_flashes() -> None:
    for kind, message in st.session_state.pop(_FLASH_KEY, []):
        if kind == "error":
            st.error(message)
        elif kind == "warning":
            st.warning(message)
        else:
            st.success(message)


def ask_confirmation(key: str) -> None:
    st.session_state[f"_confirm_{key}"] = True


def cancel_confirmation(key: str) -> None:
    st.session_state.pop(f"_confirm_{key}", None)


def confirmation(key: str, message: str, confirm_label: str) -> bool:
    """An inline confirm block opened by ask_confirmation(key); True when confirmed."""
    if not st.session_state.get(f"_confirm_{key}"):
        return False
    with st.container(border=True):
        st.warning(message, icon=":material/warning:")
        yes, no = st.columns(2)
        if yes.button(confirm_label, type="primary", key=f"{key}_confirm"):
            cancel_confirmation(key)
            return True
        if no.button("Cancel", key=f"{key}_cancel"):
            cancel_confirmation(key)
            st.rerun()
    return False


def choose_columns(
    columns: Sequence[str], *, key: str, default: Sequence[str] | None = None
) -> list[str]:
    """Let the user pick which columns a table shows (and downloads)."""
    chosen = st.multiselect("Columns", list(columns), default=list(default or columns), key=key)
    return [c for c in columns if c in chosen] or list(columns)
