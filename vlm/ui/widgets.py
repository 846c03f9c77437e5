"""Small reusable widgets: tables with a CSV download, service calls, flashes, confirmations."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pandas as pd
import pyarrow as pa
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from vlm.domain import VlmError
from vlm.flexnet.errors import FlexNetError
from vlm.services.exports import to_csv_bytes
from vlm.sync.clients import ServerConfigError
from vlm.ui.local_time import (
    in_zone,
    is_timestamp_column,
    server_zone,
    to_user_time,
    user_zone,
    with_zone,
)
from vlm.ui.memo import per_frame
from vlm.ui.messages import Explained, explain_server_error
from vlm.ui.session import current_actor, run_scratch

T = TypeVar("T")
_FLASH_KEY = "_vlm_flash"
_BANNERS = "banners"
# errors a service may let through from a license server or its stored settings
SERVER_ERRORS = (FlexNetError, ServerConfigError)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "table"


LABELS = {
    "id": "Id",
    "name": "Name",
    "vlm_name": "VLM",
    "vlm_id": "VLM id",
    "vlm_type": "Type",
    "pool_id": "Pool id",
    "pool_name": "Pool",
    "server_name": "Server",
    "server_id": "Server id",
    "feature_name": "Feature",
    "feature_version": "Version",
    "reserved_by_others": "Reserved outside VLM",
    "last_error": "Last error",
    "last_sync_at": "Last sync",
    "last_success_at": "Last success",
    "last_latency_ms": "Latency (ms)",
    "metered_features": "Metered features",
    "uncounted_features": "Uncounted features",
    "other_features": "Other features",
    "base_url": "Base URL",
    "created_at": "Created",
    "created_by": "Created by",
    "updated_at": "Updated",
    "applied_at": "Applied",
    "taken_at": "Taken",
    "happened_at": "When",
    "over_committed": "Over-committed",
    "must_change_password": "Must change password",
    "display_name": "Display name",
    "email": "E-mail",
    "username": "User",
    "host_type": "Host type",
    "host_id": "Host id",
    "target_type": "Target type",
    "target_id": "Target id",
    "allocation_id": "Allocation id",
    "allocated_share": "Allocated of quantity",
    "allocations_link": "Allocation grid",
    "group_name": "Reservation group",
    "license_kind": "License kind",
    "can_pool": "Poolable kind",
    "server_feature_id": "Server feature id",
    "next_attempt_at": "Next attempt",
    "state": "State",
}
TIME_FORMAT = "YYYY-MM-DD HH:mm:ss"
DANGER_PREFIX = "danger_"
DANGER_RED = "#c62828"
DANGER_CSS = (
    f"<style>[class*='st-key-{DANGER_PREFIX}'] button{{background-color:{DANGER_RED};"
    f"border-color:{DANGER_RED};color:#fff}}"
    f"[class*='st-key-{DANGER_PREFIX}'] button:hover{{background-color:#8e0000;"
    "border-color:#8e0000;color:#fff}</style>"
)
TIME_WIDTH = 160


def label(column: str) -> str:
    """A readable header for a column name."""
    return LABELS.get(column, column.replace("_", " ").capitalize())


def _configured_label(column: str, entry: object) -> str:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, Mapping) and entry.get("label"):
        return str(entry["label"])
    return label(column)


def _time_config(column: str, entry: object) -> dict[str, Any]:
    """A timestamp column: shown to the second, wide enough, its title naming the zone."""
    config = dict(entry) if isinstance(entry, Mapping) else {}
    if not config.get("type_config"):
        config = dict(st.column_config.DatetimeColumn(format=TIME_FORMAT, width=TIME_WIDTH))
    config["label"] = with_zone(_configured_label(column, entry))
    config["width"] = config.get("width") or TIME_WIDTH
    return config


def _number_config(column: str, entry: object) -> object:
    """A whole-number column: ids plain, other figures with thousands separators."""
    if isinstance(entry, Mapping) and entry.get("type_config"):
        return entry
    title = _configured_label(column, entry)
    if column == "id" or column.endswith("_id"):
        return st.column_config.NumberColumn(title, format="%d")
    return st.column_config.NumberColumn(title, format="localized")


def labelled(
    columns: Sequence[str],
    column_config: Mapping[str, Any] | None = None,
    *,
    times: Sequence[str] = (),
    numbers: Sequence[str] = (),
) -> dict[str, Any]:
    """column_config with a readable label for every column; timestamp columns (`times`) also
    name the zone they are shown in, whole-number columns (`numbers`) get separators. A column
    configured as None is hidden in the table (and keeps its readable title in the CSV)."""
    given = dict(column_config or {})
    config: dict[str, Any] = {c: given.get(c, label(c)) for c in columns}
    config.update({c: v for c, v in given.items() if c not in config})
    for column in times:
        if column in config:
            config[column] = _time_config(column, given.get(column))
    for column in numbers:
        if column in config:
            config[column] = _number_config(column, given.get(column))
    return config


def column_settings(
    frame: pd.DataFrame, column_config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The column_config of a table of this frame (labels, zones, number formats)."""
    return labelled(
        [str(c) for c in frame.columns],
        column_config,
        times=time_columns(frame),
        numbers=integer_columns(frame),
    )


def time_columns(frame: pd.DataFrame) -> list[str]:
    return [str(c) for c, dtype in frame.dtypes.items() if is_timestamp_column(dtype)]


def integer_columns(frame: pd.DataFrame) -> list[str]:
    return [
        str(c)
        for c, dtype in frame.dtypes.items()
        if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    ]


def _kind(entry: object) -> str | None:
    """The column type a column_config entry sets ('link', 'progress' …), if any."""
    if isinstance(entry, Mapping) and isinstance(entry.get("type_config"), Mapping):
        return entry["type_config"].get("type")
    return None


def in_user_time(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its timestamps moved to the user's zone (as the tables show them); the
    frame itself when it has none (callers never change what they get)."""
    times = time_columns(frame)
    if not times:
        return frame
    shown = frame.copy()
    for column in times:
        shown[column] = to_user_time(shown[column])
    return shown


def headers(frame: pd.DataFrame, column_config: Mapping[str, Any] | None = None) -> list[str]:
    """The column titles people read for a frame: its table's labels, zones on time columns."""
    config = labelled([str(c) for c in frame.columns], column_config, times=time_columns(frame))
    return [_configured_label(str(c), config.get(str(c))) for c in frame.columns]


def for_people(frame: pd.DataFrame, column_config: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A stored frame as people read it in a CSV: the table's column titles, times in the
    user's zone to the second, shares as percentages, empty values blank; in-app links left
    out (they lead nowhere outside VLM)."""
    config = dict(column_config or {})
    links = [c for c in frame.columns if _kind(config.get(str(c))) == "link"]
    stored = frame.drop(columns=links)
    shown = in_user_time(stored)
    for column in time_columns(shown):
        shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M:%S")
    for column in shown.columns:
        if _kind(config.get(str(column))) == "progress":
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.0%}")
        elif shown[column].dtype == object:
            shown[column] = shown[column].map(_blank_if_missing)
    return shown.set_axis(headers(stored, config), axis=1)


def text_or_blank(value: object) -> str:
    """A value as text for a caption or an input: '' for a missing one, never 'None' or 'nan'."""
    return str(_blank_if_missing(value))


def _blank_if_missing(value: object) -> object:
    return (
        "" if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)) else value
    )


def download_csv(
    frame: pd.DataFrame,
    name: str,
    *,
    label: str | None = None,
    key: str | None = None,
    column_config: Mapping[str, Any] | None = None,
    raw: bool = False,
) -> None:
    """A download button with the frame as formula-safe CSV, prepared and encoded only when
    clicked (every table has one: preparing them all on each run cost a page ~50 ms a table),
    in the zone of the user who sees the button. Headers are the titles people read in the
    table; `raw` keeps the machine names (for a file meant to be read back by VLM)."""
    zone = user_zone()

    def build() -> bytes:
        if raw:
            return to_csv_bytes(frame.copy())
        with in_zone(zone):
            return to_csv_bytes(for_people(frame, column_config))

    st.download_button(
        label or f"Download {name} (CSV)",
        data=build,
        file_name=f"{slug(name)}.csv",
        mime="text/csv",
        key=key or f"download_{slug(name)}",
        icon=":material/download:",
        on_click="ignore",
    )


def table_with_download(
    frame: pd.DataFrame,
    name: str,
    *,
    column_config: Mapping[str, Any] | None = None,
    column_order: Sequence[str] | None = None,
    height: int | str = "auto",
    key: str | None = None,
    styler: Callable[[pd.DataFrame], Any] | None = None,
    row_height: int | None = None,
    selectable: bool = False,
) -> int | None:
    """Every table shown can also be downloaded as CSV (exactly the rows and columns shown,
    under the same titles): full page width, empty cells blank, times in the user's zone.
    A `selectable` table lets the user pick one row; its position is returned."""
    event = _table(
        frame,
        name,
        column_config,
        column_order,
        height,
        key,
        styler,
        row_height,
        "single-row" if selectable else None,
    )
    return _selected_row(event, len(frame)) if selectable else None


def table_with_selection(
    frame: pd.DataFrame,
    name: str,
    *,
    key: str,
    column_config: Mapping[str, Any] | None = None,
    column_order: Sequence[str] | None = None,
    height: int | str = "auto",
) -> list[int]:
    """table_with_download where the user ticks any number of rows: their positions."""
    event = _table(frame, name, column_config, column_order, height, key, None, None, "multi-row")
    chosen = getattr(getattr(event, "selection", None), "rows", None) or []
    return sorted(int(row) for row in chosen if 0 <= int(row) < len(frame))


def _table(
    frame: pd.DataFrame,
    name: str,
    column_config: Mapping[str, Any] | None,
    column_order: Sequence[str] | None,
    height: int | str,
    key: str | None,
    styler: Callable[[pd.DataFrame], Any] | None,
    row_height: int | None,
    selection: str | None,
) -> Any:
    columns = tuple(column_order or ())
    stored, shown, arrow = per_frame(
        frame,
        ("table", columns, user_zone(), server_zone()),
        lambda: _prepared(frame, columns),
    )
    config = column_settings(shown, column_config)
    event = st.dataframe(
        styler(shown) if styler else arrow,
        hide_index=True,
        column_config=config,
        height=height,
        key=f"table_{key}" if key else None,
        placeholder="",
        width="stretch",
        row_height=row_height,
        **({"on_select": "rerun", "selection_mode": selection} if selection else {}),
    )
    download_csv(stored, name, key=f"download_{key}" if key else None, column_config=config)
    return event


def _prepared(
    frame: pd.DataFrame, columns: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame, pa.Table | pd.DataFrame]:
    """The columns shown (as stored), the same in the user's zone, and those as st.dataframe
    sends them: built once per frame kept for reruns (memo.per_frame), not on every rerun."""
    stored = frame[list(columns)] if columns else frame
    shown = in_user_time(stored)
    return stored, shown, _as_arrow(shown)


def _as_arrow(shown: pd.DataFrame) -> pa.Table | pd.DataFrame:
    """The frame as the Arrow table st.dataframe builds from it (pyarrow's from_pandas, then
    sent as it is); the frame itself where pyarrow needs Streamlit's column fixes first."""
    try:
        return pa.Table.from_pandas(shown)
    except (pa.ArrowException, OverflowError):
        return shown


def people_table(frame: pd.DataFrame) -> None:
    """A small static table (st.table has no column_config): readable headers, blank empties,
    times in the user's zone."""
    st.table(for_people(frame), hide_index=True)


def _selected_row(event: Any, rows: int) -> int | None:
    """The selected row's position, if it is still one of the rows shown."""
    chosen = list(getattr(getattr(event, "selection", None), "rows", None) or [])
    return int(chosen[0]) if chosen and 0 <= int(chosen[0]) < rows else None


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


def lazy_expander(
    label: str, *, key: str, icon: str, expanded: bool = False
) -> DeltaGenerator | None:
    """An expander whose content runs only while it is open (opening or closing it reruns the
    page): the container when open, else None. A closed form costs its page nothing."""
    box = st.expander(label, icon=icon, expanded=expanded, key=key, on_change="rerun")
    return box if box.open else None


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


def danger_styles() -> None:
    """Red buttons inside containers keyed `danger_…` (keyed elements get class st-key-<key>)."""
    st.html(DANGER_CSS)


def danger_button(
    label: str,
    *,
    key: str,
    container: DeltaGenerator | None = None,
    icon: str = ":material/delete_forever:",
    disabled: bool = False,
) -> bool:
    """A button for an action that deletes, removes, disables or resets: red, with an icon."""
    danger_styles()
    with (container or st).container(key=f"{DANGER_PREFIX}{key}"):
        return st.button(label, key=key, type="primary", icon=icon, disabled=disabled)


def confirmation(key: str, message: str, confirm_label: str, *, destructive: bool = True) -> bool:
    """An inline confirm block opened by ask_confirmation(key); True when confirmed. The
    message states the impact; a destructive action's confirm button is red."""
    if not st.session_state.get(f"_confirm_{key}"):
        return False
    with st.container(border=True):
        st.warning(message, icon=":material/warning:")
        yes, no = st.columns(2)
        if destructive:
            confirmed = danger_button(
                confirm_label, key=f"{key}_confirm", container=yes, icon=":material/warning:"
            )
        else:
            confirmed = yes.button(confirm_label, type="primary", key=f"{key}_confirm")
        if confirmed:
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
    chosen = st.multiselect(
        "Columns", list(columns), default=list(default or columns), key=key, format_func=label
    )
    return [c for c in columns if c in chosen] or list(columns)
