"""The sign-in page: "Sign in with …" per identity provider (when configured), the password form
(for everyone, or folded away for break-glass accounts when local sign-in is off), what VLM is,
and the demo logins in demo mode."""

import streamlit as st

from vlm.ui.auth import demo_logins, local_form_open, sign_in_form, sso_providers
from vlm.ui.runtime import get_runtime
from vlm.ui.sso import sign_in_buttons
from vlm.ui.widgets import people_table

runtime = get_runtime()
providers = sso_providers(runtime)
if not providers:
    sign_in_form()
else:
    sign_in_buttons(providers)
    if local_form_open(runtime):
        st.caption("Or sign in with a VLM account:")
        sign_in_form()
    else:
        with st.expander("Break-glass sign-in (local account)", icon=":material/emergency:"):
            st.caption(
                "Password sign-in is switched off except for accounts an admin marked "
                "break-glass. Everyone else signs in with the button above."
            )
            sign_in_form()
st.caption(
    "Split the licenses of your FlexNet Embedded license servers among teams: "
    "admins build virtual license managers and pools, managers allocate licenses to devices "
    "and users, analysts follow utilization."
)
if runtime.settings.demo:
    st.info("Demo mode — sign in with one of these accounts:", icon=":material/science:")
    people_table(demo_logins())
