"""The sign-in form, what VLM is, and the demo logins in demo mode."""

import streamlit as st

from vlm.ui.auth import demo_logins, sign_in_form
from vlm.ui.runtime import get_runtime
from vlm.ui.widgets import people_table

sign_in_form()
st.caption(
    "Split the licenses of your FlexNet Embedded license servers among teams: "
    "admins build virtual license managers and pools, managers allocate licenses to devices "
    "and users, analysts follow utilization."
)
if get_runtime().settings.demo:
    st.info("Demo mode — sign in with one of these accounts:", icon=":material/science:")
    people_table(demo_logins())
