"""The baseline page: the dataframes a VLM page showed, rendered from memory and nothing else."""

from __future__ import annotations

import pandas as pd

FRAMES: list[tuple[str, pd.DataFrame]] = []

SCRIPT = """
import streamlit as st

from bench.bare_page import FRAMES

for index, (kind, frame) in enumerate(FRAMES):
    if kind == "data_editor":
        st.data_editor(frame, key=f"editor_{index}", num_rows="dynamic", hide_index=True)
    else:
        st.dataframe(frame, hide_index=True)
"""
