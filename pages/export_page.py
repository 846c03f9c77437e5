"""Export (every role, scoped to what the role may see): CSV downloads."""

import streamlit as st

from vlm.ui.exports import available_exports
from vlm.ui.session import page_context
from vlm.ui.widgets import download_csv

page = page_context()
st.title("Export")
st.caption(
    "CSV files of what your role may see. Cells that a spreadsheet would run as a formula are "
    "prefixed with a quote."
)
for export in available_exports(page):
    with st.container(border=True):
        st.subheader(export.title)
        st.caption(export.description)
        frame = export.load(page)
        st.write(f"{len(frame)} row(s), {len(frame.columns)} column(s)")
        download_csv(
            frame,
            export.file_name,
            label=f"Download {export.title} (CSV)",
            key=f"export_{export.file_name}",
        )
        with st.expander("Preview"):
            st.dataframe(frame.head(200), hide_index=True)
