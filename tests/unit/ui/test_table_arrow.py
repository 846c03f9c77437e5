"""A table shown again on a rerun is sent from the Arrow table built the first time, and its
bytes are those st.dataframe sends for the pandas frame itself."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from vlm.ui import widgets

FRAME = pd.DataFrame(
    {
        "id": [1, 2, 3],
        "name": ["a", "=b", None],
        "created_at": pd.to_datetime(["2026-07-01 12:00:00", None, "2026-01-02 03:04:05"]),
        "share": [0.5, 1.0, float("nan")],
        "hidden": [True, False, True],
    }
)
SHOWN: list[pd.DataFrame] = [FRAME]

SCRIPT = """
import streamlit as st
from tests.unit.ui.test_table_arrow import SHOWN
from vlm.ui.widgets import in_user_time, table_with_download

frame = SHOWN[-1]
table_with_download(frame, "rows", key="rows", column_order=["name", "created_at", "id", "share"])
st.dataframe(in_user_time(frame[["name", "created_at", "id", "share"]]), hide_index=True)
"""


def _arrow_bytes(at: AppTest) -> list[bytes]:
    return [table.proto.arrow_data.data for table in at.dataframe]


def test_the_table_sends_the_bytes_of_its_frame_and_converts_it_once(monkeypatch):
    built: list[int] = []
    real = widgets._as_arrow
    monkeypatch.setattr(widgets, "_as_arrow", lambda shown: built.append(1) or real(shown))
    at = AppTest.from_string(SCRIPT).run()
    assert not at.exception
    cached, plain = _arrow_bytes(at)
    assert cached == plain
    at.run()
    assert _arrow_bytes(at) == [cached, plain]
    assert len(built) == 1
    SHOWN.append(FRAME.assign(id=[7, 8, 9]))  # a new frame (the next write's) is converted anew
    try:
        at.run()
        assert len(built) == 2
        cached, plain = _arrow_bytes(at)
        assert cached == plain
        assert at.dataframe[0].value["id"].tolist() == [7, 8, 9]
    finally:
        SHOWN.pop()


def test_a_frame_pyarrow_cannot_convert_as_it_is_goes_to_streamlit_as_a_frame():
    mixed = pd.DataFrame({"value": [1, "two", 3.0]}, dtype=object)
    assert widgets._as_arrow(mixed) is mixed
