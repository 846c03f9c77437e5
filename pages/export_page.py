"""Export (every role, scoped to what the role may see): CSV downloads."""

import streamlit as st

from vlm.ui.exports import PREVIEW_ROWS, available_exports
from vlm.ui.session import page_context

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
        rows = export.count(page)
        st.write(f"{rows:,} row(s)")
        st.download_button(
            f"Download {export.title} (CSV)",
            data=export.csv(page),
            file_name=f"{export.file_name}.csv",
            mime="text/csv",
            key=f"export_{export.file_name}",
            icon=":material/download:",
            on_click="ignore",
        )
        if st.toggle(f"Preview the first {PREVIEW_ROWS} rows", key=f"preview_{export.file_name}"):
            st.dataframe(export.preview(page), hide_index=True)
