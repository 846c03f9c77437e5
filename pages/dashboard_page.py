"""Dashboard (every role, scoped): KPI tiles, capacity charts, over-commitment, trends."""

import streamlit as st

from vlm.ui import dashboard
from vlm.ui.session import page_context
from vlm.ui.widgets import show_flashes

page = page_context()
st.title("Dashboard")
show_flashes()
dashboard.render_live(page)
