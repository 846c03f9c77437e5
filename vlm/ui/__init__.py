"""Streamlit helpers: runtime resources, login, navigation, grid diff, charts and widgets.

This is the only package under vlm/ that imports streamlit.
"""
