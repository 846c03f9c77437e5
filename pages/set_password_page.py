"""A user with a one-time password must choose their own before anything else."""

import streamlit as st

from vlm.services import users
from vlm.ui.auth import check_new_password
from vlm.ui.session import page_context
from vlm.ui.widgets import attempt

page = page_context()
st.title("Set your password")
st.info(
    "You signed in with a one-time password. Choose your own password to continue.",
    icon=":material/password:",
)
with st.form("set_password"):
    current = st.text_input("One-time (current) password", type="password")
    new = st.text_input("New password", type="password", help="At least 8 characters")
    repeat = st.text_input("Repeat the new password", type="password")
    submitted = st.form_submit_button("Set password", type="primary")
if submitted:
    problem = check_new_password(new, repeat)
    if problem:
        st.error(problem)
    elif attempt(users.set_own_password, page.ctx, page.actor, current, new).ok:
        st.success("Password changed.")
        st.rerun()
