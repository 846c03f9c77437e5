"""Small reusable widgets: tables with a CSV download, service calls, flashes, confirmations."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from vlm.domain import VlmError
from vlm.flexnet.errors import FlexNetError
from vlm.services.exports import to_csv_bytes
from vlm.sync.clients import ServerConfigError
from vlm.ui.messages import Explained, explain_server_error
from vlm.ui.session import current_actor, run_scratch

T = TypeVar("T")
_FLASH_KEY = "_vlm_flash"
_BANNERS = "banners"
# errors a service may let through from a license server or its stored settings
SERVER_ERRORS = (FlexNetError, ServerConfigError)


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


def show_problem(explained: Explained, *, icon: str = ":material/error:") -> None:
    """An error in plain words; its technical detail in an expander, for admins only."""
    st.error(explained.text, icon=icon)
    actor = current_actor()
    if explained.detail and explained.detail != explained.text and actor and actor.is_admin:
        with st.expander("Technical detail (admins)", icon=":material/code:"):
            st.code(explained.detail, language=None, wrap_lines=True)


def attempt(
    fn: Callable[..., T],
    *args: Any,
    fields: Mapping[str, DeltaGenerator] | None = None,
    **kwargs: Any,
) -> Outcome[T]:
    """Call a service for a submit: earlier banners go, and a refusal (validation, permission,
    conflict, an unreachable license server) is shown in plain words instead of crashing:
    next to its field when `fields` has a place for it, else here."""
    clear_banners()
    try:
        return Outcome(True, fn(*args, **kwargs))
    except VlmError as exc:
        slot = (fields or {}).get(exc.field or "")
        (slot or st).error(exc.message, icon=":material/error:")
        return Outcome(False, error=exc)
    except SERVER_ERRORS as exc:
        explained = explain_server_error(exc)
        show_problem(explained)
        return Outcome(False, error=VlmError(explained.text))


def field_slots(**columns: DeltaGenerator) -> dict[str, DeltaGenerator]:
    """A place right under each named form input (by service field name) for its error."""
    return {name: column.empty() for name, column in columns.items()}


def flash(message: str, kind: str = "success") -> None:
    """A message to show on the next run (after st.rerun)."""
    st.session_state.setdefault(_FLASH_KEY, []).append((kind, message))


def show_flashes() -> None:
    """The messages flashed for this run, in a place the next submit clears."""
    messages = st.session_state.pop(_FLASH_KEY, [])
    slot = st.empty()
    run_scratch().setdefault(_BANNERS, []).append(slot)
    if not messages:
        return
    with slot.container():
        for kind, message in messages:
            if kind == "error":
                st.error(message)
            elif kind == "warning":
                st.warning(message)
            else:
                st.success(message)


def clear_banners() -> None:
    """Drop banners from an earlier submit: shown ones, and ones queued but not shown yet."""
    st.session_state.pop(_FLASH_KEY, None)
    for slot in run_scratch().pop(_BANNERS, []):
        slot.empty()


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
