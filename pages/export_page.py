"""Export (every role, scoped to what the role may see): CSV downloads for people (readable
headers, times in your zone) and raw ones (machine column names) for scripts."""

import streamlit as st

from vlm.ui.exports import PREVIEW_ROWS, available_exports
from vlm.ui.session import page_context
from vlm.ui.widgets import in_user_time, labelled, time_columns

page = page_context()
st.title("Export")
st.caption(
    "CSV files of what your role may see, with the column titles shown in VLM. The raw files "
    "keep the machine column names and stored times, for scripts. Cells that a spreadsheet "
    "would run as a formula are prefixed with a quote."
)
for export in available_exports(page):
    with st.container(border=True):
        st.subheader(export.title)
        st.caption(export.description)
        rows = export.count(page)
        st.write(f"{rows:,} row(s)")
        people_col, raw_col = st.columns(2)
        with people_col:
            st.download_button(
                f"Download {export.title} (CSV)",
                data=export.csv(page),
                file_name=f"{export.file_name}.csv",
                mime="text/csv",
                key=f"export_{export.file_name}",
                icon=":material/download:",
                on_click="ignore",
                type="primary",
            )
        with raw_col:
            st.download_button(
                f"Download {export.title}, raw (CSV)",
                data=export.raw_csv(page),
                file_name=f"{export.file_name}-raw.csv",
                mime="text/csv",
                key=f"raw_{export.file_name}",
                icon=":material/data_object:",
                on_click="ignore",
                help="machine column names (vlm_name, over_committed …) and stored times",
            )
        if st.toggle(f"Preview the first {PREVIEW_ROWS} rows", key=f"preview_{export.file_name}"):
            preview = in_user_time(export.preview(page))
            st.dataframe(
                preview,
                hide_index=True,
                placeholder="",
                column_config=labelled(
                    [str(c) for c in preview.columns], times=time_columns(preview)
                ),
            )
