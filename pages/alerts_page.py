"""Alerts (every role): open and past alerts, the rules that raise them, the messages sent."""

import streamlit as st

from vlm.ui import alert_center
from vlm.ui.session import page_context
from vlm.ui.widgets import show_flashes

page = page_context()
st.title("Alerts")
show_flashes()
alert_center.open_alerts(page)
alert_center.rules(page)
alert_center.deliveries(page)
alert_center.past_alerts(page)
