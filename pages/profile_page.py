"""Profile (every role): the signed-in account, its notification destinations and its personal
API tokens; admins see all tokens."""

import streamlit as st

from vlm.ui import profile
from vlm.ui.session import page_context
from vlm.ui.widgets import show_flashes

page = page_context()
st.title("Profile")
show_flashes()
profile.show_account(page)

st.subheader("Notifications")
st.caption(
    "Where VLM tells you about what concerns you: a decision on your request for more "
    "licenses, or (admins) a new request."
)
profile.notification_destinations(page)

st.subheader("API tokens")
st.caption(
    "A token lets a script use the REST API (/api/v1, reference at /api/v1/docs) as you, with "
    "your role. It is shown once; VLM keeps only its hash."
)
profile.show_new_token()
with st.expander("Create a token", icon=":material/add:"):
    profile.new_token_form(page)
profile.own_tokens(page)

if page.actor.is_admin:
    st.subheader("Every user's tokens")
    profile.all_tokens(page)
